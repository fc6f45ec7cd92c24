{#- Month arithmetic on calendar dates (record-level dossiers): plain timestamps, no time zone. -#}

{#- First day of the month of a date. -#}
{% macro month_of(day) -%}
    (date_trunc('month', ({{ day }})::timestamp)::date)
{%- endmacro %}

{#- Set-returning: the first days of the months from month_from to month_to (both firsts of months). -#}
{% macro month_series(month_from, month_to) -%}
    generate_series(({{ month_from }})::timestamp, ({{ month_to }})::timestamp, interval '1 month')
{%- endmacro %}

{#-
    Pre-hook of marts fed by int_dossiers__monthly: delete the unit x month partitions that the
    monthly model recomputed since this mart's watermark (its 'ALL' rows mark every recomputed
    partition, including one left without records), so that the append that follows replaces
    them and an emptied partition disappears. Backfill (backfill_from / backfill_to): delete the
    window. Nothing on the first run or a full refresh.
-#}
{% macro delete_recomputed_dossier_partitions() -%}
    {%- if is_incremental() and var('backfill_from', none) -%}
    {{ backfill_delete('period') }}
    {%- elif is_incremental() -%}
    delete from {{ this }} as mart
    using {{ ref('int_dossiers__monthly') }} as recomputed
    where recomputed.field_code = 'ALL'
        and recomputed.unit_code = mart.unit_code
        and recomputed.period = mart.period
        and recomputed.batch_loaded_at > (
            select coalesce(max(batch_loaded_at), '-infinity'::timestamptz) from {{ this }}
        )
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook of int_dossiers__latest on a backfill: forget the dossiers received in the window. -#}
{% macro backfill_delete_dossiers() -%}
    {%- if is_incremental() and var('backfill_from', none) -%}
    delete from {{ this }}
    where received_on >= date '{{ var("backfill_from") }}-01'
        and received_on < date '{{ var("backfill_to", var("backfill_from")) }}-01' + interval '1 month'
    {%- endif -%}
{%- endmacro %}
