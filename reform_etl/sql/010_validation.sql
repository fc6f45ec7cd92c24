-- Validation (SPEC §4): what was checked, by which Great Expectations suite, with what outcome.
-- Idempotent; run by warehouse.bootstrap after 002_audit.sql.

create table if not exists audit.validation_runs (
    run_id        text primary key,
    logical_date  timestamptz,
    started_at    timestamptz not null default now(),
    ended_at      timestamptz,
    status        text not null default 'running'
                  check (status in ('running', 'success', 'failed')),
    gx_version    text,
    files_validated integer not null default 0,
    error         text
);

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

-- Reference data for validation, loaded from the dbt seeds (seeds/*.csv) and the official unit
-- registry before each run: validation runs before dbt, so it cannot read dbt's seed tables.
create table if not exists audit.ref_units (
    unit_code     text not null,
    unit_name     text,
    level         text,            -- province / district / commune / department
    province_code text,
    valid_from    date not null,   -- inclusive
    valid_to      date,            -- exclusive; null = still valid
    source        text not null,
    primary key (unit_code, valid_from)
);

create table if not exists audit.ref_criteria (
    criterion_code text not null,
    max_points     numeric,
    year_from      integer not null default 0,     -- framework version valid from this year
    year_to        integer not null default 9999,  -- ... to this year, inclusive
    framework_code text not null default '',
    primary key (framework_code, criterion_code, year_from)
);

create table if not exists audit.ref_kpis (
    kpi_code text primary key,
    kpi_name text
);

-- Decision 766 metric codes a service_index row may carry: the catalogue's metrics and its group
-- codes (a group code's row holds the portal's published group score).
create table if not exists audit.ref_service_index_metrics (
    metric_code text primary key,
    metric_name text
);

create table if not exists audit.ref_fields (
    field_code text primary key,
    field_name text
);

-- Which reference source was loaded, so a changed seed is reloaded and an unchanged one is not.
create table if not exists audit.ref_sources (
    name      text primary key,
    sha256    text not null,
    rows      integer not null,
    loaded_at timestamptz not null default now()
);

-- The day a raw date cell names, null when it names none (blank, '2021-02-30', '10:61:00', 'abc'): a
-- finding, not an error that aborts the check. The test is raw.is_date_cell (003_normalise.sql),
-- shared with staging; plain SQL, no exception block (a PL/pgSQL handler cannot run inside a parallel
-- query).
create or replace function audit.try_date(value text) returns date
language sql stable parallel safe as $$
    select raw.date_cell_timestamp(value)::date
$$;
