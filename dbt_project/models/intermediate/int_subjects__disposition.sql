-- One row per randomised patient: death (flag, date), end of treatment and end of study (status, date, reason)
-- from the disposition form, within the data cut-off.
with disposition as (
    select *
    from {{ ref('stg_crf__ds') }}
    where {{ within_cutoff('event_date') }}
),

deaths as (
    select subject_id, min(event_date) as death_date
    from disposition
    where category = 'DEATH' or decoded_term = 'DEATH'
    group by subject_id
),

ranked as (
    select
        subject_id,
        category,
        decoded_term,
        event_date,
        row_number() over (
            partition by subject_id, category order by event_date desc, _source_file desc, _row_number desc
        ) as recency
    from disposition
    where category in ('END OF TREATMENT', 'END OF STUDY')
),

subjects as (
    select subject_id from {{ ref('int_subjects') }}
)

select
    s.subject_id,
    case when d.subject_id is not null then 'Y' else 'N' end as death_fl,
    d.death_date,
    eot.decoded_term as end_of_treatment_reason,
    eot.event_date as end_of_treatment_date,
    case
        when eos.decoded_term is null or eos.decoded_term = 'ONGOING' then 'ONGOING'
        when eos.decoded_term = 'COMPLETED' then 'COMPLETED'
        else 'DISCONTINUED'
    end as end_of_study_status,
    case when eos.decoded_term <> 'ONGOING' then eos.event_date end as end_of_study_date,
    case when eos.decoded_term not in ('ONGOING', 'COMPLETED') then eos.decoded_term end as end_of_study_reason
from subjects as s
left join deaths as d
    on s.subject_id = d.subject_id
left join ranked as eot
    on s.subject_id = eot.subject_id
    and eot.category = 'END OF TREATMENT'
    and eot.recency = 1
left join ranked as eos
    on s.subject_id = eos.subject_id
    and eos.category = 'END OF STUDY'
    and eos.recency = 1
