{#-
    The batch of an incremental fact.
    * Nightly (no vars): rows whose file was loaded at or after the newest load time already in
      the table (>= so that re-running the same night reprocesses its own batch: same marts).
    * Backfill (vars backfill_from / backfill_to, months 'YYYY-MM', set by `reform-etl backfill`):
      every row of the window, whatever its load time; the pre-hook backfill_delete() first
      empties the window so partitions that lost all their rows disappear too.
-#}
{% macro incremental_window(period_column='period', yearly=false) -%}
    {%- if var('backfill_from', none) -%}
        {%- if yearly -%}
            {{ period_column }} between {{ var('backfill_from')[:4] | int }} and {{ var('backfill_to', var('backfill_from'))[:4] | int }}
        {%- else -%}
            {{ period_column }} between '{{ var("backfill_from") }}' and '{{ var("backfill_to", var("backfill_from")) }}'
        {%- endif -%}
    {%- else -%}
        loaded_at >= (select coalesce(max(loaded_at), '-infinity'::timestamptz) from {{ this }})
    {%- endif -%}
{%- endmacro %}

{% macro backfill_delete(period_column='period', yearly=false) -%}
    {%- if is_incremental() and var('backfill_from', none) -%}
        delete from {{ this }} where {{ incremental_window(period_column, yearly) }}
    {%- endif -%}
{%- endmacro %}

{#-
    The config of a model incremental by unit x period partition: a batch's partitions are replaced
    whole (delete+insert on unit_code, period), so a superseding file replaces the old rows and is
    never added to them; a backfill first empties its window (backfill_delete).
-#}
{% macro partition_incremental(period_column='period', yearly=false, on_schema_change='append_new_columns',
                               indexes=none) -%}
    {%- set settings = {
        'materialized': 'incremental',
        'incremental_strategy': 'delete+insert',
        'unique_key': ['unit_code', period_column],
        'on_schema_change': on_schema_change,
        'pre_hook': "{{ backfill_delete('" ~ period_column ~ "'" ~ (", yearly=true" if yearly else "") ~ ") }}",
    } -%}
    {%- if indexes -%}{%- do settings.update({'indexes': indexes}) -%}{%- endif -%}
    {{ config(**settings) }}
{%- endmacro %}
