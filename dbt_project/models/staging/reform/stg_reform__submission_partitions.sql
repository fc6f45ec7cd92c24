-- Every unit x period a file reports, with the file's fate. is_current follows the rule of
-- audit.v_submission_partitions (latest received_at, then highest file id, per kind x unit x
-- period) but only among files eligible for staging (accepted_file_statuses()).
with

partitions as (

    select * from {{ source('audit', 'submission_partitions') }}

),

files as (

    select * from {{ ref('stg_reform__submission_files') }}

),

joined as (

    select
        partitions.file_id,
        partitions.kind,
        partitions.unit_code,
        partitions.period,
        partitions.row_count,
        files.status as file_status,
        files.received_at,
        files.loaded_at,
        files.is_eligible
    from partitions
    inner join files on files.file_id = partitions.file_id

),

final as (

    select
        {{ surrogate_key(['file_id', 'unit_code', 'period']) }} as submission_partition_id,
        *,
        is_eligible and row_number() over (
            partition by kind, unit_code, period, is_eligible
            order by received_at desc, file_id desc
        ) = 1 as is_current
    from joined

)

select * from final
