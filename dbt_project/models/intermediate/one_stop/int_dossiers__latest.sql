{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='dossier_id',
        on_schema_change='sync_all_columns',
        indexes=[
            {'columns': ['dossier_id'], 'unique': True},
            {'columns': ['unit_code', 'closed_on']},
            {'columns': ['loaded_at']},
        ],
        pre_hook="{{ backfill_delete_dossiers() }}"
    )
}}
-- Record-level dossiers: the latest file that carries a dossier id wins (file received_at, then
-- file id, then row number), whatever order the files are loaded in.
--
-- Incremental on load time: a run reads only the rows of files loaded after the newest load time
-- already here, never all of history: those files' ids are looked up first and given as a literal
-- list, so that only those files' tables (raw.dossiers is partitioned by file) are read. Strictly after
-- (>, where the fact tables use >=): a record export can be millions of rows in one file, and
-- re-reading the last night's file every night would cost as much as that file; a re-run with
-- nothing new changes nothing, so the tables are the same either way. A new row
-- replaces the stored version only if it comes from a later file (delete+insert on dossier_id);
-- the version it replaces is remembered in prev_* so that int_dossiers__monthly can recompute
-- the unit x month partitions the old version counted in.
-- Backfill (vars backfill_from / backfill_to): the stored dossiers received in the window are
-- deleted first, then the latest eligible row of every dossier received in the window is
-- inserted, whatever its load time (so a file rejected after the fact stops counting).
--
-- Dates: received/due/completed are local Asia/Ho_Chi_Minh wall times (staging keeps them as
-- timestamp without time zone), so ::date is the Vietnamese calendar date. closed_on is the day
-- a dossier left the pending stock: its completion date (never before its receipt date), or
-- 'infinity' while it is pending.
{%- set new_files = [] -%}
{%- if execute and is_incremental() and not var('backfill_from', none) -%}
    {#- the files loaded since the watermark, as a literal list: the planner then reads only their
        partitions of raw.dossiers (one table per file) -#}
    {%- set found = run_query(
        "select file_id from " ~ source('audit', 'submission_files') ~ " where kind = 'dossiers'"
        ~ " and status in " ~ accepted_file_statuses()
        ~ " and coalesce(loaded_at, registered_at) > (select coalesce(max(loaded_at), '-infinity'::timestamptz) from "
        ~ this ~ ") order by file_id") -%}
    {%- set new_files = found.columns[0].values() | list -%}
{%- endif %}
with

batch as (

    select * from {{ ref('stg_reform__dossiers') }}
    where is_well_formed
    {%- if is_incremental() %}
        {%- if var('backfill_from', none) %}
        and to_char(received_at, 'YYYY-MM') between '{{ var("backfill_from") }}' and '{{ var("backfill_to", var("backfill_from")) }}'
        {%- else %}
        and file_id in ({{ (new_files | join(', ')) if new_files else 'null' }})
        {%- endif %}
    {%- endif %}

),

ranked as (

    select
        *,
        row_number() over (
            partition by dossier_id
            order by file_received_at desc, file_id desc, row_number desc
        ) as recency
    from batch

),

candidates as (

    select
        dossier_id,
        unit_code,
        field_code,
        procedure_code,
        channel,
        received_at,
        due_at,
        completed_at,
        status,
        is_satisfied,
        received_at::date as received_on,
        due_at::date as due_on,
        completed_at::date as completed_on,
        case
            when completed_at is null then 'infinity'::date
            else greatest(completed_at::date, received_at::date)
        end as closed_on,
        file_id,
        row_number as file_row_number,
        file_received_at,
        loaded_at
    from ranked
    where recency = 1

),

merged as (

    {% if is_incremental() %}
    select
        candidates.*,
        -- the version this row replaces (kept through a re-run of the same version)
        case when same_version then stored.prev_unit_code else stored.unit_code end as prev_unit_code,
        case when same_version then stored.prev_received_on else stored.received_on end as prev_received_on,
        case when same_version then stored.prev_closed_on else stored.closed_on end as prev_closed_on
    from candidates
    left join {{ this }} as stored on stored.dossier_id = candidates.dossier_id
    cross join lateral (
        select stored.file_id = candidates.file_id and stored.file_row_number = candidates.file_row_number
            as same_version
    ) as version
    where stored.dossier_id is null
        -- an older file arriving late never overrides a later one
        or (candidates.file_received_at, candidates.file_id, candidates.file_row_number)
            >= (stored.file_received_at, stored.file_id, stored.file_row_number)
    {% else %}
    select
        candidates.*,
        null::text as prev_unit_code,
        null::date as prev_received_on,
        null::date as prev_closed_on
    from candidates
    {% endif %}

),

final as (

    select
        merged.*,
        completed_at is null as is_pending
    from merged

)

select * from final
