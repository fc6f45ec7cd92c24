{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook="{{ delete_recomputed_dossier_partitions() }}"
    )
}}
-- Biểu II.06a as the records show it, per unit x month x field (definitions in
-- int_dossiers__monthly). Incremental: the pre-hook deletes the partitions int_dossiers__monthly
-- recomputed since this table's watermark, then their new rows are appended; other partitions
-- are not touched. Backfill (backfill_from / backfill_to): the window is deleted and reloaded from
-- int_dossiers__monthly. Fields only: the all-fields total is the sum over field_code.
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

-- the unit version valid on the first of the month, else the nearest (as int_units__resolved_by_month)
unit_versions as (

    select
        monthly.dossier_month_id,
        versions.unit_key,
        row_number() over (
            partition by monthly.dossier_month_id
            order by
                (monthly.month_start between versions.valid_from and versions.valid_to) desc,
                versions.valid_from desc
        ) as preference
    from monthly
    inner join {{ ref('int_units__versions') }} as versions on versions.unit_code = monthly.unit_code

),

final as (

    select
        monthly.dossier_month_id as dossier_records_key,
        unit_versions.unit_key,
        monthly.unit_code,
        {{ period_key('monthly.period') }} as period_key,
        monthly.period,
        monthly.field_code,
        {%- for c in counts %}
        monthly.{{ c }},
        {%- endfor %}
        monthly.received_total,
        monthly.resolved_total,
        monthly.pending_total,
        {{ pct('monthly.resolved_early + monthly.resolved_on_time', 'monthly.resolved_total') }} as on_time_rate,
        {{ pct('monthly.received_online', 'monthly.received_total - monthly.received_carried_over') }} as online_rate,
        {{ pct('monthly.received_postal', 'monthly.received_total - monthly.received_carried_over') }} as postal_rate,
        monthly.batch_loaded_at,
        monthly.dbt_updated_at
    from monthly
    left join unit_versions
        on unit_versions.dossier_month_id = monthly.dossier_month_id
        and unit_versions.preference = 1

)

select * from final
