{#-
    The rows a submission kind contributes, in two steps every kind shares.

    eligible_rows(kind): the staging scaffold. The rows of raw.<kind> from eligible files
    (accepted by validation: stg_reform__submission_files.is_eligible) that validation did not
    move to quarantine.<kind>, with the file's `_file_received_at` and `_file_loaded_at` beside
    the raw columns. A staging model selects from it and types the cells:

        with source as ( {{ eligible_rows('my_kind') }} ), typed as ( select ... from source ) ...

    current_rows(model, kind, keys): the intermediate step. The well-formed rows of a staging
    model that belong to the current submission of their unit x period (a later file for the same
    unit and period supersedes the earlier one: its rows replace, never add to, the old ones),
    one row per unit x period x `keys` (a key repeated inside one file is quarantined by
    validation; if one gets through, the file's last row wins).
-#}

{% macro eligible_rows(kind) -%}
    select
        source.*,
        files.received_at as _file_received_at,
        files.loaded_at as _file_loaded_at
    from {{ source('raw', kind) }} as source
    inner join {{ ref('stg_reform__submission_files') }} as files
        on files.file_id = source._file_id and files.is_eligible
    where not exists (
        select 1 from {{ source('quarantine', kind) }} as q
        where q._file_id = source._file_id and q._row_number = source._row_number
    )
{%- endmacro %}

{% macro lineage_columns(relation='source') -%}
        {{ relation }}._file_id as file_id,
        {{ relation }}._row_number as row_number,
        {{ relation }}._file_received_at as file_received_at,
        {{ relation }}._file_loaded_at as loaded_at
{%- endmacro %}

{% macro current_rows(model, kind, keys) -%}
    select * from (
        select
            stg.*,
            row_number() over (
                partition by stg.unit_code, stg.period{% for key in keys %}, stg.{{ key }}{% endfor %}
                order by stg.row_number desc
            ) as duplicate_rank
        from {{ ref(model) }} as stg
        inner join {{ ref('stg_reform__submission_partitions') }} as partitions
            on partitions.kind = '{{ kind }}' and partitions.is_current
            and partitions.file_id = stg.file_id
            and partitions.unit_code = stg.unit_code
            and partitions.period = stg.period
        where stg.is_well_formed
    ) as ranked
    where duplicate_rank = 1
{%- endmacro %}
