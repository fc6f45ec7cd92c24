-- The six Decision 766 groups with their maxima (they sum to 100).
with

source as (

    select * from {{ ref('service_index_groups') }}

),

final as (

    select
        group_code,
        max_score as group_max_score,
        name_vi as group_name_vi,
        name_en as group_name_en,
        is_published_only,
        sort_order as group_sort_order
    from source

)

select * from final
