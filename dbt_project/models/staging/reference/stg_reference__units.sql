with

source as (

    select * from {{ ref('units') }}

),

final as (

    select
        unit_code,
        unit_name,
        unit_type,
        level,
        province_code,
        province_name,
        nullif(parent_unit_code, '') as parent_unit_code,
        valid_from,
        valid_to,
        nullif(successor_unit_code, '') as successor_unit_code,
        source as registry_source
    from source

)

select * from final
