with

criteria as (

    select * from {{ ref('stg_reference__par_criteria') }}

),

frameworks as (

    select framework_code, year_from, year_to from {{ ref('stg_reference__par_frameworks') }}

),

final as (

    select
        criteria.criterion_key,
        criteria.framework_code,
        frameworks.year_from,
        frameworks.year_to,
        criteria.content_area_code,
        criteria.content_area_name_vi as content_area_name,
        criteria.content_area_name_en,
        criteria.criterion_group_code,
        criteria.criterion_group_name_vi as criterion_group_name,
        criteria.criterion_code,
        criteria.criterion_name_vi as criterion_name,
        criteria.max_points,
        criteria.method,
        criteria.method = 'survey' as is_survey,
        criteria.sort_order
    from criteria
    inner join frameworks on frameworks.framework_code = criteria.framework_code

)

select * from final
