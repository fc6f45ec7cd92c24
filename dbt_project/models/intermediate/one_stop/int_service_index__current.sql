-- Decision 766 figures per unit x period x metric, each from the latest eligible file that provides
-- it (the portal answers one group per response, so one file per group: a later file replaces the
-- metrics it carries, not the unit's other groups), with the unit code the warehouse knows: the
-- province and a commune's People's Committee named by their portal identifier (H44, H44.125) are
-- mapped to their GSO code through the portal_units seed; departments keep their identifier.
with

rows as (

    select * from {{ ref('stg_reform__service_index') }}
    where is_well_formed

),

portal_units as (

    select * from {{ ref('stg_reference__portal_units') }}

),

current_rows as (

    select
        coalesce(portal_units.unit_code, rows.submitted_unit_code) as unit_code,
        rows.*,
        row_number() over (
            partition by coalesce(portal_units.unit_code, rows.submitted_unit_code), rows.period, rows.metric_code
            order by rows.file_received_at desc, rows.file_id desc, rows.row_number desc
        ) as duplicate_rank
    from rows
    left join portal_units on portal_units.portal_code = rows.submitted_unit_code

),

final as (

    select
        {{ surrogate_key(['unit_code', 'period', 'metric_code']) }} as service_index_row_key,
        unit_code,
        submitted_unit_code,
        period,
        metric_code,
        numerator,
        denominator,
        published_score,
        file_id,
        row_number as file_row_number,
        loaded_at
    from current_rows
    where duplicate_rank = 1

)

select * from final
