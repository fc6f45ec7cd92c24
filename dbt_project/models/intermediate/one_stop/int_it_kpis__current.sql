-- IT KPI rows of the current submission of each unit x period.
with

current_rows as (

    {{ current_rows('stg_reform__it_kpis', 'it_kpis', ['kpi_code']) }}

),

final as (

    select
        {{ surrogate_key(['unit_code', 'period', 'kpi_code']) }} as it_kpi_id,
        unit_code,
        period,
        kpi_code,
        numerator,
        denominator,
        file_id,
        row_number as file_row_number,
        loaded_at
    from current_rows

)

select * from final
