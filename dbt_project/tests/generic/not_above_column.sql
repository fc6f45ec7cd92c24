{#- A value may not exceed another column of the same row (e.g. a score above the leaf's max). -#}
{% test not_above_column(model, column_name, other_column) %}
select *
from {{ model }}
where {{ column_name }} > {{ other_column }}
{% endtest %}
