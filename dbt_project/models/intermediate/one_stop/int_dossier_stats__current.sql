-- II.06a rows of the current submission of each unit x period (a later file for the same
-- unit and period supersedes the earlier one: its rows replace, never add to, the old ones).
with

stats as (

    select * from {{ ref('stg_reform__dossier_stats') }}
    where is_well_formed

),

current_partitions as (

    select * from {{ ref('stg_reform__submission_partitions') }}
    where kind = 'dossier_stats' and is_current

),

current_rows as (

    select
        stats.*,
        -- a key repeated inside one file is quarantined by validation; keep the last row if not
        row_number() over (
            partition by stats.unit_code, stats.period, stats.field_code
            order by stats.row_number desc
        ) as duplicate_rank
    from stats
    inner join current_partitions
        on current_partitions.file_id = stats.file_id
        and current_partitions.unit_code = stats.unit_code
        and current_partitions.period = stats.period

),

final as (

    select
        {{ surrogate_key(['unit_code', 'period', 'field_code']) }} as dossier_throughput_id,
        unit_code,
        period,
        field_code,
        received_carried_over,
        received_online,
        received_direct,
        received_postal,
        resolved_early,
        resolved_on_time,
        resolved_late,
        pending_in_time,
        pending_overdue,
        returned_withdrawn,
        file_id,
        row_number as file_row_number,
        loaded_at
    from current_rows
    where duplicate_rank = 1

)

select * from final
