-- Decision 766/QĐ-TTg service index per unit x month x metric, from the seeded rules
-- (service_index_metrics): ratio = numerator / denominator (%), score = max_score x
-- min(1, ratio / full_score_ratio_pct), score_when_no_denominator when the denominator is 0.
-- dossier_stats measures: progress = (early + on time + pending in time) / received total;
-- online_share = received online / received this period. A unit's all-fields row is used when
-- it sent one, else the sum of its per-field rows.
with

throughput as (

    select * from {{ ref('fct_dossier_throughput') }}

),

adoption as (

    select * from {{ ref('fct_it_adoption') }}

),

metrics as (

    select * from {{ ref('stg_reference__service_index_metrics') }}

),

units as (

    select * from {{ ref('int_units__resolved_by_month') }}

),

unit_throughput as (

    select
        unit_code,
        period,
        sum(resolved_early + resolved_on_time + pending_in_time) as progress_numerator,
        sum(received_total) as progress_denominator,
        sum(received_online) as online_numerator,
        sum(received_online + received_direct + coalesce(received_postal, 0)) as online_denominator
    from throughput
    where field_code = 'ALL'
       or not exists (
            select 1 from throughput as all_row
            where all_row.unit_code = throughput.unit_code and all_row.period = throughput.period
              and all_row.field_code = 'ALL'
        )
    group by unit_code, period

),

measures as (

    select unit_code, period, 'dossier_stats' as measure_source, 'progress' as measure,
           progress_numerator::numeric as numerator, progress_denominator::numeric as denominator
    from unit_throughput
    union all
    select unit_code, period, 'dossier_stats', 'online_share', online_numerator, online_denominator
    from unit_throughput
    union all
    select unit_code, period, 'it_kpis', kpi_code, numerator, denominator
    from adoption

),

unit_periods as (

    select distinct unit_code, period from measures

),

scored as (

    select
        unit_periods.unit_code,
        unit_periods.period,
        metrics.metric_code,
        metrics.group_code,
        metrics.group_name_vi,
        metrics.measure_source,
        metrics.measure,
        measures.numerator,
        measures.denominator,
        measures.denominator is not null as has_data,
        case
            when measures.denominator is null then null
            when measures.denominator = 0 then 0
            else round(100.0 * measures.numerator / measures.denominator, 2)
        end as ratio_pct,
        case
            when measures.denominator is null then null
            when measures.denominator = 0 then metrics.score_when_no_denominator
            else round(metrics.max_score * least(
                1.0, 100.0 * measures.numerator / (measures.denominator * metrics.full_score_ratio_pct)
            ), 2)
        end as score,
        metrics.max_score,
        metrics.full_score_ratio_pct,
        metrics.sort_order
    from unit_periods
    cross join metrics
    left join measures
        on measures.unit_code = unit_periods.unit_code and measures.period = unit_periods.period
        and measures.measure_source = metrics.measure_source and measures.measure = metrics.measure

),

final as (

    select
        {{ surrogate_key(['scored.unit_code', 'scored.period', 'scored.metric_code']) }} as service_index_key,
        units.unit_key,
        scored.unit_code,
        {{ period_key('scored.period') }} as period_key,
        scored.period,
        scored.metric_code,
        scored.group_code,
        scored.group_name_vi as group_name,
        scored.numerator,
        scored.denominator,
        scored.has_data,
        scored.ratio_pct,
        scored.score,
        scored.max_score,
        scored.full_score_ratio_pct,
        sum(scored.score) over (partition by scored.unit_code, scored.period, scored.group_code) as group_score,
        sum(scored.max_score) over (partition by scored.unit_code, scored.period, scored.group_code)
            as group_max_score,
        sum(scored.score) over (partition by scored.unit_code, scored.period) as total_score,
        sum(scored.max_score) over (partition by scored.unit_code, scored.period) as total_max_score
    from scored
    left join units on units.unit_code = scored.unit_code and units.period = scored.period

)

select * from final
