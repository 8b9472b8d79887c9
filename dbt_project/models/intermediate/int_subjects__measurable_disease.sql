-- One row per randomised patient: measurable disease at baseline (any TARGET lesion at the baseline tumour
-- assessment; the response-evaluable population) and the baseline sum of diameters.
with baseline as (
    select
        subject_id,
        max(case when lesion_category = 'TARGET' then 1 else 0 end) as has_target,
        max(sum_of_diameters_mm) as baseline_sum_of_diameters_mm,
        max(assessment_date) as baseline_assessment_date
    from {{ ref('int_tumor__measurements') }}
    where baseline_fl = 'Y'
    group by subject_id
)

select
    s.subject_id,
    case when b.has_target = 1 then 'Y' else 'N' end as measurable_disease_fl,
    b.baseline_sum_of_diameters_mm,
    b.baseline_assessment_date
from {{ ref('int_subjects') }} as s
left join baseline as b
    on s.subject_id = b.subject_id
