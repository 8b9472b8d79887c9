-- One row per randomised patient: the baseline weight that sets the lenvatinib starting dose (the last weight
-- measured BEFORE the first-dose day, i.e. the screening weight the prescription was based on, not the pre-dose
-- weight of the dosing day itself; never dosed: on or before randomisation), the weight band (<= 60 kg
-- inclusive -> 8 mg/day, > 60 kg -> 12 mg/day) and the baseline height. `baseline_reference_date` (first dose,
-- else randomisation) is the cut point of the other baseline flags (labs: last value ON or before it).
with subjects as (
    select
        s.subject_id,
        t.first_dose_date,
        coalesce(t.first_dose_date, s.randomisation_date) as baseline_reference_date
    from {{ ref('int_subjects') }} as s
    left join {{ ref('int_subjects__treatment') }} as t
        on s.subject_id = t.subject_id
),

vitals as (
    select
        v.subject_id,
        v.test_code,
        v.standard_value,
        v.measurement_date,
        row_number() over (
            partition by v.subject_id, v.test_code
            order by v.measurement_date desc, v._source_file desc, v._row_number desc
        ) as recency
    from {{ ref('stg_crf__vs') }} as v
    inner join subjects as s
        on v.subject_id = s.subject_id
    where v.standard_value is not null
        and v.measurement_date is not null
        and (
            (s.first_dose_date is not null and v.measurement_date < s.first_dose_date)
            or (s.first_dose_date is null and v.measurement_date <= s.baseline_reference_date)
        )
),

baseline as (
    select
        subject_id,
        max(case when test_code = 'WEIGHT' then standard_value end) as baseline_weight_kg,
        max(case when test_code = 'WEIGHT' then measurement_date end) as baseline_weight_date,
        max(case when test_code = 'HEIGHT' then standard_value end) as baseline_height_cm
    from vitals
    where recency = 1
    group by subject_id
)

select
    s.subject_id,
    s.baseline_reference_date,
    b.baseline_weight_kg,
    b.baseline_weight_date,
    b.baseline_height_cm,
    {{ weight_band('b.baseline_weight_kg') }} as weight_band,
    {{ planned_lenvatinib_dose('b.baseline_weight_kg') }} as planned_lenvatinib_dose_mg
from subjects as s
left join baseline as b
    on s.subject_id = b.subject_id
