-- II.06a rows of the current submission of each unit x period (a later file for the same
-- unit and period supersedes the earlier one: its rows replace, never add to, the old ones).
with

current_rows as (

    {{ current_rows('stg_reform__dossier_stats', 'dossier_stats', ['field_code']) }}

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

)

select * from final
