{#-
  Post-hook for marts that carry unit_code: enables Postgres row-level security so that a
  unit-scoped BI role (bound with `reform-etl grant-unit ROLE UNIT_CODE`) sees only its
  units' rows. Roles bound to no unit (bi_reader, auditor) see all rows; the owner (dbt) is
  not subject to the policy. Re-applied on every build because dbt recreates the tables.
-#}
{% macro apply_unit_row_security() %}
  {% if this.identifier and execute %}
    alter table {{ this }} enable row level security;
    drop policy if exists unit_scope on {{ this }};
    create policy unit_scope on {{ this }} for select using (audit.unit_row_visible(unit_code, current_user));
  {% endif %}
{% endmacro %}
