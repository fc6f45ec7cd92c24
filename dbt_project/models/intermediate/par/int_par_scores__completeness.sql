-- How complete a unit's PAR scores of a year are: the leaves of the framework in force that
-- have an accepted score (self or appraised; a quarantined row gives none) against all its
-- leaves, and which are missing. The one definition rpt_par_index and rpt_submission_status read.
with

frameworks as (

    select unit_code, year, framework_code from {{ ref('int_par_frameworks__by_unit_year') }}

),

criteria as (

    select framework_code, criterion_code, sort_order from {{ ref('stg_reference__par_criteria') }}

),

scores as (

    select unit_code, year, criterion_code from {{ ref('int_par_scores__latest') }}
    where self_score is not null or appraised_score is not null

),

leaves as (

    select
        frameworks.unit_code,
        frameworks.year,
        frameworks.framework_code,
        criteria.criterion_code,
        criteria.sort_order,
        scores.criterion_code is not null as is_scored
    from frameworks
    inner join criteria on criteria.framework_code = frameworks.framework_code
    left join scores
        on scores.unit_code = frameworks.unit_code and scores.year = frameworks.year
        and scores.criterion_code = criteria.criterion_code

),

final as (

    select
        unit_code,
        year,
        framework_code,
        count(*)::integer as leaves_expected,
        count(*) filter (where is_scored)::integer as leaves_scored,
        bool_and(is_scored) as is_complete,
        string_agg(criterion_code, ', ' order by sort_order, criterion_code) filter (where not is_scored)
            as missing_criteria
    from leaves
    group by unit_code, year, framework_code

)

select * from final
