with

source as (

    select * from {{ ref('fields') }}

),

final as (

    select field_code, field_name_vi, field_name_en, sort_order
    from source

)

select * from final
