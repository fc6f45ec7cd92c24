-- Rows validation quarantined, of the kinds whose submissions are expected, read the way staging
-- reads the accepted ones (unit code, period or year), with the rules each failed: why a
-- submission whose every row was quarantined counts as rejected (rpt_submission_status).
with

{% set kinds = {'dossier_stats': 'period', 'it_kpis': 'period', 'par_scores': 'year'} %}
{% for kind, period_column in kinds.items() %}
{{ kind }} as (

    select
        '{{ kind }}'::text as kind,
        q._file_id as file_id,
        q._row_number as row_number,
        nullif(btrim(q.unit_code), '') as unit_code,
        {% if period_column == 'year' -%}
        lpad(({{ to_year('q.year') }})::text, 4, '0') as period,
        {%- else -%}
        {{ to_period('q.period') }} as period,
        {%- endif %}
        q.failed_rules
    from {{ source('quarantine', kind) }} as q

),
{% endfor %}

unioned as (

    {% for kind in kinds %}
    select * from {{ kind }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

final as (

    select
        unioned.kind,
        unioned.file_id,
        unioned.row_number,
        unioned.unit_code,
        unioned.period,
        array(select distinct rules.value ->> 'rule' from jsonb_array_elements(unioned.failed_rules) as rules
              order by 1) as rules
    from unioned

)

select * from final
