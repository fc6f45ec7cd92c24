-- II.06a derived from the records: carried over + received = resolved + pending in every
-- unit x month x field, and each unit x month's 'ALL' row is the sum of its fields.
with

monthly as (

    select * from {{ ref('int_dossiers__monthly') }}

),

unbalanced as (

    select unit_code, period, field_code, 'received_ne_resolved_plus_pending' as failure
    from monthly
    where received_total <> resolved_total + pending_total

),

fields as (

    select unit_code, period, sum(received_total) as received_total, sum(resolved_total) as resolved_total,
        sum(pending_total) as pending_total
    from monthly
    where field_code <> 'ALL'
    group by unit_code, period

),

all_rows as (

    select * from monthly where field_code = 'ALL'

),

totals as (

    select all_rows.unit_code, all_rows.period, 'ALL' as field_code, 'all_row_ne_sum_of_fields' as failure
    from all_rows
    left join fields on fields.unit_code = all_rows.unit_code and fields.period = all_rows.period
    where (all_rows.received_total, all_rows.resolved_total, all_rows.pending_total)
        is distinct from (coalesce(fields.received_total, 0), coalesce(fields.resolved_total, 0),
                          coalesce(fields.pending_total, 0))

)

select * from unbalanced
union all
select * from totals
