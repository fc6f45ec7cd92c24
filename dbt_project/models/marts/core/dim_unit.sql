with

versions as (

    select * from {{ ref('int_units__versions') }}

),

final as (

    select
        unit_key,
        unit_code,
        unit_name,
        unit_type,
        level,
        province_code,
        province_name,
        parent_unit_code,
        valid_from,
        valid_to,
        is_current,
        successor_unit_code,
        registry_source
    from versions

)

select * from final
