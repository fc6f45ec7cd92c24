with

source as (

    select * from {{ ref('departments') }}

),

final as (

    select
        unit_code,
        unit_name,
        unit_type,
        province_code,
        valid_from,
        valid_to,
        source as registry_source
    from source

)

select * from final
