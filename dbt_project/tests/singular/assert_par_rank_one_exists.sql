-- Every province-year-level ranking has a first place.
select province_code, year, level
from {{ ref('rpt_par_index') }}
group by province_code, year, level
having min(rank_in_province) <> 1
