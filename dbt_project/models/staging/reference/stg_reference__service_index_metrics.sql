with

source as (

    select * from {{ ref('service_index_metrics') }}

),

final as (

    select
        metric_code,
        group_code,
        group_name_vi,
        group_name_en,
        metric_name_vi,
        metric_name_en,
        max_score,
        source as measure_source,
        measure,
        full_score_ratio_pct,
        score_when_no_denominator,
        sort_order
    from source

)

select * from final
