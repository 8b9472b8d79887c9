-- One row per randomised patient: baseline disease characteristics, baseline labs (standard units), ALBI score
-- and grade, Child-Pugh points, score and class (missing if any component is missing; never imputed).
with subjects as (
    select subject_id from {{ ref('int_subjects') }}
),

disease as (
    select
        *,
        row_number() over (partition by subject_id order by _source_file, _row_number) as record_rank
    from {{ ref('stg_crf__bl') }}
),

baseline_labs as (
    select
        subject_id,
        max(case when test_code = 'BILI' then standard_value end) as bilirubin_umol_l,
        max(case when test_code = 'ALB' then standard_value end) as albumin_g_l,
        max(case when test_code = 'INR' then standard_value end) as inr,
        max(case when test_code = 'PLAT' then standard_value end) as platelets_10e9_l,
        max(case when test_code = 'ALT' then standard_value end) as alt_u_l,
        max(case when test_code = 'AST' then standard_value end) as ast_u_l,
        max(case when test_code = 'CREAT' then standard_value end) as creatinine_umol_l,
        max(case when test_code = 'AFP' then standard_value end) as afp_ng_ml
    from {{ ref('int_labs') }}
    where baseline_fl = 'Y'
    group by subject_id
),

combined as (
    select
        s.subject_id,
        d.diagnosis_date,
        d.bclc_stage,
        d.aetiology,
        d.ecog,
        d.ascites,
        d.encephalopathy,
        d.macrovascular_invasion,
        d.extrahepatic_spread,
        l.bilirubin_umol_l,
        l.albumin_g_l,
        l.inr,
        l.platelets_10e9_l,
        l.alt_u_l,
        l.ast_u_l,
        l.creatinine_umol_l,
        l.afp_ng_ml,
        {{ albi_score('l.bilirubin_umol_l', 'l.albumin_g_l') }} as albi_score_unrounded,
        {{ child_pugh_bilirubin_points('l.bilirubin_umol_l') }}
            + {{ child_pugh_albumin_points('l.albumin_g_l') }}
            + {{ child_pugh_inr_points('l.inr') }}
            + {{ child_pugh_ascites_points('d.ascites') }}
            + {{ child_pugh_encephalopathy_points('d.encephalopathy') }} as child_pugh_score
    from subjects as s
    left join disease as d
        on s.subject_id = d.subject_id
        and d.record_rank = 1
    left join baseline_labs as l
        on s.subject_id = l.subject_id
)

select
    subject_id,
    diagnosis_date,
    bclc_stage,
    aetiology,
    ecog,
    ascites,
    encephalopathy,
    macrovascular_invasion,
    extrahepatic_spread,
    bilirubin_umol_l,
    albumin_g_l,
    inr,
    platelets_10e9_l,
    alt_u_l,
    ast_u_l,
    creatinine_umol_l,
    afp_ng_ml,
    -- reported to 3 decimals (the published check cases' precision); the grade uses the unrounded score
    round(albi_score_unrounded, 3) as albi_score,
    cast({{ albi_grade('albi_score_unrounded') }} as {{ dbt.type_int() }}) as albi_grade,
    child_pugh_score,
    {{ child_pugh_class('child_pugh_score') }} as child_pugh_class
from combined
