-- The file registry and run log: what arrived, when, what became of it.
create table if not exists audit.pipeline_runs (
    run_id        text primary key,
    logical_date  timestamptz,
    started_at    timestamptz not null default now(),
    ended_at      timestamptz,
    status        text not null default 'running'
                  check (status in ('running', 'success', 'failed', 'abandoned')),
    triggered_by  text,
    summary       jsonb,
    error         text,                    -- failed tasks; for an abandoned run, when and why it was judged so
    owner         text,                    -- host:pid of the process driving the whole run (CLI, local runner)
    heartbeat_at  timestamptz              -- the last step of the run that began: a silent run is abandoned
);
-- (a warehouse bootstrapped before runs could be abandoned: the columns and the wider status check, altered
-- only when missing: an ALTER waits for every open transaction on the table, a concurrent load's included)
do $$
begin
    if not exists (select 1 from pg_constraint where conname = 'pipeline_runs_status_check'
                   and conrelid = 'audit.pipeline_runs'::regclass
                   and pg_get_constraintdef(oid) like '%abandoned%') then
        alter table audit.pipeline_runs add column if not exists owner text,
            add column if not exists heartbeat_at timestamptz,
            drop constraint if exists pipeline_runs_status_check,
            add constraint pipeline_runs_status_check
                check (status in ('running', 'success', 'failed', 'abandoned'));
    end if;
end $$;

create table if not exists audit.submission_files (
    file_id          bigserial primary key,
    run_id           text references audit.pipeline_runs (run_id),
    kind             text,                    -- null when the folder names no known kind
    path             text not null,           -- as found in the landing folder
    file_name        text not null,
    sha256           text not null,
    size_bytes       bigint not null,
    received_at      timestamptz not null,    -- file modification time: orders resubmissions
    registered_at    timestamptz not null default now(),
    status           text not null
                     check (status in ('loaded', 'accepted', 'rejected', 'duplicate', 'failed')),
    sheet_name       text,
    header_row       integer,                 -- 1-based row of the header in the source
    header_mapping   jsonb,                   -- source header -> column key
    rows_total       integer,                 -- data rows in the file
    rows_loaded      integer,                 -- rows that reach staging
    rows_quarantined integer not null default 0,
    warnings         integer not null default 0,
    error_code       text,                    -- machine-readable reason for rejected / failed
    error            text,                    -- the reason in plain words
    duplicate_of     bigint references audit.submission_files (file_id),
    archived_path    text,
    loaded_at        timestamptz,
    -- The loader's line scan proved every line canonical, so every date cell a real day and time (what
    -- raw.is_date_cell accepts): the verdict then tests no date (reform_etl.canonical_lines, validation).
    has_proven_dates boolean not null default false
);
-- (a warehouse bootstrapped before the column: its files keep the full date tests)
alter table audit.submission_files add column if not exists has_proven_dates boolean not null default false;
-- The same bytes are loaded once: a second copy is registered as a duplicate.
create unique index if not exists submission_files_sha256_once
    on audit.submission_files (sha256) where status in ('loaded', 'accepted', 'rejected');
create index if not exists submission_files_run on audit.submission_files (run_id);

-- Which unit x period each file reports: the basis of supersede and of submission status.
create table if not exists audit.submission_partitions (
    file_id    bigint not null references audit.submission_files (file_id) on delete cascade,
    kind       text not null,
    unit_code  text not null,
    period     text not null,   -- YYYY-MM, or YYYY for yearly kinds
    row_count  integer not null,
    primary key (file_id, unit_code, period)
);
create index if not exists submission_partitions_key
    on audit.submission_partitions (kind, unit_code, period);

-- A later file for the same unit and period supersedes the earlier one; both are kept.
-- Derived rather than stored so that it can never disagree with the registry.
create or replace view audit.v_submission_partitions as
select
    p.file_id,
    p.kind,
    p.unit_code,
    p.period,
    p.row_count,
    f.received_at,
    f.status,
    row_number() over w = 1 as is_current,
    lag(p.file_id) over w as superseded_by_file_id
from audit.submission_partitions p
join audit.submission_files f using (file_id)
where f.status in ('loaded', 'accepted')
window w as (partition by p.kind, p.unit_code, p.period order by f.received_at desc, p.file_id desc);
