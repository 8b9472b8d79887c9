-- One row per randomised patient: first and last dose dates overall and per drug (dosing records only).
-- A record without an end date is ongoing: its last dose date is the data cut-off (var cutoff, else the date
-- the disposition form records treatment as ONGOING at the cut-off), else its start date.
with ongoing as (
    select subject_id, max(event_date) as ongoing_at_date
    from {{ ref('stg_crf__ds') }}
    where category = 'END OF TREATMENT' and decoded_term = 'ONGOING'
    group by subject_id
),

records as (
    select
        r.subject_id,
        r.drug,
        r.start_date,
        coalesce(
            r.end_date,
            case when r.is_ongoing then coalesce({{ cutoff_date() }}, o.ongoing_at_date) end,
            r.start_date
        ) as last_dose_date
    from {{ ref('int_exposure__records') }} as r
    left join ongoing as o
        on r.subject_id = o.subject_id
    where r.is_dosing
),

subjects as (
    select subject_id from {{ ref('int_subjects') }}
)

select
    s.subject_id,
    min(r.start_date) as first_dose_date,
    max(r.last_dose_date) as last_dose_date,
    min(case when r.drug = 'LENVATINIB' then r.start_date end) as lenvatinib_first_dose_date,
    max(case when r.drug = 'LENVATINIB' then r.last_dose_date end) as lenvatinib_last_dose_date,
    min(case when r.drug = 'PD-1 ANTIBODY' then r.start_date end) as pd1_first_dose_date,
    max(case when r.drug = 'PD-1 ANTIBODY' then r.last_dose_date end) as pd1_last_dose_date,
    cast(sum(case when r.drug = 'PD-1 ANTIBODY' then 1 else 0 end) as {{ dbt.type_int() }}) as pd1_infusions,
    cast(sum(case when r.drug = 'STUDY CAPSULES' then 1 else 0 end) as {{ dbt.type_int() }}) as capsule_courses
from subjects as s
left join records as r
    on s.subject_id = r.subject_id
group by s.subject_id
