{{ partition_incremental('period') }}
-- Incremental on load time: each run takes the unit x period partitions whose current file was
-- loaded since the last run and replaces ALL rows of those partitions (delete+insert on
-- unit_code, period), so a superseding file replaces the old rows and is never added to them.
with

stats as (

    select * from {{ ref('int_dossier_stats__current') }}
    {% if is_incremental() %}
    where {{ incremental_window('period') }}
    {% endif %}

),

units as (

    select unit_code, period, unit_key from {{ ref('int_units__resolved_by_month') }}

),

totals as (

    select
        stats.*,
        -- postal is null (unknown) on the official 13-column form, whose in-person column holds it (SPEC §3)
        received_carried_over + received_online + received_direct + coalesce(received_postal, 0) as received_total,
        received_online + received_direct + coalesce(received_postal, 0) as received_new,
        resolved_early + resolved_on_time + resolved_late as resolved_total,
        pending_in_time + pending_overdue as pending_total
    from stats

),

final as (

    select
        totals.dossier_throughput_id as dossier_throughput_key,
        units.unit_key,
        totals.unit_code,
        {{ period_key('totals.period') }} as period_key,
        totals.period,
        totals.field_code,
        totals.received_carried_over,
        totals.received_online,
        totals.received_direct,
        totals.received_postal,
        totals.resolved_early,
        totals.resolved_on_time,
        totals.resolved_late,
        totals.pending_in_time,
        totals.pending_overdue,
        totals.returned_withdrawn,
        totals.received_total,
        totals.resolved_total,
        totals.pending_total,
        {{ throughput_rates('totals', 'totals.received_new') }},
        totals.file_id,
        totals.file_row_number,
        totals.loaded_at
    from totals
    left join units on units.unit_code = totals.unit_code and units.period = totals.period

)

select * from final
