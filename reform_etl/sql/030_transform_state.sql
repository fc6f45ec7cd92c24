-- What the dbt marts were built from, so that a night with nothing new can skip dbt.
-- One row per dbt decision of a run (reform_etl.orchestration.decide_dbt): a full build of the
-- project, a partial build (only new files since the last build: the models downstream of their
-- kinds), a refresh of the date-dependent models (tag as_of_date: rpt_submission_status flips
-- late / missing by date), a skip, or a backfill. A full build is trusted only once it has
-- status 'success'; a row left 'running' means the build was interrupted (crash, kill) and the
-- next night rebuilds everything.
create table if not exists audit.transform_runs (
    transform_id        bigserial primary key,
    run_id              text references audit.pipeline_runs (run_id) on delete cascade,
    mode                text not null,   -- full | partial | refresh | skip | backfill (check below)
    status              text not null default 'running'
                        check (status in ('running', 'success', 'failed', 'skipped')),
    reason              text not null,
    decided_at          timestamptz not null default now(),
    ended_at            timestamptz,
    as_of_date          date not null,   -- local date (Asia/Ho_Chi_Minh) the date-dependent models were built on
    warehouse_date      date not null,   -- current_date of the warehouse then (the models' own clock)
    files_fingerprint   text not null,   -- md5 over the file registry rows that can reach the marts
    files_state         jsonb,           -- {"files": n, "max_file_id": id, "by_status": {...}}: for the reason text
    seeds_fingerprint   text,            -- '<load_id>:<fingerprint>' of the last seed load (audit.reference_data_loads)
    project_fingerprint text             -- orchestration.project_fingerprint(): the dbt code then
);
create index if not exists transform_runs_run on audit.transform_runs (run_id);
-- Added with the partial build: a warehouse created before it gets them here (idempotent).
alter table audit.transform_runs add column if not exists kinds text[];     -- partial: the new files' kinds
alter table audit.transform_runs add column if not exists selection text;  -- partial / refresh: dbt --select
do $$
begin
    if not exists (select 1 from pg_constraint where conrelid = 'audit.transform_runs'::regclass
                   and conname = 'transform_runs_mode_check' and pg_get_constraintdef(oid) like '%partial%') then
        alter table audit.transform_runs drop constraint if exists transform_runs_mode_check;
        alter table audit.transform_runs add constraint transform_runs_mode_check
            check (mode in ('full', 'partial', 'refresh', 'skip', 'backfill'));
    end if;
end
$$;
