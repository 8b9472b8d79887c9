{#-
    The few database-specific spots, behind adapter.dispatch so the same models can run on Spark later
    (the consortium's platform). `default__` implementations are ANSI-ish/DuckDB; add `spark__` (or other
    adapter) versions next to them when porting. Everything else uses dbt's cross-database macros
    (dbt.safe_cast, dbt.datediff, dbt.dateadd, dbt.last_day, dbt.type_*).
-#}

{#- The capture group `group` of the first match of `pattern` in `expr`; NULL when there is no match. -#}
{% macro regexp_extract(expr, pattern, group=1) -%}
    {{ return(adapter.dispatch('regexp_extract', 'guttrial')(expr, pattern, group)) }}
{%- endmacro %}
{% macro default__regexp_extract(expr, pattern, group) -%}
    nullif(regexp_extract({{ expr }}, '{{ pattern }}', {{ group }}), '')
{%- endmacro %}
{% macro spark__regexp_extract(expr, pattern, group) -%}
    nullif(regexp_extract({{ expr }}, '{{ pattern | replace("\\", "\\\\") }}', {{ group }}), '')
{%- endmacro %}

{#- True when `expr` matches the regular expression `pattern` anywhere (anchor it with ^...$ for a full match). -#}
{% macro regexp_matches(expr, pattern) -%}
    {{ return(adapter.dispatch('regexp_matches', 'guttrial')(expr, pattern)) }}
{%- endmacro %}
{% macro default__regexp_matches(expr, pattern) -%}
    regexp_matches({{ expr }}, '{{ pattern }}')
{%- endmacro %}
{% macro spark__regexp_matches(expr, pattern) -%}
    ({{ expr }} rlike '{{ pattern | replace("\\", "\\\\") }}')
{%- endmacro %}

{#- Replace every match of `pattern` in `expr` by `replacement`. -#}
{% macro regexp_replace_all(expr, pattern, replacement) -%}
    {{ return(adapter.dispatch('regexp_replace_all', 'guttrial')(expr, pattern, replacement)) }}
{%- endmacro %}
{% macro default__regexp_replace_all(expr, pattern, replacement) -%}
    regexp_replace({{ expr }}, '{{ pattern }}', '{{ replacement }}', 'g')
{%- endmacro %}
{% macro spark__regexp_replace_all(expr, pattern, replacement) -%}
    regexp_replace({{ expr }}, '{{ pattern | replace("\\", "\\\\") }}', '{{ replacement }}')
{%- endmacro %}

{#- A date from integer year, month and day that are known to form a valid calendar date. -#}
{% macro make_date(year, month, day) -%}
    {{ return(adapter.dispatch('make_date', 'guttrial')(year, month, day)) }}
{%- endmacro %}
{% macro default__make_date(year, month, day) -%}
    make_date(cast({{ year }} as integer), cast({{ month }} as integer), cast({{ day }} as integer))
{%- endmacro %}

{#- Base-10 logarithm. -#}
{% macro log10(expr) -%}
    {{ return(adapter.dispatch('log10', 'guttrial')(expr)) }}
{%- endmacro %}
{% macro default__log10(expr) -%}
    log10({{ expr }})
{%- endmacro %}
{% macro postgres__log10(expr) -%}
    log({{ expr }})
{%- endmacro %}

{#- Day of month (1-31) of a date. -#}
{% macro day_of_month(date_expr) -%}
    {{ return(adapter.dispatch('day_of_month', 'guttrial')(date_expr)) }}
{%- endmacro %}
{% macro default__day_of_month(date_expr) -%}
    extract(day from {{ date_expr }})
{%- endmacro %}

{#- Quote a column name that is a reserved word in some dialect (e.g. `count`). -#}
{% macro q(name) -%}
    {{ adapter.quote(name) }}
{%- endmacro %}

{#- Cast that yields NULL instead of failing (dbt.safe_cast is a plain cast on some adapters, e.g. duckdb). -#}
{% macro try_cast(expr, type) -%}
    {{ return(adapter.dispatch('try_cast', 'guttrial')(expr, type)) }}
{%- endmacro %}
{% macro default__try_cast(expr, type) -%}
    {{ dbt.safe_cast(expr, type) }}
{%- endmacro %}
{% macro duckdb__try_cast(expr, type) -%}
    try_cast({{ expr }} as {{ type }})
{%- endmacro %}
{% macro spark__try_cast(expr, type) -%}
    try_cast({{ expr }} as {{ type }})
{%- endmacro %}

{#- 64-bit floating point type (guttrial.type_double() is a 32-bit `float` on duckdb). -#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'guttrial')()) }}
{%- endmacro %}
{% macro default__type_double() -%}double{%- endmacro %}
{% macro postgres__type_double() -%}double precision{%- endmacro %}
