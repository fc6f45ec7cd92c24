with

source as (

    {{ eligible_rows('par_scores') }}

),

typed as (

    select
        {{ lineage_columns() }},
        nullif(btrim(source.unit_code), '') as unit_code,
        {{ to_year('source.year') }} as year,
        nullif(btrim(source.criterion_code), '') as criterion_code,
        {{ to_decimal('source.self_score') }} as self_score,
        {{ to_decimal('source.appraised_score') }} as appraised_score,
        source.evidence,
        (nullif(btrim(source.self_score), '') is null or {{ to_decimal('source.self_score') }} is not null)
            and (nullif(btrim(source.appraised_score), '') is null
                 or {{ to_decimal('source.appraised_score') }} is not null) as has_valid_scores
    from source

),

final as (

    select
        {{ surrogate_key(['file_id', 'row_number']) }} as par_score_row_id,
        *,
        unit_code is not null and year is not null and criterion_code is not null and has_valid_scores
            as is_well_formed
    from typed

)

select * from final
