-- Which framework applies to a unit's scores of a year, among those whose years cover the year:
-- the province's own before the default ('*'), one for the unit's level before any other.
with

frameworks as (

    select * from {{ ref('stg_reference__par_frameworks') }}

),

unit_years as (

    select distinct scores.unit_code, scores.year, units.province_code, units.level
    from {{ ref('int_par_scores__latest') }} as scores
    inner join {{ ref('int_units__resolved_by_month') }} as units
        on units.unit_code = scores.unit_code and units.period = lpad(scores.year::text, 4, '0') || '-12'

),

ranked as (

    select
        unit_years.unit_code,
        unit_years.year,
        unit_years.province_code,
        frameworks.framework_code,
        row_number() over (
            partition by unit_years.unit_code, unit_years.year
            order by
                (frameworks.province_code = unit_years.province_code) desc,
                (frameworks.unit_level = unit_years.level) desc,
                frameworks.framework_code
        ) as preference
    from unit_years
    inner join frameworks
        on unit_years.year between frameworks.year_from and frameworks.year_to
        and frameworks.province_code in (unit_years.province_code, '*')

),

final as (

    select unit_code, year, province_code, framework_code
    from ranked
    where preference = 1

)

select * from final
