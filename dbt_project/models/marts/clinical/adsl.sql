-- Subject-level analysis dataset: one row per randomised patient.
with subjects as (select * from {{ ref('int_subjects') }}),
arm as (select * from {{ ref('int_subjects__arm') }}),
treatment as (select * from {{ ref('int_subjects__treatment') }}),
weight as (select * from {{ ref('int_subjects__weight_band') }}),
baseline as (select * from {{ ref('int_subjects__baseline') }}),
disposition as (select * from {{ ref('int_subjects__disposition') }}),
alive as (select * from {{ ref('int_subjects__last_alive') }}),
measurable as (select * from {{ ref('int_subjects__measurable_disease') }}),
nact as (
    select subject_id, min(nact_start_date) as nact_date
    from {{ ref('int_subsequent_therapy') }}
    where after_randomisation_fl = 'Y' and {{ within_cutoff('nact_start_date') }}
    group by subject_id
)

select
    -- identifiers (pseudonymous only)
    s.subject_id,
    s.study_id,
    s.site_id,
    s.subjid,
    s.randno,
    -- demographics
    s.sex,
    s.ethnic,
    s.age_years,
    s.age_imputation_flag,
    case
        when s.age_years is null then null
        when s.age_years < {{ var('age_group_threshold') }} then '<{{ var("age_group_threshold") }}'
        else '>={{ var("age_group_threshold") }}'
    end as age_group,
    -- randomisation and treatment
    s.randomisation_date,
    s.randomisation_stratum,
    a.arm_code,
    t.first_dose_date as treatment_start_date,
    t.last_dose_date as treatment_end_date,
    t.lenvatinib_first_dose_date,
    t.lenvatinib_last_dose_date,
    t.pd1_first_dose_date,
    t.pd1_last_dose_date,
    cast(t.pd1_infusions as {{ dbt.type_int() }}) as pd1_infusions,
    cast(t.capsule_courses as {{ dbt.type_int() }}) as capsule_courses,
    -- baseline weight and protocol dose
    w.baseline_weight_kg,
    w.baseline_height_cm,
    w.weight_band,
    cast(w.planned_lenvatinib_dose_mg as {{ dbt.type_int() }}) as planned_lenvatinib_dose_mg,
    -- baseline disease
    b.diagnosis_date,
    b.bclc_stage,
    b.aetiology,
    cast(b.ecog as {{ dbt.type_int() }}) as ecog,
    b.ascites,
    b.encephalopathy,
    b.macrovascular_invasion,
    b.extrahepatic_spread,
    m.measurable_disease_fl,
    m.baseline_sum_of_diameters_mm,
    -- baseline labs (standard units) and liver function scores
    b.bilirubin_umol_l,
    b.albumin_g_l,
    b.inr,
    b.platelets_10e9_l,
    b.alt_u_l,
    b.ast_u_l,
    b.creatinine_umol_l,
    b.afp_ng_ml,
    case when b.afp_ng_ml is null then null when b.afp_ng_ml >= 400 then '>=400' else '<400' end as afp_group,
    b.albi_score,
    b.albi_grade,
    cast(b.child_pugh_score as {{ dbt.type_int() }}) as child_pugh_score,
    b.child_pugh_class,
    -- population flags
    'Y' as itt_fl,
    case when t.first_dose_date is not null then 'Y' else 'N' end as safety_fl,
    case when m.measurable_disease_fl = 'Y' then 'Y' else 'N' end as response_evaluable_fl,
    -- disposition
    d.death_fl,
    d.death_date,
    al.last_known_alive_date,
    al.last_known_alive_source,
    d.end_of_treatment_reason,
    d.end_of_treatment_date,
    d.end_of_study_status,
    d.end_of_study_date,
    d.end_of_study_reason,
    n.nact_date
from subjects as s
left join arm as a on s.subject_id = a.subject_id
left join treatment as t on s.subject_id = t.subject_id
left join weight as w on s.subject_id = w.subject_id
left join baseline as b on s.subject_id = b.subject_id
left join disposition as d on s.subject_id = d.subject_id
left join alive as al on s.subject_id = al.subject_id
left join measurable as m on s.subject_id = m.subject_id
left join nact as n on s.subject_id = n.subject_id
