-- IT KPI rows of the current submission of each unit x period.
with

kpis as (

    select * from {{ ref('stg_reform__it_kpis') }}
    where is_well_formed

),

current_partitions as (

    select * from {{ ref('stg_reform__submission_partitions') }}
    where kind = 'it_kpis' and is_current

),

current_rows as (

    select
        kpis.*,
        row_number() over (
            partition by kpis.unit_code, kpis.period, kpis.kpi_code
            order by kpis.row_number desc
        ) as duplicate_rank
    from kpis
    inner join current_partitions
        on current_partitions.file_id = kpis.file_id
        and current_partitions.unit_code = kpis.unit_code
        and current_partitions.period = kpis.period

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
    where duplicate_rank = 1

)

select * from final
