-- The Decision 766 catalogue as the national portal scores it (SPEC §2), one row per metric.
with

source as (

    select * from {{ ref('service_index_metrics') }}

),

final as (

    select
        metric_code,
        group_code,
        max_score,
        full_ratio_pct,
        score_when_no_denominator,
        is_scored,
        is_province_wide,
        score_method,
        nullif(dossier_stats_measure, '') as dossier_stats_measure,
        name_vi as metric_name_vi,
        name_en as metric_name_en,
        sort_order
    from source

)

select * from final
