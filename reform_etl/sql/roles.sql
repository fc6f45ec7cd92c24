-- The roles of SPEC §5, created NOLOGIN if missing. Roles are cluster-wide (every database of the
-- server shares them), so reform_etl.warehouse runs this in a transaction of its own, retried when
-- another database's bootstrap changes the same catalog rows at the same moment.
-- Passwords (and LOGIN) are set from the environment by reform_etl.warehouse, never from this file.
do $$
declare r text;
begin
  foreach r in array array['reform_loader', 'reform_transformer', 'bi_reader', 'auditor'] loop
    if not exists (select 1 from pg_roles where rolname = r) then
      execute format('create role %I nologin', r);
    end if;
  end loop;
end $$;
