{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['unit_code', 'period']},
            {'columns': ['batch_loaded_at']},
        ],
        pre_hook="{{ delete_recomputed_dossier_partitions() }}"
    )
}}
-- Biểu II.06a as the records show it, per unit x month x field (definitions in
-- int_dossiers__monthly). Incremental: the pre-hook deletes the partitions int_dossiers__monthly
-- recomputed since this table's watermark, then their new rows are appended; other partitions
-- are not touched. Backfill (backfill_from / backfill_to): the window is deleted and reloaded from
-- int_dossiers__monthly. Fields only: the all-fields total is the sum over field_code.
-- Indexed on batch_loaded_at (the watermark, and the pre-hook's, is one index lookup, not a scan
-- of every month of history) and on (unit_code, period) (the pre-hook's delete can find the
-- recomputed partitions without a scan once the table is large enough for the planner to prefer it).
{% set counts = ['received_carried_over', 'received_online', 'received_direct', 'received_postal',
                  'resolved_early', 'resolved_on_time', 'resolved_late', 'pending_in_time', 'pending_overdue'] -%}
{%- set watermark = none -%}
{%- if execute and is_incremental() and not var('backfill_from', none) -%}
    {%- set watermark = run_query("select coalesce(max(batch_loaded_at), '-infinity'::timestamptz)::text from " ~ this).columns[0].values()[0] -%}
{%- endif %}
with

monthly as (

    select * from {{ ref('int_dossiers__monthly') }}
    where field_code <> 'ALL'
    {%- if is_incremental() and var('backfill_from', none) %}
        and {{ incremental_window('period') }}
    {%- elif is_incremental() %}
        and batch_loaded_at > '{{ watermark }}'::timestamptz
    {%- endif %}

),

versions as (

    select * from {{ ref('int_units__versions') }}

),

-- each row beside every version of its unit, the version valid on the first of the month first,
-- else the nearest (as int_units__resolved_by_month); a row whose unit has no version keeps a null
-- unit_key. One pass over the new rows: no join of them back onto themselves, which the planner,
-- sure that a batch just recomputed is one row, ran as a nested loop (1,480 x 1,480 a night).
ranked as (

    select
        monthly.*,
        versions.unit_key,
        row_number() over (
            partition by monthly.dossier_month_id
            order by
                (monthly.month_start between versions.valid_from and versions.valid_to) desc,
                versions.valid_from desc
        ) as preference
    from monthly
    left join versions on versions.unit_code = monthly.unit_code

),

final as (

    select
        ranked.dossier_month_id as dossier_records_key,
        ranked.unit_key,
        ranked.unit_code,
        {{ period_key('ranked.period') }} as period_key,
        ranked.period,
        ranked.field_code,
        {%- for c in counts %}
        ranked.{{ c }},
        {%- endfor %}
        ranked.received_total,
        ranked.resolved_total,
        ranked.pending_total,
        {{ throughput_rates('ranked', 'ranked.received_total - ranked.received_carried_over') }},
        ranked.batch_loaded_at,
        ranked.dbt_updated_at
    from ranked
    where ranked.preference = 1

)

select * from final
