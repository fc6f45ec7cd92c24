{#-
    The ONE place that says which submission files may reach staging (SPEC §4): only files
    that validation accepted. A file still 'loaded' has not been validated yet (the pipeline
    validates it before dbt runs, including after a crash), so it does not count.
-#}
{% macro accepted_file_statuses() -%}
    ('accepted')
{%- endmacro %}
