{#- A population/record flag holds exactly 'Y' or 'N' (NULL allowed only with allow_null=true). -#}
{% test is_y_or_n(model, column_name, allow_null=false) %}
select {{ column_name }}
from {{ model }}
where {% if allow_null %}{{ column_name }} is not null and {% endif %}
    ({{ column_name }} is null or {{ column_name }} not in ('Y', 'N'))
{% endtest %}
