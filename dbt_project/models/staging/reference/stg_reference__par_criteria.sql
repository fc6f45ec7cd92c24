with

source as (

    select * from {{ ref('par_criteria') }}

),

final as (

    select
        {{ surrogate_key(['framework_code', 'criterion_code']) }} as criterion_key,
        framework_code,
        content_area_code,
        content_area_name_vi,
        content_area_name_en,
        criterion_group_code,
        criterion_group_name_vi,
        criterion_code,
        criterion_name_vi,
        max_points,
        method,
        sort_order
    from source

)

select * from final
