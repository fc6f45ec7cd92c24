{#-
  Post-hook of every mart: adds back the foreign keys its contract declares that the table lacks.
  A dimension is rebuilt as a new table swapped in for the old one, which dbt drops with CASCADE:
  that drops the foreign keys pointing at it. A table mart is recreated after its dimensions and
  gets its keys from the contract again; an incremental mart is not recreated, so without this its
  keys would be gone after the first rebuild of a dimension. The keys are declared once, in the
  models' YAML (`constraints:`); this macro reads them from there. Adding a key checks every row.
-#}
{% macro restore_foreign_keys() %}
  {%- if execute and model.config.materialized == 'incremental' -%}
    {%- for column in model.columns.values() -%}
      {%- for c in column.constraints if c.type == 'foreign_key' and c.to and c.to_columns -%}
        do $restore_fk$ begin
          if not exists (
            select 1 from pg_constraint k
            join pg_attribute a on a.attrelid = k.conrelid and a.attnum = k.conkey[1]
            where k.conrelid = '{{ this.include(database=false) }}'::regclass and k.contype = 'f'
              and k.confrelid = '{{ c.to.replace("'", "''") }}'::regclass and a.attname = '{{ column.name }}'
          ) then
            alter table {{ this }} add foreign key ({{ column.name }}) references {{ c.to }} ({{ c.to_columns | join(', ') }});
          end if;
        end $restore_fk$;
      {% endfor -%}
    {%- endfor -%}
  {%- endif -%}
{% endmacro %}
