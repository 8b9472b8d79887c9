{#- Every row (optionally only rows matching `where`, via the test config) satisfies `expression`. -#}
{% test expression_is_true(model, expression) %}
select *
from {{ model }}
where not ({{ expression }})
{% endtest %}
