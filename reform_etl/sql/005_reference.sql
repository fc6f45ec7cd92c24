-- Reference data (reform_etl/reference.py): every load of the seed CSVs into the warehouse, and
-- validation's copy of them. Idempotent; run by warehouse.bootstrap, and by reform_etl.reference on a
-- warehouse bootstrapped before this file existed.

-- Every load of the seeds (seeds/*.csv) with the fingerprint of the files loaded: target 'dbt' is
-- `dbt seed` into the dbt project's tables, 'lookups' the audit.ref_* tables below. Each target is
-- reloaded when the fingerprint differs from its own last load.
create table if not exists audit.reference_loads (
    load_id      bigserial primary key,
    target       text not null check (target in ('dbt', 'lookups')),
    fingerprint  text not null,
    loaded_at    timestamptz not null default now(),
    run_id       text,
    seeds        jsonb,           -- the seed files' names
    rows         jsonb            -- 'lookups': rows per audit.ref_* table
);
create index if not exists reference_loads_target on audit.reference_loads (target, load_id);

-- Before reference_loads, the dbt loads had a table of their own (and validation's, audit.ref_sources):
-- its rows move over with their load ids, so the last full build's seeds_fingerprint still names its load.
do $$
begin
    if exists (select from pg_class c join pg_namespace n on n.oid = c.relnamespace
               where n.nspname = 'audit' and c.relname = 'reference_data_loads' and c.relkind = 'r') then
        insert into audit.reference_loads (load_id, target, fingerprint, loaded_at, run_id, seeds)
        select load_id, 'dbt', fingerprint, loaded_at, run_id, seeds from audit.reference_data_loads;
        perform setval(pg_get_serial_sequence('audit.reference_loads', 'load_id'),
                       greatest((select max(load_id) from audit.reference_loads), 1));
        drop table audit.reference_data_loads;
    end if;
end $$;
drop table if exists audit.ref_sources;

-- The dbt loads, as the nightly dbt decision (transform/decision.py) reads them: '<load_id>:<fingerprint>'
-- of the last one is the seeds_fingerprint of audit.transform_runs.
create or replace view audit.reference_data_loads as
select load_id, fingerprint, loaded_at, run_id, seeds from audit.reference_loads where target = 'dbt';

-- Validation's lookups (target 'lookups'), copied from the seeds before each run: validation runs before
-- dbt, so it cannot read dbt's seed tables.
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
