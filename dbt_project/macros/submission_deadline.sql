{#-
    A submission's deadline, from the ONE definition shared with the run warning
    unit_missing_for_period: the SQL functions audit.submission_deadline(_at)
    (reform_etl/sql/040_submission_deadlines.sql), given this project's vars.
-#}
{% macro submission_deadline_args() -%}
    {{ var('submission_deadline_day_of_next_month') }}, '{{ var("submission_deadline_yearly") }}'
{%- endmacro %}

{% macro submission_deadline(period) -%}
    audit.submission_deadline({{ period }}, {{ submission_deadline_args() }})
{%- endmacro %}

{% macro submission_deadline_at(period) -%}
    audit.submission_deadline_at({{ period }}, {{ submission_deadline_args() }}, '{{ var("submission_timezone") }}')
{%- endmacro %}
