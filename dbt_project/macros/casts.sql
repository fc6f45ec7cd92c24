{#- The loader normalises values; a value it could not normalise is kept verbatim and
    quarantined by validation. These casts never fail a build: anything that is not in the
    normalised form becomes null (and the row is flagged as not well-formed in staging). -#}

{#- A count: raw.count_cell, the reading validation's count rules accept a cell with (a count too large
    for it is quarantined count_too_large), so every count of a valid row is read here. -#}
{% macro to_count(column) -%}
    raw.count_cell({{ column }})
{%- endmacro %}

{% macro to_decimal(column) -%}
    case when btrim({{ column }}) ~ '^-?[0-9]{1,15}(\.[0-9]+)?$' then btrim({{ column }})::numeric end
{%- endmacro %}

{% macro to_period(column) -%}
    case when btrim({{ column }}) ~ '^[0-9]{4}-(0[1-9]|1[0-2])$' then btrim({{ column }}) end
{%- endmacro %}

{% macro to_year(column) -%}
    case when btrim({{ column }}) ~ '^[0-9]{4}$' then btrim({{ column }})::integer end
{%- endmacro %}

{#- A raw date cell as a local timestamp, null when it names no real day and time of day: the loader's
    own test (raw.is_date_cell), which validation applies too, so every date a row passed validation with
    is read here, and no cell can make the cast fail ('2026-09-01T25:00:00'). -#}
{% macro to_timestamp_local(column) -%}
    raw.date_cell_timestamp(btrim({{ column }}))
{%- endmacro %}

{#- Month key yyyymm (integer) of a 'YYYY-MM' period. -#}
{% macro period_key(period) -%}
    (replace({{ period }}, '-', ''))::integer
{%- endmacro %}

{#- Pct with 2 decimals, null when the denominator is 0 or null. -#}
{% macro pct(numerator, denominator) -%}
    round(100.0 * ({{ numerator }}) / nullif({{ denominator }}, 0), 2)
{%- endmacro %}

{% macro surrogate_key(columns) -%}
    md5({%- for c in columns %}coalesce(cast({{ c }} as text), '∅'){% if not loop.last %} || '|' || {% endif %}{%- endfor %})
{%- endmacro %}

{#- The II.06a rates of a throughput row, defined once for the self-reported and the record-derived
    marts; `received_new` is what was received in the month (without the carried-over dossiers). -#}
{% macro throughput_rates(rel, received_new) -%}
    {{ pct(rel ~ '.resolved_early + ' ~ rel ~ '.resolved_on_time', rel ~ '.resolved_total') }} as on_time_rate,
        {{ pct(rel ~ '.received_online', received_new) }} as online_rate,
        {{ pct(rel ~ '.received_postal', received_new) }} as postal_rate
{%- endmacro %}
