{#-
    The relation has no column that is, or looks like, a direct identifier of the CRF contract
    (MRN, PATNAME, INITIALS, BRTHDTC) or a date of birth. Compares column names case-insensitively.
-#}
{% test no_direct_identifiers(model) %}
{%- set forbidden = ['MRN', 'PATNAME', 'INITIALS', 'BRTHDTC', 'BIRTH_DATE', 'DATE_OF_BIRTH', 'BIRTHDATE', 'PATIENT_NAME'] -%}
{%- set offending = [] -%}
{%- if execute -%}
    {%- for col in adapter.get_columns_in_relation(model) -%}
        {%- if col.name | upper in forbidden or 'BRTH' in col.name | upper -%}
            {%- do offending.append(col.name) -%}
        {%- endif -%}
    {%- endfor -%}
{%- endif -%}
select '{{ offending | join(", ") }}' as offending_columns
where {{ offending | length }} > 0
{% endtest %}
