with

source as (

    select * from {{ ref('kpis') }}

),

final as (

    select kpi_code, kpi_name_vi, kpi_name_en, numerator_vi, denominator_vi, target_pct, direction, sort_order
    from source

)

select * from final
