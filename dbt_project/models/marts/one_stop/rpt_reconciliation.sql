-- Where a unit's self-reported II.06a figures (fct_dossier_throughput) differ from what its
-- records show (int_dossiers__monthly): one row per unit x month x field x column that differs,
-- with the reported value, the derived value and reported - derived. Only units and months
-- that have records; a unit that has not reported the month has nothing to reconcile (see
-- rpt_submission_status). A unit that reports the all-fields row ('ALL') is compared with the
-- records of all fields; a unit that reports per field is compared field by field, and a field
-- present on one side only counts as 0 on the other.
-- A table: it reads the two aggregates (unit x month x field, not the records), so a rebuild
-- costs the size of the aggregates, which is small next to the records.
{% set postal_unknown = '(reported_rows.file_id is not null and reported_rows.received_postal is null)' -%}
{% set counts = ['received_carried_over', 'received_online', 'received_direct', 'received_postal',
                  'resolved_early', 'resolved_on_time', 'resolved_late', 'pending_in_time', 'pending_overdue'] -%}
with

reported as (

    select * from {{ ref('fct_dossier_throughput') }}

),

derived as (

    select * from {{ ref('int_dossiers__monthly') }}

),

-- unit x months with records (some dossier received, resolved or pending in the month)
record_months as (

    select unit_code, period
    from derived
    where field_code = 'ALL' and received_total > 0

),

reported_months as (

    select
        unit_code,
        period,
        max(unit_key) as unit_key,
        bool_or(field_code = 'ALL') as reports_all,
        bool_or(field_code <> 'ALL') as reports_fields
    from reported
    group by unit_code, period

),

months as (

    select reported_months.*
    from reported_months
    inner join record_months
        on record_months.unit_code = reported_months.unit_code
        and record_months.period = reported_months.period

),

reported_rows as (

    select reported.*
    from reported
    inner join months on months.unit_code = reported.unit_code and months.period = reported.period

),

derived_rows as (

    select derived.*
    from derived
    inner join months on months.unit_code = derived.unit_code and months.period = derived.period
    where (derived.field_code = 'ALL' and months.reports_all)
        or (derived.field_code <> 'ALL' and months.reports_fields)

),

paired as (

    select
        months.unit_key,
        months.unit_code,
        months.period,
        coalesce(reported_rows.field_code, derived_rows.field_code) as field_code,
        reported_rows.file_id as reported_file_id,
        {%- for c in counts %}
        {%- if c == 'received_postal' %}
        -- postal unknown (null: the official 13-column form counts it in person): not compared, and the
        -- records' postal receipts are compared with the in-person column that holds them
        case when not {{ postal_unknown }} then coalesce(reported_rows.{{ c }}, 0) end as reported_{{ c }},
        case when not {{ postal_unknown }} then coalesce(derived_rows.{{ c }}, 0) end as derived_{{ c }},
        {%- elif c == 'received_direct' %}
        coalesce(reported_rows.{{ c }}, 0) as reported_{{ c }},
        coalesce(derived_rows.{{ c }}, 0)
            + case when {{ postal_unknown }} then coalesce(derived_rows.received_postal, 0) else 0 end
            as derived_{{ c }},
        {%- else %}
        coalesce(reported_rows.{{ c }}, 0) as reported_{{ c }},
        coalesce(derived_rows.{{ c }}, 0) as derived_{{ c }}{{ ',' if not loop.last }}
        {%- endif %}
        {%- endfor %}
    from reported_rows
    full outer join derived_rows
        on derived_rows.unit_code = reported_rows.unit_code
        and derived_rows.period = reported_rows.period
        and derived_rows.field_code = reported_rows.field_code
    inner join months
        on months.unit_code = coalesce(reported_rows.unit_code, derived_rows.unit_code)
        and months.period = coalesce(reported_rows.period, derived_rows.period)

),

unpivoted as (

    select
        paired.unit_key,
        paired.unit_code,
        paired.period,
        paired.field_code,
        paired.reported_file_id,
        measures.column_name,
        measures.reported_value,
        measures.derived_value
    from paired
    cross join lateral (
        values
        {%- for c in counts %}
        ('{{ c }}', paired.reported_{{ c }}, paired.derived_{{ c }}){{ ',' if not loop.last }}
        {%- endfor %}
    ) as measures (column_name, reported_value, derived_value)

),

final as (

    select
        {{ surrogate_key(['unit_code', 'period', 'field_code', 'column_name']) }} as reconciliation_key,
        unit_key,
        unit_code,
        {{ period_key('period') }} as period_key,
        period,
        field_code,
        column_name,
        reported_value::bigint as reported_value,
        derived_value::bigint as derived_value,
        (reported_value - derived_value)::bigint as difference,
        reported_file_id
    from unpivoted
    where reported_value is distinct from derived_value

)

select * from final
