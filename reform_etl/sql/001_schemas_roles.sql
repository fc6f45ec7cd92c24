-- Idempotent bootstrap: schemas, roles and grants of SPEC §5. Re-run on every start.
create schema if not exists raw;
create schema if not exists audit;
create schema if not exists quarantine;
create schema if not exists staging;
create schema if not exists intermediate;
create schema if not exists marts;

-- The roles themselves are cluster-wide: roles.sql, run by reform_etl.warehouse before this file.

revoke all on schema raw, audit, quarantine, staging, intermediate, marts from public;

-- loader: writes raw / audit / quarantine
grant usage, create on schema raw, audit, quarantine to reform_loader;
-- transformer (dbt): reads what the loader wrote, owns staging -> marts
grant usage on schema raw, audit, quarantine to reform_transformer;
grant usage, create on schema staging, intermediate, marts to reform_transformer;
-- BI reads marts only; auditors read audit, quarantine and marts
grant usage on schema marts to bi_reader, auditor;
grant usage on schema audit, quarantine to auditor;
