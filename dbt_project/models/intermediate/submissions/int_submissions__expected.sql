-- Who should have submitted what: for each province that submits anything, every unit valid
-- in a period (districts before the 2025 reform; communes and departments after it) x each
-- kind, monthly for dossier_stats / it_kpis, yearly for par_scores, with its deadline (the
-- one definition the run warning unit_missing_for_period shares: macros/submission_deadline.sql).
-- Record-level `dossiers` exports are optional and not expected.
with

versions as (

    select * from {{ ref('int_units__versions') }}
    where level <> 'province'

),

partitions as (

    select * from {{ ref('stg_reform__submission_partitions') }}

),

reporting_provinces as (

    select distinct versions.province_code
    from partitions
    inner join versions on versions.unit_code = partitions.unit_code

),

bounds as (

    select
        coalesce(
            {% if var('submission_status_start_period') %}'{{ var("submission_status_start_period") }}'{% else %}null{% endif %},
            min(period) filter (where kind in ('dossier_stats', 'it_kpis')),
            to_char(current_date, 'YYYY-MM')
        ) as first_period,
        coalesce(
            {% if var('submission_status_start_period') %}'{{ var("submission_status_start_period") }}'{% else %}null{% endif %},
            min(period) filter (where kind = 'par_scores') || '-01',
            to_char(current_date, 'YYYY-MM')
        ) as first_year_period
    from partitions
    where period ~ '^[0-9]{4}(-[0-9]{2})?$'

),

months as (

    select generate_series(
        to_date(bounds.first_period || '-01', 'YYYY-MM-DD'),
        date_trunc('month', current_date)::date - interval '1 month',
        interval '1 month'
    )::date as month_start
    from bounds

),

years as (

    select generate_series(
        extract(year from to_date(bounds.first_year_period || '-01', 'YYYY-MM-DD'))::integer,
        extract(year from current_date)::integer - 1
    ) as year
    from bounds

),

monthly as (

    select
        kinds.kind,
        versions.unit_code,
        versions.unit_key,
        versions.province_code,
        to_char(months.month_start, 'YYYY-MM') as period
    from months
    cross join (values ('dossier_stats'), ('it_kpis')) as kinds (kind)
    inner join versions on months.month_start between versions.valid_from and versions.valid_to
    inner join reporting_provinces on reporting_provinces.province_code = versions.province_code

),

yearly as (

    select
        'par_scores' as kind,
        versions.unit_code,
        versions.unit_key,
        versions.province_code,
        years.year::text as period
    from years
    inner join versions on make_date(years.year, 12, 31) between versions.valid_from and versions.valid_to
    inner join reporting_provinces on reporting_provinces.province_code = versions.province_code

),

unioned as (

    select * from monthly
    union all
    select * from yearly

),

final as (

    select
        {{ surrogate_key(['unit_code', 'period', 'kind']) }} as submission_status_id,
        *,
        {{ submission_deadline('period') }} as deadline_date,
        -- end of the deadline day, local time
        {{ submission_deadline_at('period') }} as deadline_at
    from unioned

)

select * from final
