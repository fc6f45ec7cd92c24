-- Decision 766 rows of eligible files (portal counts and published scores), quarantined rows
-- excluded, typed. period is a month 'YYYY-MM' or a year 'YYYY' (the portal's year-to-date).
with

source as (

    {{ eligible_rows('service_index') }}

),

typed as (

    select
        {{ lineage_columns() }},
        nullif(btrim(source.unit_code), '') as submitted_unit_code,
        coalesce({{ to_period('source.period') }},
                 case when btrim(source.period) ~ '^[0-9]{4}$' then btrim(source.period) end) as period,
        nullif(btrim(source.metric_code), '') as metric_code,
        -- counts (validation's reading, raw.count_cell), numeric as the marts have them
        {{ to_count('source.numerator') }}::numeric as numerator,
        {{ to_count('source.denominator') }}::numeric as denominator,
        {{ to_decimal('source.published_score') }} as published_score
    from source

),

final as (

    select
        {{ surrogate_key(['file_id', 'row_number']) }} as service_index_row_id,
        *,
        submitted_unit_code is not null and period is not null and metric_code is not null
            and coalesce(numerator, 0) >= 0 and coalesce(denominator, 0) >= 0 as is_well_formed
    from typed

)

select * from final
