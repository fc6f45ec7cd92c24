-- One row per unit x year x leaf. SPEC §3: "each score is taken from the latest accepted file
-- that provides it": self_score and appraised_score are resolved independently, each from the
-- latest file (received_at, then file id, then row) with a non-null value.
with

scores as (

    select * from {{ ref('stg_reform__par_scores') }}
    where is_well_formed

),

resolved as (

    select
        unit_code,
        year,
        criterion_code,
        (array_agg(self_score order by file_received_at desc, file_id desc, row_number desc)
            filter (where self_score is not null))[1] as self_score,
        (array_agg(file_id order by file_received_at desc, file_id desc, row_number desc)
            filter (where self_score is not null))[1] as self_score_file_id,
        (array_agg(appraised_score order by file_received_at desc, file_id desc, row_number desc)
            filter (where appraised_score is not null))[1] as appraised_score,
        (array_agg(file_id order by file_received_at desc, file_id desc, row_number desc)
            filter (where appraised_score is not null))[1] as appraised_score_file_id,
        max(loaded_at) as loaded_at
    from scores
    group by unit_code, year, criterion_code

),

final as (

    select
        {{ surrogate_key(['unit_code', 'year', 'criterion_code']) }} as par_score_id,
        unit_code,
        year,
        criterion_code,
        self_score,
        self_score_file_id,
        appraised_score,
        appraised_score_file_id,
        loaded_at
    from resolved

)

select * from final
