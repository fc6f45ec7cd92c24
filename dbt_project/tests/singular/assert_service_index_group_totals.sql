-- Decision 766 weights: the metric maxima sum to 100 and never exceed their group.
select unit_code, period, max(total_max_score) as total_max
from {{ ref('rpt_service_index') }}
group by unit_code, period
having max(total_max_score) <> 100 or bool_or(score > max_score) or bool_or(group_score > group_max_score)
