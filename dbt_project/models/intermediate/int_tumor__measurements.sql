-- One row per lesion per assessment with study day, the baseline assessment flag (last assessment on or
-- before study day 1, admiralonco ABLFL), the lesion's baseline diameter and the per-assessment sums of target
-- lesion diameters (RECIST: long axis of non-nodal + short axis of nodal targets, as recorded; mRECIST: viable).
with measurements as (
    select *
    from {{ ref('stg_crf__tr') }}
    where {{ within_cutoff('assessment_date') }}
),

subjects as (
    select subject_id, randomisation_date from {{ ref('int_subjects') }}
),

assessments as (
    select
        m.subject_id,
        m.visit,
        min(m.assessment_date) as assessment_date,
        max(m.assessment_date) as assessment_last_date
    from measurements as m
    group by m.subject_id, m.visit
),

ranked_assessments as (
    select
        a.*,
        {{ study_day('a.assessment_date', 's.randomisation_date') }} as study_day,
        {{ scan_window_columns('a.visit', 'a.assessment_date', 's.randomisation_date') }},
        row_number() over (
            partition by a.subject_id,
                case when a.assessment_date <= s.randomisation_date then 1 else 0 end
            order by a.assessment_date desc, a.visit
        ) as pre_rank,
        case when a.assessment_date <= s.randomisation_date then 1 else 0 end as is_pre
    from assessments as a
    inner join subjects as s
        on a.subject_id = s.subject_id
),

with_sums as (
    select
        m.*,
        ra.study_day,
        ra.nominal_day,
        ra.days_from_nominal,
        ra.in_window_fl,
        ra.assessment_date as visit_assessment_date,
        case when ra.is_pre = 1 and ra.pre_rank = 1 then 'Y' else 'N' end as baseline_fl,
        sum(case when m.lesion_category = 'TARGET' then m.diameter_mm end)
            over (partition by m.subject_id, m.visit) as sum_of_diameters_mm,
        sum(case when m.lesion_category = 'TARGET' then m.viable_diameter_mm end)
            over (partition by m.subject_id, m.visit) as sum_of_viable_diameters_mm,
        cast(sum(case when m.lesion_category = 'TARGET' then 1 else 0 end)
            over (partition by m.subject_id, m.visit) as {{ dbt.type_int() }}) as target_lesions_recorded,
        cast(sum(case when m.lesion_category = 'TARGET' and m.diameter_mm is not null then 1 else 0 end)
            over (partition by m.subject_id, m.visit) as {{ dbt.type_int() }}) as target_lesions_measured
    from measurements as m
    inner join ranked_assessments as ra
        on m.subject_id = ra.subject_id
        and m.visit = ra.visit
),

baseline_lesions as (
    select subject_id, lesion_id, max(diameter_mm) as baseline_diameter_mm
    from with_sums
    where baseline_fl = 'Y' and lesion_category = 'TARGET'
    group by subject_id, lesion_id
)

select
    w.subject_id,
    w.visit,
    w.assessment_dtc,
    w.assessment_date,
    w.assessment_date_flag,
    w.study_day,
    w.nominal_day,
    w.days_from_nominal,
    w.in_window_fl,
    w.baseline_fl,
    w.method,
    w.lesion_id,
    w.lesion_category,
    w.location,
    w.is_nodal,
    w.axis,
    w.diameter_mm,
    w.viable_diameter_mm,
    w.lesion_status,
    b.baseline_diameter_mm,
    w.sum_of_diameters_mm,
    w.sum_of_viable_diameters_mm,
    w.target_lesions_recorded,
    w.target_lesions_measured,
    w._source_file,
    w._row_number
from with_sums as w
left join baseline_lesions as b
    on w.subject_id = b.subject_id
    and w.lesion_id = b.lesion_id
    and w.lesion_category = 'TARGET'
