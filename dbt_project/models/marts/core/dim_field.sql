with

fields as (

    select * from {{ ref('stg_reference__fields') }}

),

all_fields as (

    -- a II.06a row with a blank field reports all fields together
    select 'ALL' as field_code, 'Tất cả lĩnh vực' as field_name_vi, 'All fields' as field_name_en, 0 as sort_order

),

final as (

    select field_code, field_name_vi, field_name_en, sort_order, false as is_all_fields from fields
    union all
    select field_code, field_name_vi, field_name_en, sort_order, true as is_all_fields from all_fields

)

select * from final
