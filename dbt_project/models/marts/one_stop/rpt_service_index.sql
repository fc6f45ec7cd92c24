-- Decision 766/QĐ-TTg service index per unit x period x metric, as the national portal computes
-- it (SPEC §2), from the catalogue seeds (service_index_metrics, service_index_groups):
--   metric score = round(max x min(1, (n / d) / full ratio), 2), half-up on numeric;
--   score_when_no_denominator when d is 0 or blank; max-0 metrics are shown, not scored;
--   group score = sum of the rounded metric scores; group % = group score / group max (2 decimals).
-- Counts come from service_index submissions (the portal's figures). Province-wide metrics are
-- taken from the province's own row for every unit of the province. PROGRESS_ON_TIME falls back
-- on dossier_stats (early + on time + pending in time over received) when no portal figure was
-- submitted for the unit and month; when both exist the portal's counts are used and the
-- dossier_stats score is kept beside them. Online services take the published group score.
with

submitted as (

    select * from {{ ref('int_service_index__current') }}

),

metrics as (

    select * from {{ ref('stg_reference__service_index_metrics') }}

),

groups as (

    select group_code, group_name_vi, group_name_en, group_max_score
    from {{ ref('stg_reference__service_index_groups') }}

),

versions as (

    select unit_key, unit_code, province_code, valid_from, valid_to from {{ ref('int_units__versions') }}

),

throughput as (

    select * from {{ ref('fct_dossier_throughput') }}

),

-- A unit's all-fields II.06a row when it sent one, else the sum of its per-field rows.
unit_throughput as (

    select
        unit_code,
        period,
        sum(resolved_early + resolved_on_time + pending_in_time)::numeric as numerator,
        sum(received_total)::numeric as denominator
    from throughput
    where field_code = 'ALL'
       or not exists (
            select 1 from throughput as all_row
            where all_row.unit_code = throughput.unit_code and all_row.period = throughput.period
              and all_row.field_code = 'ALL'
        )
    group by unit_code, period

),

unit_periods as (

    select distinct unit_code, period from submitted
    union
    select unit_code, period from unit_throughput

),

-- The unit version valid on the period's first day, else the nearest one (facts never lose their unit).
unit_versions as (

    select * from (
        select
            unit_periods.unit_code,
            unit_periods.period,
            versions.unit_key,
            versions.province_code,
            row_number() over (
                partition by unit_periods.unit_code, unit_periods.period
                order by
                    (period_start.day between versions.valid_from and versions.valid_to) desc,
                    versions.valid_from desc
            ) as preference
        from unit_periods
        cross join lateral (
            select case when unit_periods.period ~ '^[0-9]{4}$' then make_date(unit_periods.period::int, 1, 1)
                        else to_date(unit_periods.period || '-01', 'YYYY-MM-DD') end as day
        ) as period_start
        inner join versions on versions.unit_code = unit_periods.unit_code
    ) as ranked
    where preference = 1

),

grid as (

    select
        unit_periods.unit_code,
        unit_periods.period,
        unit_versions.unit_key,
        coalesce(unit_versions.province_code, unit_periods.unit_code) as province_code,
        metrics.*
    from unit_periods
    left join unit_versions
        on unit_versions.unit_code = unit_periods.unit_code and unit_versions.period = unit_periods.period
    cross join metrics

),

sourced as (

    select
        grid.*,
        own.numerator as own_numerator,
        own.denominator as own_denominator,
        own.published_score as own_published_score,
        province.numerator as province_numerator,
        province.denominator as province_denominator,
        province.published_score as province_published_score,
        unit_throughput.numerator as dossier_stats_numerator,
        unit_throughput.denominator as dossier_stats_denominator,
        own.metric_code is not null as has_own_row,
        province.metric_code is not null as has_province_row
    from grid
    left join submitted as own
        on own.unit_code = grid.unit_code and own.period = grid.period and own.metric_code = grid.metric_code
    left join submitted as province
        on grid.is_province_wide and province.unit_code = grid.province_code
        and province.period = grid.period and province.metric_code = grid.metric_code
    left join unit_throughput
        on grid.dossier_stats_measure = 'progress'
        and unit_throughput.unit_code = grid.unit_code and unit_throughput.period = grid.period

),

chosen as (

    select
        sourced.*,
        case
            when score_method = 'published' then case when has_own_row then 'published' end
            when has_own_row then 'portal'
            when has_province_row then 'province'
            when dossier_stats_denominator is not null then 'dossier_stats'
        end as value_source
    from sourced

),

valued as (

    select
        chosen.*,
        case value_source
            when 'portal' then own_numerator
            when 'province' then province_numerator
            when 'dossier_stats' then dossier_stats_numerator
        end as numerator,
        case value_source
            when 'portal' then own_denominator
            when 'province' then province_denominator
            when 'dossier_stats' then dossier_stats_denominator
        end as denominator,
        case when value_source = 'province' then province_published_score else own_published_score end
            as published_score
    from chosen

),

scored as (

    select
        valued.*,
        case
            when value_source is null or value_source = 'published' then null
            when coalesce(denominator, 0) = 0 then 0
            else round(100.0 * numerator / denominator, 2)
        end as ratio_pct,
        case
            when value_source is null or not is_scored then null
            when value_source = 'published' then round(published_score, 2)
            when coalesce(denominator, 0) = 0 then round(score_when_no_denominator, 2)
            else round(max_score * least(1.0, 100.0 * numerator / (denominator * full_ratio_pct)), 2)
        end as score,
        case
            when dossier_stats_denominator is null or not is_scored then null
            when dossier_stats_denominator = 0 then round(score_when_no_denominator, 2)
            else round(max_score * least(
                1.0, 100.0 * dossier_stats_numerator / (dossier_stats_denominator * full_ratio_pct)), 2)
        end as dossier_stats_score
    from valued

),

group_published as (

    select unit_code, period, metric_code as group_code, published_score as group_published_score
    from submitted

),

final as (

    select
        {{ surrogate_key(['scored.unit_code', 'scored.period', 'scored.metric_code']) }} as service_index_key,
        scored.unit_key,
        scored.unit_code,
        unit_names.unit_name,
        scored.province_code,
        case when scored.period ~ '^[0-9]{4}$' then null else {{ period_key('scored.period') }} end as period_key,
        scored.period,
        case when scored.period ~ '^[0-9]{4}$' then 'year' else 'month' end as period_type,
        scored.metric_code,
        scored.metric_name_vi,
        scored.metric_name_en,
        scored.group_code,
        groups.group_name_vi as group_name,
        groups.group_name_en,
        scored.sort_order,
        scored.value_source,
        scored.value_source is not null as has_data,
        scored.is_scored,
        scored.is_province_wide,
        scored.score_method = 'published' as is_published_only,
        scored.numerator,
        scored.denominator,
        scored.ratio_pct,
        scored.score,
        scored.max_score,
        scored.full_ratio_pct,
        scored.published_score,
        scored.score - scored.published_score as score_difference,
        scored.dossier_stats_numerator,
        scored.dossier_stats_denominator,
        scored.dossier_stats_score,
        case when scored.value_source = 'portal' then scored.score - scored.dossier_stats_score end
            as dossier_stats_score_difference,
        sum(scored.score) over (partition by scored.unit_code, scored.period, scored.group_code) as group_score,
        groups.group_max_score,
        round(100 * sum(scored.score) over (partition by scored.unit_code, scored.period, scored.group_code)
              / groups.group_max_score, 2) as group_pct,
        group_published.group_published_score,
        sum(scored.score) over (partition by scored.unit_code, scored.period, scored.group_code)
            - group_published.group_published_score as group_score_difference,
        sum(scored.score) over (partition by scored.unit_code, scored.period) as total_score,
        sum(scored.max_score) over (partition by scored.unit_code, scored.period) as total_max_score
    from scored
    inner join groups on groups.group_code = scored.group_code
    left join {{ ref('int_units__versions') }} as unit_names on unit_names.unit_key = scored.unit_key
    left join group_published
        on group_published.unit_code = scored.unit_code and group_published.period = scored.period
        and group_published.group_code = scored.group_code

)

select * from final
