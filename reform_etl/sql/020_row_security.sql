-- Row-level security for unit-scoped BI accounts (a district's or commune's own analyst).
-- A role bound to units here sees only those units' rows in the marts' facts and reports;
-- a role bound to nothing (the provincial bi_reader, the auditor) sees every row.
-- The policies themselves are attached to each mart by dbt (macro apply_unit_row_security),
-- because dbt recreates the tables it builds.
create table if not exists audit.unit_role_bindings (
    role_name  text not null,
    unit_code  text not null,
    granted_at timestamptz not null default now(),
    primary key (role_name, unit_code)
);

-- security definer: the policy consults the bindings without granting the BI role any access
-- to the audit schema. Inside it current_user is the definer, so the policy passes the
-- querying role in (`viewer`, evaluated in the policy as current_user).
drop function if exists audit.unit_row_visible(text);
create or replace function audit.unit_row_visible(row_unit_code text, viewer name) returns boolean
language sql stable security definer set search_path = pg_catalog, audit as $$
  select not exists (select 1 from audit.unit_role_bindings b where b.role_name = viewer)
      or exists (select 1 from audit.unit_role_bindings b
                 where b.role_name = viewer and b.unit_code = row_unit_code)
$$;
revoke all on function audit.unit_row_visible(text, name) from public;
grant execute on function audit.unit_row_visible(text, name) to public;
