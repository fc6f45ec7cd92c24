-- PAR index per unit and year: index % = appraised points (survey leaves included) / the
-- framework's max points x 100; ranked within the province, year and unit level (ties share
-- a rank: 1-2-2-4); rank_change = previous_rank - rank (positive = improved); band from the
-- province's band table (default '*'). A leaf without an accepted score (never sent, or its
-- row quarantined) counts 0 in the index: leaves_scored / leaves_expected say so, and the rank
-- of an incomplete unit is provisional (rank_is_provisional).
with

scores as (

    select unit_code, year, framework_code, self_score, appraised_score, loaded_at
    from {{ ref('fct_criteria_scores') }}

),

criteria as (

    select framework_code, max_points from {{ ref('stg_reference__par_criteria') }}

),

units as (

    select unit_code, period, unit_key from {{ ref('int_units__resolved_by_month') }}

),

versions as (

    select unit_key, unit_name, province_code, level from {{ ref('int_units__versions') }}

),

bands as (

    select province_code, band_code, band_name_vi, min_index_pct from {{ ref('stg_reference__par_bands') }}

),

completeness as (

    select * from {{ ref('int_par_scores__completeness') }}

),

framework_max as (

    select framework_code, sum(max_points) as max_total
    from criteria
    group by framework_code

),

totals as (

    select
        scores.unit_code,
        scores.year,
        scores.framework_code,
        sum(scores.self_score) as self_total,
        sum(scores.appraised_score) as appraised_total,
        max(scores.loaded_at) as loaded_at
    from scores
    group by scores.unit_code, scores.year, scores.framework_code

),

indexed as (

    select
        totals.*,
        units.unit_key,
        versions.unit_name,
        versions.province_code,
        versions.level,
        framework_max.max_total,
        completeness.leaves_scored,
        completeness.leaves_expected,
        completeness.is_complete,
        completeness.missing_criteria,
        round(100.0 * coalesce(totals.appraised_total, 0) / nullif(framework_max.max_total, 0), 2) as index_pct
    from totals
    inner join framework_max on framework_max.framework_code = totals.framework_code
    left join units on units.unit_code = totals.unit_code and units.period = lpad(totals.year::text, 4, '0') || '-12'
    left join versions on versions.unit_key = units.unit_key
    inner join completeness on completeness.unit_code = totals.unit_code and completeness.year = totals.year

),

ranked as (

    select
        indexed.*,
        rank() over (partition by province_code, year, level order by index_pct desc)::integer as rank_in_province,
        count(*) over (partition by province_code, year, level)::integer as units_ranked
    from indexed

),

with_previous as (

    select
        ranked.*,
        previous.rank_in_province as previous_rank
    from ranked
    left join ranked as previous
        on previous.unit_code = ranked.unit_code and previous.year = ranked.year - 1

),

banded as (

    select
        with_previous.*,
        band.band_code,
        band.band_name_vi
    from with_previous
    left join lateral (
        select bands.band_code, bands.band_name_vi
        from bands
        where bands.province_code in (with_previous.province_code, '*')
          and with_previous.index_pct >= bands.min_index_pct
        order by (bands.province_code = with_previous.province_code) desc, bands.min_index_pct desc
        limit 1
    ) as band on true

),

final as (

    select
        {{ surrogate_key(['unit_code', 'year']) }} as par_index_key,
        unit_key,
        unit_code,
        unit_name,
        year,
        province_code,
        level,
        framework_code,
        round(self_total, 2) as self_total,
        round(appraised_total, 2) as appraised_total,
        max_total,
        index_pct,
        leaves_scored,
        leaves_expected,
        is_complete,
        missing_criteria,
        rank_in_province,
        not is_complete as rank_is_provisional,
        units_ranked,
        previous_rank,
        previous_rank - rank_in_province as rank_change,
        band_code,
        band_name_vi as band,
        loaded_at
    from banded

)

select * from final
