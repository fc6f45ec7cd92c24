with

source as (

    select * from {{ source('raw', 'par_scores') }}

),

quarantined as (

    select _file_id, _row_number from {{ source('quarantine', 'par_scores') }}

),

files as (

    select * from {{ ref('stg_reform__submission_files') }} where is_eligible

),

typed as (

    select
        source._file_id as file_id,
        source._row_number as row_number,
        files.received_at as file_received_at,
        files.loaded_at,
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
    inner join files on files.file_id = source._file_id
    where not exists (
        select 1 from quarantined q
        where q._file_id = source._file_id and q._row_number = source._row_number
    )

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
