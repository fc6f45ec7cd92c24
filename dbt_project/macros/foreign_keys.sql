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

{#-
  Post-hook of every mart, run after dbt's commit (transaction: false), once the table that was
  swapped out is dropped: a table mart is built as `<name>__dbt_tmp` and renamed, so Postgres named
  its keys after the temporary table (`rpt_par_index__dbt_tmp_pkey1`), and that is what a BI tool
  shows. This gives each such key the name of its table (`rpt_par_index_pkey`); a name already
  taken is left as it is.
-#}
{% macro name_constraints() %}
  {%- if execute -%}
    do $name_keys$
    declare k record;
    begin
      for k in select conname from pg_constraint
               where conrelid = '{{ this.include(database=false) }}'::regclass and strpos(conname, '__dbt_tmp') > 0
      loop
        begin
          execute format('alter table {{ this.include(database=false) }} rename constraint %I to %I', k.conname,
                         regexp_replace(replace(k.conname, '__dbt_tmp', ''), '[0-9]+$', ''));
        exception when duplicate_object or duplicate_table then
          null;
        end;
      end loop;
    end
    $name_keys$;
  {%- endif -%}
{% endmacro %}
