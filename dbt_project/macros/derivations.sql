{#- Clinical derivations shared by several models (each one is unit-tested on the model that uses it). -#}

{#- Lenvatinib weight band: '<=60 kg' (inclusive) or '>60 kg'; NULL without a weight. -#}
{% macro weight_band(weight_kg) -%}
    {%- set limit = var('weight_band_threshold_kg') -%}
    case
        when {{ weight_kg }} is null then null
        when {{ weight_kg }} <= {{ limit }} then '<={{ limit }} kg'
        else '>{{ limit }} kg'
    end
{%- endmacro %}

{#- Protocol lenvatinib dose (mg/day): 8 at <= 60 kg, 12 above. -#}
{% macro planned_lenvatinib_dose(weight_kg) -%}
    case
        when {{ weight_kg }} is null then null
        when {{ weight_kg }} <= {{ var('weight_band_threshold_kg') }} then 8
        else 12
    end
{%- endmacro %}

{#- ALBI score (Johnson et al. JCO 2015): 0.66 x log10(bilirubin umol/L) - 0.085 x albumin g/L. -#}
{% macro albi_score(bilirubin_umol_l, albumin_g_l) -%}
    case
        when {{ bilirubin_umol_l }} > 0 and {{ albumin_g_l }} is not null
            then 0.66 * {{ guttrial.log10(bilirubin_umol_l) }} - 0.085 * {{ albumin_g_l }}
    end
{%- endmacro %}

{#- ALBI grade: 1 (<= -2.60), 2 (> -2.60 and <= -1.39), 3 (> -1.39). -#}
{% macro albi_grade(score) -%}
    case
        when {{ score }} is null then null
        when {{ score }} <= -2.60 then 1
        when {{ score }} <= -1.39 then 2
        else 3
    end
{%- endmacro %}

{#- Child-Pugh points of one component (1, 2 or 3; NULL when the input is missing).
    Bilirubin umol/L: <34.2 -> 1, 34.2-51.3 -> 2, >51.3 -> 3.  Albumin g/L: >35 -> 1, 28-35 -> 2, <28 -> 3.
    INR: <1.7 -> 1, 1.7-2.3 -> 2, >2.3 -> 3.  Ascites: NONE 1, MILD 2, MODERATE-SEVERE 3.
    Encephalopathy: NONE 1, GRADE 1-2 2, GRADE 3-4 3. Middle bands are inclusive. -#}
{% macro child_pugh_bilirubin_points(bilirubin_umol_l) -%}
    case
        when {{ bilirubin_umol_l }} is null then null
        when {{ bilirubin_umol_l }} < 34.2 then 1
        when {{ bilirubin_umol_l }} <= 51.3 then 2
        else 3
    end
{%- endmacro %}

{% macro child_pugh_albumin_points(albumin_g_l) -%}
    case
        when {{ albumin_g_l }} is null then null
        when {{ albumin_g_l }} > 35 then 1
        when {{ albumin_g_l }} >= 28 then 2
        else 3
    end
{%- endmacro %}

{% macro child_pugh_inr_points(inr) -%}
    case
        when {{ inr }} is null then null
        when {{ inr }} < 1.7 then 1
        when {{ inr }} <= 2.3 then 2
        else 3
    end
{%- endmacro %}

{% macro child_pugh_ascites_points(ascites) -%}
    case {{ ascites }}
        when 'NONE' then 1
        when 'MILD' then 2
        when 'MODERATE-SEVERE' then 3
    end
{%- endmacro %}

{% macro child_pugh_encephalopathy_points(encephalopathy) -%}
    case {{ encephalopathy }}
        when 'NONE' then 1
        when 'GRADE 1-2' then 2
        when 'GRADE 3-4' then 3
    end
{%- endmacro %}

{#- Child-Pugh class from the score: A 5-6, B 7-9, C 10-15. -#}
{% macro child_pugh_class(score) -%}
    case
        when {{ score }} is null then null
        when {{ score }} <= 6 then 'A'
        when {{ score }} <= 9 then 'B'
        else 'C'
    end
{%- endmacro %}

{#-
    CTCAE 5.0 grade of one lab value (clinical-endpoints.md §5.3), NULL for tests without a CTCAE term (AFP)
    or without the limits the criterion needs. `base` = the patient's baseline value, `base_abnormal` = baseline
    above ULN (for the baseline-dependent terms ALT, AST, bilirubin), `is_baseline` = this is the baseline record.
      ALT/AST  baseline normal: >ULN-3x 1, >3-5x 2, >5-20x 3, >20x ULN 4; abnormal: >=1.5-3x 1, >3-5x 2, >5-20x 3,
               >20x BASE 4 (the abnormal baseline record itself is grade 0).
      BILI     baseline normal: >ULN-1.5x 1, >1.5-3x 2, >3-10x 3, >10x ULN 4; abnormal: the same multiples of BASE.
      ALB      <LLN-30 g/L 1, <30-20 2, <20 3.      PLAT  <LLN-75 1, <75-50 2, <50-25 3, <25 (10^9/L) 4.
      INR      >1.2-1.5x ULN 1, >1.5-2.5x 2, >2.5x 3 (not on anticoagulation).
      CREAT    worst of: >ULN-1.5x 1, >1.5-3x 2, >3-6x 3, >6x ULN 4 and >1.5-3x BASE 2, >3x BASE 3.
-#}
{% macro ctcae_lab_grade(test_code, value, uln, lln, base, base_abnormal, is_baseline) -%}
    case
        when {{ value }} is null then null
        when {{ test_code }} in ('ALT', 'AST') then
            case
                when {{ base_abnormal }} and {{ is_baseline }} then 0
                when {{ base_abnormal }} then
                    case
                        when {{ value }} > 20 * {{ base }} then 4
                        when {{ value }} > 5 * {{ base }} then 3
                        when {{ value }} > 3 * {{ base }} then 2
                        when {{ value }} >= 1.5 * {{ base }} then 1
                        else 0
                    end
                when {{ uln }} is null then null
                when {{ value }} > 20 * {{ uln }} then 4
                when {{ value }} > 5 * {{ uln }} then 3
                when {{ value }} > 3 * {{ uln }} then 2
                when {{ value }} > {{ uln }} then 1
                else 0
            end
        when {{ test_code }} = 'BILI' then
            case
                when {{ base_abnormal }} and {{ is_baseline }} then 0
                when {{ base_abnormal }} then
                    case
                        when {{ value }} > 10 * {{ base }} then 4
                        when {{ value }} > 3 * {{ base }} then 3
                        when {{ value }} > 1.5 * {{ base }} then 2
                        when {{ value }} > {{ base }} then 1
                        else 0
                    end
                when {{ uln }} is null then null
                when {{ value }} > 10 * {{ uln }} then 4
                when {{ value }} > 3 * {{ uln }} then 3
                when {{ value }} > 1.5 * {{ uln }} then 2
                when {{ value }} > {{ uln }} then 1
                else 0
            end
        when {{ test_code }} = 'ALB' then
            case
                when {{ lln }} is null then null
                when {{ value }} < 20 then 3
                when {{ value }} < 30 then 2
                when {{ value }} < {{ lln }} then 1
                else 0
            end
        when {{ test_code }} = 'PLAT' then
            case
                when {{ lln }} is null then null
                when {{ value }} < 25 then 4
                when {{ value }} < 50 then 3
                when {{ value }} < 75 then 2
                when {{ value }} < {{ lln }} then 1
                else 0
            end
        when {{ test_code }} = 'INR' then
            case
                when {{ uln }} is null then null
                when {{ value }} > 2.5 * {{ uln }} then 3
                when {{ value }} > 1.5 * {{ uln }} then 2
                when {{ value }} > 1.2 * {{ uln }} then 1
                else 0
            end
        when {{ test_code }} = 'CREAT' then
            case
                when {{ uln }} is null then null
                when {{ value }} > 6 * {{ uln }} then 4
                when {{ value }} > 3 * {{ uln }}
                    or (not {{ is_baseline }} and {{ base }} > 0 and {{ value }} > 3 * {{ base }}) then 3
                when {{ value }} > 1.5 * {{ uln }}
                    or (not {{ is_baseline }} and {{ base }} > 0 and {{ value }} > 1.5 * {{ base }}) then 2
                when {{ value }} > {{ uln }} then 1
                else 0
            end
    end
{%- endmacro %}

{#- Treatment-emergent flag, first matching rule wins (clinical-endpoints.md §5.1, admiral derive_var_trtemfl):
    no first dose -> NULL; AE end < first dose -> 'N'; start unknown -> 'Y';
    first dose <= start <= last dose + window -> 'Y' (open-ended when the last dose is unknown); else 'N'. -#}
{% macro teae_flag(start_date, start_dtc, end_date, first_dose_date, last_dose_date, window=none) -%}
    {%- set window_days = window if window is not none else var('teae_window_days') -%}
    case
        when {{ first_dose_date }} is null then null
        when {{ end_date }} is not null and {{ end_date }} < {{ first_dose_date }} then 'N'
        when {{ start_date }} is null then 'Y'
        when {{ start_date }} >= {{ first_dose_date }}
            and ({{ last_dose_date }} is null
                 or {{ start_date }} <= {{ dbt.dateadd('day', window_days, last_dose_date) }})
            then 'Y'
        else 'N'
    end
{%- endmacro %}

{#- 'Y' when the investigator's causality is POSSIBLE, PROBABLE or DEFINITE; 'N' for NOT RELATED/UNLIKELY. -#}
{% macro related_flag(relationship) -%}
    case
        when {{ relationship }} in ('POSSIBLE', 'PROBABLE', 'DEFINITE') then 'Y'
        when {{ relationship }} in ('NOT RELATED', 'UNLIKELY') then 'N'
    end
{%- endmacro %}

{#- Scheduled tumour assessments are labelled WEEK n: nominal day = 7 n days after randomisation (NULL for
    SCREENING / UNSCHEDULED). -#}
{% macro nominal_scan_day(visit) -%}
    {{ guttrial.try_cast(guttrial.regexp_extract(visit, '^WEEK ([0-9]+)$', 1), dbt.type_int()) }} * 7
{%- endmacro %}

{#- Visit-window columns of a scheduled tumour assessment: nominal_day, days_from_nominal, in_window_fl. -#}
{% macro scan_window_columns(visit, assessment_date, randomisation_date) -%}
    {{ nominal_scan_day(visit) }} as nominal_day,
    {{ dbt.datediff(randomisation_date, assessment_date, 'day') }} - {{ nominal_scan_day(visit) }} as days_from_nominal,
    case
        when {{ nominal_scan_day(visit) }} is null or {{ assessment_date }} is null then null
        when abs({{ dbt.datediff(randomisation_date, assessment_date, 'day') }} - {{ nominal_scan_day(visit) }})
            <= {{ var('tumour_window_days') }} then 'Y'
        else 'N'
    end as in_window_fl
{%- endmacro %}
