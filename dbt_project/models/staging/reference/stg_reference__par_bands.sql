with

source as (

    select * from {{ ref('par_bands') }}

),

final as (

    select province_code, band_code, band_name_vi, band_name_en, min_index_pct, sort_order
    from source

)

select * from final
