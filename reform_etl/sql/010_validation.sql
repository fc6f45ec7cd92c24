-- Validation (SPEC §4): what was checked, by which Great Expectations suite, with what outcome.
-- Idempotent; run by warehouse.bootstrap after 002_audit.sql.

create table if not exists audit.validation_runs (
    run_id        text primary key,
    logical_date  timestamptz,
    started_at    timestamptz not null default now(),
    ended_at      timestamptz,
    status        text not null default 'running'
                  check (status in ('running', 'success', 'failed', 'abandoned')),
    gx_version    text,
    files_validated integer not null default 0,
    error         text
);
-- abandoned: its pipeline run's process died (reform_etl.runs.mark_abandoned); older warehouses get the wider
-- check (altered only when missing: an ALTER waits for every open transaction on the table)
do $$
begin
    if not exists (select 1 from pg_constraint where conname = 'validation_runs_status_check'
                   and conrelid = 'audit.validation_runs'::regclass
                   and pg_get_constraintdef(oid) like '%abandoned%') then
        alter table audit.validation_runs drop constraint if exists validation_runs_status_check,
            add constraint validation_runs_status_check
                check (status in ('running', 'success', 'failed', 'abandoned'));
    end if;
end $$;

-- One row per run x file x suite x rule. file_id is null for run-level rules
-- (e.g. "a unit missing for a period that others reported").
create table if not exists audit.validation_results (
    result_id        bigserial primary key,
    run_id           text not null references audit.validation_runs (run_id),
    file_id          bigint references audit.submission_files (file_id),
    kind             text,
    suite            text not null,            -- GX expectation suite name
    expectation      text not null,            -- the rule name (catalog key, e.g. count_negative)
    expectation_type text,                     -- GX expectation type
    severity         text not null
                     check (severity in ('reject_file', 'quarantine_row', 'warn')),
    success          boolean not null,
    observed_value   jsonb,
    rows_failed      integer not null default 0,
    sample_failing_rows jsonb,                  -- at most 20 rows, as GX returned them
    message_vi       text,
    message_en       text,
    gx_result_path   text,                     -- the validation result page, relative to the Data Docs root
    validated_at     timestamptz not null default now()
);
create index if not exists validation_results_run on audit.validation_results (run_id);
create index if not exists validation_results_file on audit.validation_results (file_id);

-- The day a raw date cell names, null when it names none (blank, '2021-02-30', '10:61:00', 'abc'): a
-- finding, not an error that aborts the check. The test is raw.is_date_cell (003_normalise.sql),
-- shared with staging; plain SQL, no exception block (a PL/pgSQL handler cannot run inside a parallel
-- query).
create or replace function audit.try_date(value text) returns date
language sql stable parallel safe as $$
    select raw.date_cell_timestamp(value)::date
$$;
