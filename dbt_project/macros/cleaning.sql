{#-
    Cleaning helpers for CRF text exported by the EDC (raw keeps every value exactly as delivered).

    Missing markers: the values below (compared after trimming, case-insensitively) mean "missing" and become
    NULL. Keep this list identical to analysis.contract.MISSING_MARKERS (a pytest checks it).
    Pass `keep=['NA']` where a marker is a real code of the codelist (e.g. RSTLRESP 'NA' = not applicable).
-#}
{% macro missing_markers() -%}
    {{ return(['', 'ND', 'NA', 'N/A', 'UNK', 'NK', 'NOT DONE']) }}
{%- endmacro %}

{#- Trimmed text, missing markers -> NULL, case kept (free text). -#}
{% macro clean_text(expr, keep=[]) -%}
    {%- set markers = missing_markers() | reject('in', keep) | list -%}
    case
        when {{ expr }} is null then null
        when upper(trim({{ expr }})) in ({% for m in markers %}'{{ m }}'{% if not loop.last %}, {% endif %}{% endfor %}) then null
        else trim({{ expr }})
    end
{%- endmacro %}

{#- Coded value: trimmed, inner runs of blanks collapsed to one, upper-case, missing markers -> NULL. -#}
{% macro clean_code(expr, keep=[]) -%}
    upper({{ guttrial.regexp_replace_all(clean_text(expr, keep), '\\s+', ' ') }})
{%- endmacro %}

{#- Number from text: missing markers -> NULL, a decimal comma accepted, anything unparseable -> NULL. -#}
{% macro to_number(expr, type='double') -%}
    {%- set sql_type = guttrial.type_double() if type == 'double' else dbt.type_int() -%}
    {{ guttrial.try_cast("replace(" ~ clean_text(expr) ~ ", ',', '.')", sql_type) }}
{%- endmacro %}

{#- Whole number from text ('2', ' 2 ', '2.0' -> 2); anything else -> NULL. -#}
{% macro to_integer(expr) -%}
    cast({{ guttrial.try_cast("replace(" ~ clean_text(expr) ~ ", ',', '.')", guttrial.type_double()) }} as {{ dbt.type_int() }})
{%- endmacro %}

{#- 'Y'/'N' flag from text (Y, YES, N, NO in any case); anything else -> NULL. -#}
{% macro to_yn(expr) -%}
    case {{ clean_code(expr) }}
        when 'Y' then 'Y' when 'YES' then 'Y'
        when 'N' then 'N' when 'NO' then 'N'
    end
{%- endmacro %}

{#- Pseudonymous subject key used in every model: '<STUDYID>-<SUBJID>' (USUBJID style). -#}
{% macro subject_key(studyid, subjid) -%}
    {{ clean_code(studyid) }} || '-' || {{ clean_code(subjid) }}
{%- endmacro %}

{#-
    Rows of a raw table that belong to the current version of their file (raw.current_files): a changed
    re-delivery replaces the previous version, a rejected one leaves it current.
-#}
{% macro current_rows(relation) -%}
    select t.*
    from {{ relation }} as t
    inner join {{ source('raw', 'current_files') }} as cf
        on t._source_file = cf.path
        and t._file_sha256 = cf.sha256
        and t._load_id = cf.load_id
{%- endmacro %}

{#-
    Remove exact duplicates from CTE/relation `relation`: rows equal on every column in `columns` (after
    cleaning) collapse to the first one by file and row number, keeping its lineage. Adds
    `_duplicate_count` (how many identical records were delivered, >= 1).
-#}
{% macro deduplicate(relation, columns, lineage=['_source_file', '_row_number', '_file_sha256', '_load_id']) -%}
    select
        {% for c in columns %}{{ c }},
        {% endfor -%}
        {% for c in lineage %}{{ c }},
        {% endfor -%}
        _duplicate_count
    from (
        select
            *,
            row_number() over (
                partition by {{ columns | join(', ') }}
                order by _source_file, _row_number
            ) as _duplicate_rank,
            count(*) over (partition by {{ columns | join(', ') }}) as _duplicate_count
        from {{ relation }}
    ) as ranked
    where _duplicate_rank = 1
{%- endmacro %}

{#- Normalised lab unit for matching lab_unit_conversions.unit_key: upper-case, no blanks, µ/μ -> U, × -> X,
    NONE when no unit was reported. -#}
{% macro lab_unit_key(expr) -%}
    coalesce(
        upper(replace(replace(replace({{ guttrial.regexp_replace_all(clean_text(expr), '\\s+', '') }}, 'µ', 'U'), 'μ', 'U'), '×', 'X')),
        'NONE'
    )
{%- endmacro %}
