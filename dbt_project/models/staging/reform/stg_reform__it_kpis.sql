with

source as (

    {{ eligible_rows('it_kpis') }}

),

typed as (

    select
        {{ lineage_columns() }},
        nullif(btrim(source.unit_code), '') as unit_code,
        {{ to_period('source.period') }} as period,
        nullif(btrim(source.kpi_code), '') as kpi_code,
        -- counts (validation's reading, raw.count_cell), numeric as the marts have them
        {{ to_count('source.numerator') }}::numeric as numerator,
        {{ to_count('source.denominator') }}::numeric as denominator
    from source

),

final as (

    select
        {{ surrogate_key(['file_id', 'row_number']) }} as it_kpi_row_id,
        *,
        unit_code is not null and period is not null and kpi_code is not null
            and numerator >= 0 and denominator >= 0 as is_well_formed
    from typed

)

select * from final
