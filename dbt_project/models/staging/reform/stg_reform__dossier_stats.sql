{%- set counts = ['received_carried_over', 'received_online', 'received_direct', 'received_postal',
                  'resolved_early', 'resolved_on_time', 'resolved_late', 'pending_in_time', 'pending_overdue'] -%}
with

source as (

    {{ eligible_rows('dossier_stats') }}

),

typed as (

    select
        {{ lineage_columns() }},
        nullif(btrim(source.unit_code), '') as unit_code,
        {{ to_period('source.period') }} as period,
        -- blank field = all fields (SPEC §3)
        coalesce(nullif(btrim(source.field_code), ''), 'ALL') as field_code,
        {%- for c in counts %}
        {{ to_count('source.' ~ c) }} as {{ c }},
        {%- endfor %}
        {{ to_count('source.returned_withdrawn') }} as returned_withdrawn
    from source

),

final as (

    select
        {{ surrogate_key(['file_id', 'row_number']) }} as dossier_stat_row_id,
        *,
        unit_code is not null and period is not null
        {#- received_postal may be null: unknown on the official 13-column form (in received_direct, SPEC §3) #}
        {%- for c in counts if c != 'received_postal' %} and {{ c }} is not null{% endfor %} as is_well_formed
    from typed

)

select * from final
