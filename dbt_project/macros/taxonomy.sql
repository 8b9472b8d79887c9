{#-
    Parsing 16S taxonomy strings into ranks, in SQL (regular expressions only):
      SILVA / QIIME 2 / GTDB   d__Bacteria; p__Firmicutes; ...; g__Blautia; s__Blautia_obeum
      Greengenes / QIIME 1     k__Bacteria; p__Firmicutes; ...; g__; s__
      mothur (.cons.taxonomy)  Bacteria(100);Firmicutes(100);...;Blautia(98);   (positional, kingdom..genus)
    A rank is unassigned (NULL) when empty (`g__`), or named unclassified/unknown/uncultured/unidentified/
    norank/metagenome/Unassigned, or `<parent>_unclassified`. Confidences `(NN)` and quotes are stripped.
-#}

{% macro _taxon_clean(expr) -%}
    case
        when {{ _taxon_strip(expr) }} is null then null
        when {{ guttrial.regexp_matches('lower(' ~ _taxon_strip(expr) ~ ')',
            '^(unassigned|unclassified|unknown|uncultured|unidentified|norank|metagenome|ambiguous_taxa)') }} then null
        when {{ guttrial.regexp_matches('lower(' ~ _taxon_strip(expr) ~ ')', '_unclassified$') }} then null
        else {{ _taxon_strip(expr) }}
    end
{%- endmacro %}

{% macro _taxon_strip(expr) -%}
    nullif(trim(replace({{ guttrial.regexp_replace_all(expr, '\\([0-9.]+\\)\\s*$', '') }}, '"', '')), '')
{%- endmacro %}

{#- Is the string in the prefixed (x__name) style? -#}
{% macro _taxon_is_prefixed(taxonomy) -%}
    {{ guttrial.regexp_matches(taxonomy, '(^|;)\\s*[dkpcofgs]__') }}
{%- endmacro %}

{#- The name at one rank. `prefixes`: rank letters accepted in the prefixed style (kingdom: 'dk');
    `position`: 1-based token number in the mothur positional style (0 = not available there). -#}
{% macro taxon_rank(taxonomy, prefixes, position) -%}
    case
        when {{ taxonomy }} is null then null
        when {{ _taxon_is_prefixed(taxonomy) }}
            then {{ _taxon_clean(guttrial.regexp_extract(taxonomy, '(^|;)\\s*[' ~ prefixes ~ ']__([^;]*)', 2)) }}
        {%- if position > 0 %}
        when {{ guttrial.regexp_matches(taxonomy, ';') }} or {{ guttrial.regexp_matches(taxonomy, '\\([0-9.]+\\)') }}
            then {{ _taxon_clean(guttrial.regexp_extract(taxonomy, '^([^;]*;){' ~ (position - 1) ~ '}\\s*([^;]*)', 2)) }}
        {%- endif %}
    end
{%- endmacro %}

{#- Which style the string is in: SILVA (d__), GREENGENES (k__), MOTHUR (positional), UNASSIGNED, OTHER. -#}
{% macro taxonomy_style(taxonomy) -%}
    case
        when {{ taxonomy }} is null then null
        when {{ guttrial.regexp_matches(taxonomy, '(^|;)\\s*d__') }} then 'SILVA'
        when {{ guttrial.regexp_matches(taxonomy, '(^|;)\\s*k__') }} then 'GREENGENES'
        when {{ _taxon_is_prefixed(taxonomy) }} then 'PREFIXED'
        when {{ guttrial.regexp_matches(taxonomy, '\\([0-9.]+\\)') }} then 'MOTHUR'
        when {{ guttrial.regexp_matches('lower(trim(' ~ taxonomy ~ '))', '^(unassigned|unclassified|unknown)') }}
            then 'UNASSIGNED'
        else 'OTHER'
    end
{%- endmacro %}
