{#-
    Full and partial CRF dates.

    Accepted shapes (after trimming and upper-casing), unknown parts written UN, UNK, NK or XX:
      ISO 8601 and its partial forms   2024-05-13, 2024-05-13T10:30, 2024-05, 2024, 2024-05-UN, 2024-UNK-UNK
      DD/MON/YYYY (also - or blank)    13/MAY/2024, UN/JAN/2024, UNK/UNK/2024
    Imputation rule (documented in docs/querying.md and in the model YAML, `date_imputation` doc block):
      * complete date                      -> that date,                              flag NULL
      * day missing                        -> first of month for start/event dates,
                                              last of month for end dates,            flag 'D'
      * month missing (year known)         -> not imputed: date NULL,                 flag 'M'
      * year missing                       -> date NULL,                              flag 'Y'
      * not a date / impossible date       -> date NULL,                              flag 'X'
      * empty or a missing marker (ND, NA) -> date NULL,                              flag NULL
-#}

{% macro _dtc_norm(expr) -%}
    upper(trim({{ expr }}))
{%- endmacro %}

{% macro _iso_pattern() -%}^([0-9]{4}|UNKN?|UN|NK|XXXX)(-([0-9]{1,2}|UNKN?|UN|NK|XX))?(-([0-9]{1,2}|UNKN?|UN|NK|XX))?([T ][0-9:.]*)?${%- endmacro %}
{% macro _dmy_pattern() -%}^([0-9]{1,2}|UNKN?|UN|NK|XX)[-/ ]([A-Z]{3}|UNKN?|UN|NK|XX)[-/ ]([0-9]{4}|UNKN?|UN|NK|XXXX)${%- endmacro %}

{% macro _is_missing_dtc(expr) -%}
    ({{ expr }} is null or {{ _dtc_norm(expr) }} in ({% for m in missing_markers() %}'{{ m }}'{% if not loop.last %}, {% endif %}{% endfor %}))
{%- endmacro %}

{% macro _month_from_name(expr) -%}
    case {{ expr }}
        when 'JAN' then 1 when 'FEB' then 2 when 'MAR' then 3 when 'APR' then 4
        when 'MAY' then 5 when 'JUN' then 6 when 'JUL' then 7 when 'AUG' then 8
        when 'SEP' then 9 when 'OCT' then 10 when 'NOV' then 11 when 'DEC' then 12
    end
{%- endmacro %}

{#- Year, month and day of a (partial) date as integers; NULL where unknown or not a date. Each part is one
    regular-expression extraction per accepted shape (cheap to plan and to run on large views). -#}
{% macro dtc_year(expr) -%}
    coalesce(
        {{ guttrial.try_cast(guttrial.regexp_extract(_dtc_norm(expr), _iso_pattern(), 1), dbt.type_int()) }},
        {{ guttrial.try_cast(guttrial.regexp_extract(_dtc_norm(expr), _dmy_pattern(), 3), dbt.type_int()) }}
    )
{%- endmacro %}

{% macro dtc_month(expr) -%}
    coalesce(
        {{ guttrial.try_cast(guttrial.regexp_extract(_dtc_norm(expr), _iso_pattern(), 3), dbt.type_int()) }},
        {{ _month_from_name(guttrial.regexp_extract(_dtc_norm(expr), _dmy_pattern(), 2)) }}
    )
{%- endmacro %}

{% macro dtc_day(expr) -%}
    coalesce(
        {{ guttrial.try_cast(guttrial.regexp_extract(_dtc_norm(expr), _iso_pattern(), 5), dbt.type_int()) }},
        {{ guttrial.try_cast(guttrial.regexp_extract(_dtc_norm(expr), _dmy_pattern(), 1), dbt.type_int()) }}
    )
{%- endmacro %}

{#- True when the text has one of the accepted shapes. -#}
{% macro dtc_shape_ok(expr) -%}
    (coalesce({{ guttrial.regexp_extract(_dtc_norm(expr), _iso_pattern(), 1) }},
              {{ guttrial.regexp_extract(_dtc_norm(expr), _dmy_pattern(), 3) }}) is not null)
{%- endmacro %}

{#-
    Two-step use in staging (parts are computed once per column, then combined):
      parsed as (select {{ dtc_parts('aestdtc', 'start') }}, ... from source),
      cleaned as (select *, {{ dtc_date('start', 'first') }} from parsed)
    gives `start_dtc` (text as delivered, trimmed), `start_date` and `start_date_flag`; the helper columns
    `_start_y/_m/_d/_ok/_missing` are dropped by the final select (deduplicate lists its columns).
-#}
{% macro dtc_parts(expr, name) -%}
    {{ clean_text(expr) }} as {{ name }}_dtc,
    {{ _is_missing_dtc(expr) }} as _{{ name }}_missing,
    {{ dtc_shape_ok(expr) }} as _{{ name }}_ok,
    {{ dtc_year(expr) }} as _{{ name }}_y,
    {{ dtc_month(expr) }} as _{{ name }}_m,
    {{ dtc_day(expr) }} as _{{ name }}_d
{%- endmacro %}

{% macro dtc_date(name, imputation='first') -%}
    {{ _dtc_date_from(
        '_' ~ name ~ '_missing', '_' ~ name ~ '_ok', '_' ~ name ~ '_y', '_' ~ name ~ '_m', '_' ~ name ~ '_d', imputation
    ) }} as {{ name }}_date,
    {{ _dtc_flag_from(
        '_' ~ name ~ '_missing', '_' ~ name ~ '_ok', '_' ~ name ~ '_y', '_' ~ name ~ '_m', '_' ~ name ~ '_d'
    ) }} as {{ name }}_date_flag
{%- endmacro %}

{% macro _dtc_date_from(missing, ok, y, m, d, imputation) -%}
    {%- if imputation not in ('first', 'last') -%}
        {{ exceptions.raise_compiler_error("dtc date: imputation must be 'first' or 'last', got " ~ imputation) }}
    {%- endif -%}
    case
        when {{ missing }} or not {{ ok }} then null
        when {{ y }} is null or {{ m }} is null then null
        when not ({{ y }} between 1800 and 2200 and {{ m }} between 1 and 12) then null
        when {{ d }} is null then
            {%- if imputation == 'first' %} {{ guttrial.make_date(y, m, 1) }}
            {%- else %} cast({{ dbt.last_day(guttrial.make_date(y, m, 1), 'month') }} as date)
            {%- endif %}
        when {{ d }} between 1 and {{ guttrial.day_of_month(dbt.last_day(guttrial.make_date(y, m, 1), 'month')) }}
            then {{ guttrial.make_date(y, m, d) }}
    end
{%- endmacro %}

{% macro _dtc_flag_from(missing, ok, y, m, d) -%}
    case
        when {{ missing }} then null
        when not {{ ok }} then 'X'
        when {{ y }} is null then 'Y'
        when {{ m }} is null then 'M'
        when not ({{ y }} between 1800 and 2200 and {{ m }} between 1 and 12) then 'X'
        when {{ d }} is null then 'D'
        when {{ d }} between 1 and {{ guttrial.day_of_month(dbt.last_day(guttrial.make_date(y, m, 1), 'month')) }}
            then null
        else 'X'
    end
{%- endmacro %}

{#- Single-expression forms (for one-off use; staging uses dtc_parts + dtc_date). -#}
{% macro dtc_to_date(expr, imputation='first') -%}
    {{ _dtc_date_from(_is_missing_dtc(expr), dtc_shape_ok(expr), dtc_year(expr), dtc_month(expr), dtc_day(expr), imputation) }}
{%- endmacro %}

{% macro dtc_flag(expr) -%}
    {{ _dtc_flag_from(_is_missing_dtc(expr), dtc_shape_ok(expr), dtc_year(expr), dtc_month(expr), dtc_day(expr)) }}
{%- endmacro %}

{#- Study day (ADaM *DY): event - reference + 1 on or after the reference date, event - reference before it
    (there is no day 0). NULL when either date is NULL. -#}
{% macro study_day(event_date, reference_date) -%}
    case
        when {{ event_date }} is null or {{ reference_date }} is null then null
        when {{ event_date }} >= {{ reference_date }}
            then {{ dbt.datediff(reference_date, event_date, 'day') }} + 1
        else {{ dbt.datediff(reference_date, event_date, 'day') }}
    end
{%- endmacro %}

{#- Data cut-off: true when the date is on or before var('cutoff') (or there is no cut-off). NULL dates pass
    unless `keep_null=false`. -#}
{% macro within_cutoff(date_expr, keep_null=true) -%}
    {%- set cutoff = var('cutoff', '') -%}
    {%- if cutoff and cutoff | string | trim | length > 0 -%}
        ({% if keep_null %}{{ date_expr }} is null or {% endif %}{{ date_expr }} <= cast('{{ cutoff | string | trim }}' as date))
    {%- else -%}
        {% if keep_null %}true{% else %}({{ date_expr }} is not null){% endif %}
    {%- endif -%}
{%- endmacro %}

{#- The cut-off as a SQL date literal, or NULL. -#}
{% macro cutoff_date() -%}
    {%- set cutoff = var('cutoff', '') -%}
    {%- if cutoff and cutoff | string | trim | length > 0 -%}cast('{{ cutoff | string | trim }}' as date){%- else -%}cast(null as date){%- endif -%}
{%- endmacro %}

{#- Completed years between a birth date and a reference date (age at that date). -#}
{% macro age_in_years(birth_date, reference_date) -%}
    case
        when {{ birth_date }} is null or {{ reference_date }} is null then null
        else extract(year from {{ reference_date }}) - extract(year from {{ birth_date }})
            - case
                when extract(month from {{ reference_date }}) < extract(month from {{ birth_date }})
                    or (extract(month from {{ reference_date }}) = extract(month from {{ birth_date }})
                        and extract(day from {{ reference_date }}) < extract(day from {{ birth_date }}))
                    then 1
                else 0
            end
    end
{%- endmacro %}
