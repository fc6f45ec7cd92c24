-- A framework's leaves sum to the max points declared in par_frameworks.
select f.framework_code, f.max_points, sum(c.max_points) as leaves_total
from {{ ref('stg_reference__par_frameworks') }} f
join {{ ref('stg_reference__par_criteria') }} c using (framework_code)
group by f.framework_code, f.max_points
having sum(c.max_points) <> f.max_points
