-- Every unit version (SCD2): the official registry (legacy and 2025) plus the provincial
-- departments, which have no GSO code and are identified by their electronic id.
with

registry as (

    select * from {{ ref('stg_reference__units') }}

),

departments as (

    select * from {{ ref('stg_reference__departments') }}

),

provinces_2025 as (

    select unit_code, unit_name from registry
    where level = 'province' and valid_from = date '{{ var("reform_date") }}'

),

department_versions as (

    select
        departments.unit_code,
        departments.unit_name,
        departments.unit_type,
        'department' as level,
        departments.province_code,
        provinces_2025.unit_name as province_name,
        departments.province_code as parent_unit_code,
        departments.valid_from,
        departments.valid_to,
        null::text as successor_unit_code,
        departments.registry_source
    from departments
    left join provinces_2025 on provinces_2025.unit_code = departments.province_code

),

unioned as (

    select * from registry
    union all
    select * from department_versions

),

final as (

    select
        {{ surrogate_key(['unit_code', 'valid_from']) }} as unit_key,
        unioned.*,
        valid_to >= date '9999-12-31' as is_current
    from unioned

)

select * from final
