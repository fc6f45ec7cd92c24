-- For each unit valid in a period and each kind, a status that follows what was ACCEPTED (rows
-- that reached staging; a quarantined row is not a submission):
--   on_time / late   accepted and complete; submitted_at = the first eligible file with an
--                    accepted row for the unit and period, before / after the deadline
--                    (macros/submission_deadline.sql, shared with the run warnings);
--   incomplete       some expected items accepted, not all (missing_items says which): it_kpis
--                    against the KPI catalogue, par_scores against the framework's leaves
--                    (int_par_scores__completeness); dossier_stats has no such expectation;
--   rejected         files arrived but nothing of them is accepted (every row quarantined, or
--                    the files rejected), status_reason says why;
--   missing          nothing arrived and the deadline passed; not_yet_due: nothing yet.
with

expected as (

    select * from {{ ref('int_submissions__expected') }}

),

partitions as (

    select * from {{ ref('stg_reform__submission_partitions') }}

),

files as (

    select file_id, received_at from {{ ref('stg_reform__submission_files') }}

),

kpis as (

    select kpi_code, sort_order from {{ ref('stg_reference__kpis') }}

),

kpis_current as (

    select * from {{ ref('int_it_kpis__current') }}

),

stats_current as (

    select * from {{ ref('int_dossier_stats__current') }}

),

par_completeness as (

    select * from {{ ref('int_par_scores__completeness') }}

),

quarantined as (

    select * from {{ ref('stg_reform__quarantined_rows') }}

),

accepted_rows as (

    select 'dossier_stats' as kind, file_id, unit_code, period
    from {{ ref('stg_reform__dossier_stats') }} where is_well_formed
    union all
    select 'it_kpis' as kind, file_id, unit_code, period
    from {{ ref('stg_reform__it_kpis') }} where is_well_formed
    union all
    select 'par_scores' as kind, file_id, unit_code, lpad(year::text, 4, '0') as period
    from {{ ref('stg_reform__par_scores') }} where is_well_formed

),

submitted as (

    select
        accepted.kind,
        accepted.unit_code,
        accepted.period,
        min(files.received_at) as submitted_at,
        (array_agg(accepted.file_id order by files.received_at, accepted.file_id))[1] as first_file_id
    from (select distinct kind, file_id, unit_code, period from accepted_rows) as accepted
    inner join files on files.file_id = accepted.file_id
    group by accepted.kind, accepted.unit_code, accepted.period

),

received as (

    select
        kind,
        unit_code,
        period,
        max(file_id) filter (where is_current) as current_file_id,
        count(*) filter (where is_eligible)::integer as eligible_files,
        count(*) filter (where file_status = 'rejected')::integer as rejected_files,
        string_agg('#' || file_id, ', ' order by file_id) filter (where file_status = 'rejected') as rejected_file_ids
    from partitions
    group by kind, unit_code, period

),

kpi_items as (

    select
        reported.unit_code,
        reported.period,
        kpis.kpi_code,
        kpis.sort_order,
        kpis_current.kpi_code is not null as is_accepted
    from (select distinct unit_code, period from kpis_current) as reported
    cross join kpis
    left join kpis_current
        on kpis_current.unit_code = reported.unit_code and kpis_current.period = reported.period
        and kpis_current.kpi_code = kpis.kpi_code

),

items as (

    select
        'it_kpis' as kind,
        unit_code,
        period,
        count(*)::integer as items_expected,
        count(*) filter (where is_accepted)::integer as items_accepted,
        string_agg(kpi_code, ', ' order by sort_order, kpi_code) filter (where not is_accepted) as missing_items
    from kpi_items
    group by unit_code, period
    union all
    select
        'dossier_stats' as kind,
        unit_code,
        period,
        null::integer as items_expected,
        count(*)::integer as items_accepted,
        null::text as missing_items
    from stats_current
    group by unit_code, period
    union all
    select
        'par_scores' as kind,
        unit_code,
        lpad(year::text, 4, '0') as period,
        leaves_expected as items_expected,
        leaves_scored as items_accepted,
        missing_criteria as missing_items
    from par_completeness

),

quarantine_reasons as (

    select
        quarantined.kind,
        quarantined.unit_code,
        quarantined.period,
        string_agg(distinct rule, ', ') as rules
    from quarantined
    inner join partitions
        on partitions.file_id = quarantined.file_id and partitions.kind = quarantined.kind
        and partitions.unit_code = quarantined.unit_code and partitions.period = quarantined.period
        and partitions.is_eligible
    cross join unnest(quarantined.rules) as rule
    group by quarantined.kind, quarantined.unit_code, quarantined.period

),

joined as (

    select
        expected.*,
        submitted.submitted_at,
        submitted.first_file_id,
        received.current_file_id,
        coalesce(received.eligible_files, 0) as eligible_files,
        coalesce(received.rejected_files, 0) as rejected_files,
        received.rejected_file_ids,
        items.items_expected,
        coalesce(items.items_accepted, 0) as items_accepted,
        items.missing_items,
        quarantine_reasons.rules as quarantine_rules
    from expected
    left join submitted
        on submitted.kind = expected.kind and submitted.unit_code = expected.unit_code
        and submitted.period = expected.period
    left join received
        on received.kind = expected.kind and received.unit_code = expected.unit_code
        and received.period = expected.period
    left join items
        on items.kind = expected.kind and items.unit_code = expected.unit_code and items.period = expected.period
    left join quarantine_reasons
        on quarantine_reasons.kind = expected.kind and quarantine_reasons.unit_code = expected.unit_code
        and quarantine_reasons.period = expected.period

),

statuses as (

    select
        joined.*,
        case
            when items_accepted = 0 and (eligible_files > 0 or rejected_files > 0) then 'rejected'
            when items_accepted = 0 and now() > deadline_at then 'missing'
            when items_accepted = 0 then 'not_yet_due'
            when items_accepted < items_expected then 'incomplete'
            when submitted_at <= deadline_at then 'on_time'
            else 'late'
        end as status
    from joined

),

final as (

    select
        submission_status_id as submission_status_key,
        unit_key,
        unit_code,
        (select v.unit_name from {{ ref('int_units__versions') }} as v where v.unit_key = statuses.unit_key)
            as unit_name,
        province_code,
        kind,
        period,
        deadline_date,
        submitted_at,
        status,
        items_expected,
        items_accepted,
        missing_items,
        case
            when status = 'rejected' and quarantine_rules is not null
                then 'Mọi dòng bị cách ly (' || quarantine_rules || ') / Every row quarantined ('
                    || quarantine_rules || ')'
            when status = 'rejected' and rejected_file_ids is not null
                then 'Tệp bị từ chối (' || rejected_file_ids || ') / File rejected (' || rejected_file_ids || ')'
            when status = 'rejected'
                then 'Không có dòng nào được chấp nhận / No row accepted'
            when status = 'incomplete' and kind = 'it_kpis'
                then 'Thiếu ' || (items_expected - items_accepted) || '/' || items_expected || ' chỉ tiêu / '
                    || (items_expected - items_accepted) || ' of ' || items_expected || ' KPIs missing'
            when status = 'incomplete'
                then 'Thiếu ' || (items_expected - items_accepted) || '/' || items_expected
                    || ' tiêu chí thành phần / ' || (items_expected - items_accepted) || ' of ' || items_expected
                    || ' leaves missing'
        end as status_reason,
        first_file_id,
        current_file_id,
        eligible_files,
        rejected_files
    from statuses

)

select * from final
