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
