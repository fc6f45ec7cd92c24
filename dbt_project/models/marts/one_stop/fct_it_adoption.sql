{{ partition_incremental('period') }}
-- Incremental on load time; a superseding file replaces all KPI rows of its unit x period.
with

kpi_rows as (

    select * from {{ ref('int_it_kpis__current') }}
    {% if is_incremental() %}
    where {{ incremental_window('period') }}
    {% endif %}

),

kpis as (

    select * from {{ ref('stg_reference__kpis') }}

),

units as (

    select unit_code, period, unit_key from {{ ref('int_units__resolved_by_month') }}

),

rated as (

    select
        kpi_rows.*,
        {{ pct('kpi_rows.numerator', 'kpi_rows.denominator') }} as rate,
        kpis.target_pct,
        kpis.direction
    from kpi_rows
    left join kpis on kpis.kpi_code = kpi_rows.kpi_code

),

final as (

    select
        rated.it_kpi_id as it_adoption_key,
        units.unit_key,
        rated.unit_code,
        {{ period_key('rated.period') }} as period_key,
        rated.period,
        rated.kpi_code,
        rated.numerator,
        rated.denominator,
        rated.rate,
        rated.target_pct,
        case
            when rated.rate is null or rated.target_pct is null then null
            when rated.direction = 'lower' then rated.rate <= rated.target_pct
            else rated.rate >= rated.target_pct
        end as meets_target,
        rated.file_id,
        rated.file_row_number,
        rated.loaded_at
    from rated
    left join units on units.unit_code = rated.unit_code and units.period = rated.period

)

select * from final
