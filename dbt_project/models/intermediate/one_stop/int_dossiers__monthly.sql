{{ partition_incremental('period', on_schema_change='sync_all_columns', indexes=[
    {'columns': ['unit_code', 'period']},
    {'columns': ['batch_loaded_at']},
]) }}
-- Biểu II.06a derived from the records, per unit x month x field, plus one 'ALL' row per unit x
-- month (all fields together; it is also the partition marker, see below).
--
-- Definitions (calendar dates in Asia/Ho_Chi_Minh; see int_dossiers__latest for closed_on):
--   received_online / _direct / _postal: received in the month, by channel;
--   received_carried_over: received before the month and not completed before it;
--   resolved_early / _on_time / _late: completed in the month, completion DATE before / equal to /
--     after the due DATE ("on time" compares dates, not times: a dossier due on the 10th and
--     returned on the 10th at 16:00 is on time; one returned on the 11th is late);
--   pending_in_time / _overdue: not completed by the last day of the month, due on or after that
--     day / due before it.
-- So carried over + received = resolved + pending in every row (II.06a's identity).
--
-- Months: a unit's months run from its first receipt to its horizon, the latest month its
-- records reach (receipt or completion); a pending dossier counts in every month up to it.
--
-- Incremental: a run recomputes only the unit x month partitions touched by dossiers whose
-- version changed since the last run (int_dossiers__latest.loaded_at > watermark): for each, the
-- months from its receipt to its completion (or to the horizon while pending), for the new and
-- the replaced version, plus the months a unit's horizon advances by; per unit, every month
-- from its first to its last touched month is recomputed (usually the same set). It reads only
-- the touched units' dossiers still open at their first touched month, by one index range scan
-- (unit_code, closed_on) per unit, and each unit's stored horizon by one backward index lookup
-- (unit_code, period): the cost follows the new data and the open stock, never the whole
-- history. The query is shaped so that no plan can do otherwise (lateral index lookups per unit,
-- no join of records against CTEs), because the planner's estimates for a batch just loaded are
-- unreliable. The lateral subqueries carry `offset 0` (or a limit): without one, Postgres pulls a
-- plain lateral subquery up into an ordinary join and may merge-join the touched units against
-- the whole (unit_code, closed_on) index, i.e. read every dossier of history (it did: 2 M index
-- entries read for the 100 k wanted, with 2 M dossiers of history).
-- delete+insert on (unit_code, period) replaces a partition's rows; every touched partition
-- emits its 'ALL' row (zeros if it became empty) so that a partition left without records is
-- emptied too.
-- Backfill (backfill_from / backfill_to): the window is deleted and recomputed from all records.
{% set counts = ['received_carried_over', 'received_online', 'received_direct', 'received_postal',
                  'resolved_early', 'resolved_on_time', 'resolved_late', 'pending_in_time', 'pending_overdue'] -%}
{%- set backfill = is_incremental() and var('backfill_from', none) -%}
{%- set nightly = is_incremental() and not var('backfill_from', none) -%}
{%- set watermark = none -%}
{%- if execute and nightly -%}
    {%- set watermark = run_query("select coalesce(max(batch_loaded_at), '-infinity'::timestamptz)::text from " ~ this).columns[0].values()[0] -%}
{%- endif %}
{#- int_dossiers__latest is referenced directly in each CTE, never through a shared CTE, which
    Postgres would materialise in full (all of history) before filtering it. -#}
{%- set dossiers = ref('int_dossiers__latest') %}
{%- set window_from = "date '" ~ var('backfill_from', '1900-01') ~ "-01'" %}
{%- set window_to = "date '" ~ var('backfill_to', var('backfill_from', '1900-01')) ~ "-01'" %}
with

{% if nightly %}

changed as (

    select * from {{ dossiers }} where loaded_at > '{{ watermark }}'::timestamptz

),

-- receipt .. completion of the new and of the replaced versions
ranges as (

    select unit_code, received_on as from_on, closed_on as to_on from changed
    union all
    select prev_unit_code, prev_received_on, prev_closed_on from changed where prev_unit_code is not null

),

-- each touched unit's latest stored month ('YYYY-MM' sorts as the month): one index lookup per unit
stored_horizon as (

    select range_units.unit_code, stored.month_start as horizon_month
    from (select distinct unit_code from ranges) as range_units
    cross join lateral (
        select m.month_start from {{ this }} as m
        where m.unit_code = range_units.unit_code
        order by m.period desc
        limit 1
    ) as stored

),

horizon as (

    select
        ranges.unit_code,
        max(stored_horizon.horizon_month) as stored_month,
        greatest(
            max(stored_horizon.horizon_month),
            max({{ month_of("greatest(ranges.from_on, case when ranges.to_on < 'infinity' then ranges.to_on end)") }})
        ) as horizon_month
    from ranges
    left join stored_horizon on stored_horizon.unit_code = ranges.unit_code
    group by ranges.unit_code

),

touched as (

    select ranges.unit_code, month::date as month_start
    from ranges
    inner join horizon on horizon.unit_code = ranges.unit_code
    cross join lateral {{ month_series(month_of('ranges.from_on'), month_of('least(ranges.to_on, horizon.horizon_month)')) }} as month
    union
    -- months the horizon advances by: the open stock counts in them
    select horizon.unit_code, month::date
    from horizon
    cross join lateral {{ month_series("horizon.stored_month + interval '1 month'", 'horizon.horizon_month') }} as month
    where horizon.stored_month is not null

),

touched_units as (

    select
        touched.unit_code,
        min(touched.month_start) as first_month,
        max(touched.month_start) as last_month,
        max(horizon.horizon_month) as horizon_month
    from touched
    inner join horizon on horizon.unit_code = touched.unit_code
    group by touched.unit_code

),

{% elif backfill %}

window_units as (

    select distinct unit_code from {{ dossiers }}
    where received_on < {{ window_to }} + interval '1 month' and closed_on >= {{ window_from }}

),

-- each unit's horizon (its latest month) from the records: one index lookup per unit
touched_units as (

    select
        window_units.unit_code,
        {{ window_from }} as first_month,
        least({{ window_to }}, unit_horizon.horizon_month) as last_month,
        unit_horizon.horizon_month
    from window_units
    cross join lateral (
        select max({{ month_of("greatest(d.received_on, case when d.closed_on < 'infinity' then d.closed_on end)") }})
            as horizon_month
        from {{ dossiers }} as d
        where d.unit_code = window_units.unit_code
    ) as unit_horizon

),

{% endif %}

{% if is_incremental() %}

-- the touched units' dossiers open at some point of their touched months
active as (

    select
        unit_dossiers.*,
        touched_units.first_month,
        touched_units.last_month,
        touched_units.horizon_month
    from touched_units
    cross join lateral (
        select * from {{ dossiers }} as d
        where d.unit_code = touched_units.unit_code
            and d.closed_on >= touched_units.first_month
            and d.received_on < touched_units.last_month + interval '1 month'
        offset 0  -- keeps this a per-unit index range scan (see the header)
    ) as unit_dossiers

),

{% else %}

horizon as (

    select
        unit_code,
        max({{ month_of("greatest(received_on, case when closed_on < 'infinity' then closed_on end)") }}) as horizon_month
    from {{ dossiers }}
    group by unit_code

),

active as (

    select
        d.*,
        null::date as first_month,
        null::date as last_month,
        horizon.horizon_month
    from {{ dossiers }} as d
    inner join horizon on horizon.unit_code = d.unit_code

),

{% endif %}

-- one row per dossier and month it counts in (within the months being computed)
exploded as (

    select
        active.unit_code,
        active.field_code,
        active.channel,
        active.received_on,
        active.due_on,
        active.closed_on,
        month::date as month_start,
        (month + interval '1 month' - interval '1 day')::date as month_end
    from active
    cross join lateral {{ month_series(
        "greatest(" ~ month_of('active.received_on') ~ ", active.first_month)",
        "least(" ~ month_of('least(active.closed_on, active.horizon_month)') ~ ", active.last_month)"
    ) }} as month

),
aggregated as (

    select
        unit_code,
        month_start,
        case when grouping(field_code) = 1 then 'ALL' else field_code end as field_code,
        count(*) filter (where received_on < month_start) as received_carried_over,
        count(*) filter (where received_on >= month_start and channel = 'online') as received_online,
        count(*) filter (where received_on >= month_start and channel = 'direct') as received_direct,
        count(*) filter (where received_on >= month_start and channel = 'postal') as received_postal,
        count(*) filter (where closed_on <= month_end and closed_on < due_on) as resolved_early,
        count(*) filter (where closed_on <= month_end and closed_on = due_on) as resolved_on_time,
        count(*) filter (where closed_on <= month_end and closed_on > due_on) as resolved_late,
        count(*) filter (where closed_on > month_end and due_on >= month_end) as pending_in_time,
        count(*) filter (where closed_on > month_end and due_on < month_end) as pending_overdue
    from exploded
    group by grouping sets ((unit_code, month_start, field_code), (unit_code, month_start))

),

{% if nightly %}

-- every touched partition keeps an 'ALL' row, with zeros when it has no record any more
partitioned as (

    select * from aggregated
    union all
    select
        touched.unit_code,
        touched.month_start,
        'ALL' as field_code,
        {%- for c in counts %}
        0 as {{ c }}{{ ',' if not loop.last }}
        {%- endfor %}
    from touched
    where not exists (
        select 1 from aggregated
        where aggregated.unit_code = touched.unit_code
            and aggregated.month_start = touched.month_start
            and aggregated.field_code = 'ALL'
    )

),

{% else %}

partitioned as (

    select * from aggregated

),

{% endif %}

final as (

    select
        {{ surrogate_key(['unit_code', "to_char(month_start, 'YYYY-MM')", 'field_code']) }} as dossier_month_id,
        unit_code,
        to_char(month_start, 'YYYY-MM') as period,
        month_start,
        field_code,
        {%- for c in counts %}
        {{ c }},
        {%- endfor %}
        received_carried_over + received_online + received_direct + received_postal as received_total,
        resolved_early + resolved_on_time + resolved_late as resolved_total,
        pending_in_time + pending_overdue as pending_total,
        {% if nightly -%}
        (select max(loaded_at) from changed)
        {%- else -%}
        (select max(loaded_at) from {{ dossiers }})
        {%- endif %} as batch_loaded_at,
        now() as dbt_updated_at
    from partitioned

)

select * from final
