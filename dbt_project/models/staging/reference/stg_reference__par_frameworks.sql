with

source as (

    select * from {{ ref('par_frameworks') }}

),

final as (

    select
        framework_code,
        framework_name_vi,
        framework_name_en,
        province_code,
        unit_level,
        year_from,
        year_to,
        content_areas,
        criteria,
        sub_criteria,
        max_points,
        survey_points
    from source

)

select * from final
