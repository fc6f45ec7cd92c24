-- For each unit valid in a period and each kind: on_time / late (first eligible submission
-- before / after the deadline, a project var), rejected (only rejected files), missing
-- (nothing, deadline passed) or not_yet_due.
with

expected as (

    select * from {{ ref('int_submissions__expected') }}

),

partitions as (

    select * from {{ ref('stg_reform__submission_partitions') }}

),

versions as (

    select * from {{ ref('int_units__versions') }}

),

submitted as (

    select
        kind,
        unit_code,
        period,
        min(received_at) filter (where is_eligible) as submitted_at,
        (array_agg(file_id order by received_at, file_id) filter (where is_eligible))[1] as first_file_id,
        max(file_id) filter (where is_current) as current_file_id,
        count(*) filter (where is_eligible)::integer as eligible_files,
        count(*) filter (where file_status = 'rejected')::integer as rejected_files
    from partitions
    group by kind, unit_code, period

),

final as (

    select
        expected.submission_status_id as submission_status_key,
        expected.unit_key,
        expected.unit_code,
        versions.unit_name,
        expected.province_code,
        expected.kind,
        expected.period,
        expected.deadline_date,
        submitted.submitted_at,
        case
            when submitted.submitted_at is not null and submitted.submitted_at <= expected.deadline_at then 'on_time'
            when submitted.submitted_at is not null then 'late'
            when coalesce(submitted.rejected_files, 0) > 0 then 'rejected'
            when now() > expected.deadline_at then 'missing'
            else 'not_yet_due'
        end as status,
        submitted.first_file_id,
        submitted.current_file_id,
        coalesce(submitted.eligible_files, 0) as eligible_files,
        coalesce(submitted.rejected_files, 0) as rejected_files
    from expected
    left join submitted
        on submitted.kind = expected.kind and submitted.unit_code = expected.unit_code
        and submitted.period = expected.period
    left join versions on versions.unit_key = expected.unit_key

)

select * from final
