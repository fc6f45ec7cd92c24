-- Every unit x period where our Decision 766 score and the portal's published score differ by
-- more than 0.01: one row per metric and one per group that differ (published-only figures,
-- taken from the portal, cannot differ and are left out).
with

scores as (

    select * from {{ ref('rpt_service_index') }}

),

metric_rows as (

    select
        unit_key, unit_code, period, 'metric' as level, group_code, metric_code as code,
        score as our_score, published_score, score_difference as difference
    from scores
    where not is_published_only and published_score is not null and is_scored
      and (score is null or abs(score_difference) > 0.01)

),

group_rows as (

    select distinct
        unit_key, unit_code, period, 'group' as level, group_code, group_code as code,
        group_score as our_score, group_published_score as published_score, group_score_difference as difference
    from scores
    where not is_published_only and group_published_score is not null
      and (group_score is null or abs(group_score_difference) > 0.01)

),

final as (

    select
        {{ surrogate_key(['unit_code', 'period', 'level', 'code']) }} as reconciliation_key,
        *
    from (select * from metric_rows union all select * from group_rows) as differing

)

select * from final
