-- Ranks within a province, year and level run 1..N with standard competition ties (1-2-2-4):
-- each rank equals 1 + the number of units with a strictly higher index.
with ranked as (
    select
        province_code, year, level, unit_code, index_pct, rank_in_province, units_ranked,
        count(*) over (partition by province_code, year, level) as n
    from {{ ref('rpt_par_index') }}
),
expected as (
    select r.*,
        1 + (select count(*) from ranked h
             where h.province_code = r.province_code and h.year = r.year and h.level = r.level
               and h.index_pct > r.index_pct) as expected_rank
    from ranked r
)
select * from expected
where rank_in_province <> expected_rank
   or rank_in_province not between 1 and n
   or units_ranked <> n
