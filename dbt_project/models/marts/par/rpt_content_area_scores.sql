with

scores as (

    select unit_code, unit_key, year, framework_code, content_area_code, self_score, appraised_score
    from {{ ref('fct_criteria_scores') }}

),

criteria as (

    select * from {{ ref('stg_reference__par_criteria') }}

),

versions as (

    select unit_key, unit_name from {{ ref('int_units__versions') }}

),

area_max as (

    select framework_code, content_area_code, content_area_name_vi, content_area_name_en,
           sum(max_points) as max_points
    from criteria
    group by framework_code, content_area_code, content_area_name_vi, content_area_name_en

),

area_points as (

    select
        unit_code,
        unit_key,
        year,
        framework_code,
        content_area_code,
        sum(self_score) as self_points,
        sum(appraised_score) as points
    from scores
    group by unit_code, unit_key, year, framework_code, content_area_code

),

final as (

    select
        {{ surrogate_key(['area_points.unit_code', 'area_points.year', 'area_points.content_area_code']) }}
            as content_area_score_key,
        area_points.unit_key,
        area_points.unit_code,
        versions.unit_name,
        area_points.year,
        area_points.framework_code,
        area_points.content_area_code,
        area_max.content_area_name_vi as content_area_name,
        area_max.content_area_name_en,
        round(area_points.self_points, 2) as self_points,
        round(area_points.points, 2) as points,
        area_max.max_points,
        round(100.0 * coalesce(area_points.points, 0) / nullif(area_max.max_points, 0), 2) as pct
    from area_points
    inner join area_max
        on area_max.framework_code = area_points.framework_code
        and area_max.content_area_code = area_points.content_area_code
    left join versions on versions.unit_key = area_points.unit_key

)

select * from final
