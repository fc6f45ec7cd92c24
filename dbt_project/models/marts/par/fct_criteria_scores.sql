{{ partition_incremental('year', yearly=true) }}
-- One row per unit x year x framework leaf that has a score. Incremental on load time: a
-- unit x year touched by a newly loaded file is recomputed whole (each score from the latest
-- file that provides it).
with

scores as (

    select * from {{ ref('int_par_scores__latest') }}

),

{% if is_incremental() %}
touched as (

    select distinct unit_code, year
    from scores
    where {{ incremental_window('year', yearly=true) }}

),
{% endif %}

frameworks as (

    select unit_code, year, framework_code from {{ ref('int_par_frameworks__by_unit_year') }}

),

criteria as (

    select * from {{ ref('stg_reference__par_criteria') }}

),

units as (

    select unit_code, period, unit_key from {{ ref('int_units__resolved_by_month') }}

),

final as (

    select
        scores.par_score_id as criteria_score_key,
        units.unit_key,
        criteria.criterion_key,
        scores.unit_code,
        scores.year,
        frameworks.framework_code,
        criteria.content_area_code,
        scores.criterion_code,
        criteria.method,
        scores.self_score,
        scores.appraised_score,
        criteria.max_points,
        scores.self_score_file_id,
        scores.appraised_score_file_id,
        max(scores.loaded_at) over (partition by scores.unit_code, scores.year) as loaded_at
    from scores
    {% if is_incremental() %}
    inner join touched on touched.unit_code = scores.unit_code and touched.year = scores.year
    {% endif %}
    inner join frameworks on frameworks.unit_code = scores.unit_code and frameworks.year = scores.year
    -- a code outside the year's framework is quarantined by validation ("unknown criterion")
    inner join criteria
        on criteria.framework_code = frameworks.framework_code and criteria.criterion_code = scores.criterion_code
    left join units on units.unit_code = scores.unit_code and units.period = lpad(scores.year::text, 4, '0') || '-12'

)

select * from final
