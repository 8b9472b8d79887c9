-- One row per randomised patient: last date known alive (ADSL LSTALVDT) = the latest COMPLETE date (no imputed
-- day) on which the patient was seen or contacted, across every source: randomisation, exposure, adverse
-- events, labs, vital signs, tumour assessments, responses, questionnaires, biospecimens, subsequent therapy and
-- disposition (last contact, end of treatment/study; death records excluded). Dates after the cut-off and after
-- the death date are ignored.
with subjects as (
    select s.subject_id, s.randomisation_date, d.death_date
    from {{ ref('int_subjects') }} as s
    left join {{ ref('int_subjects__disposition') }} as d
        on s.subject_id = d.subject_id
),

alive_dates as (
    select subject_id, randomisation_date as alive_date, 'RAND' as source_domain
    from {{ ref('stg_crf__rand') }} where randomisation_date_flag is null
    union all
    select subject_id, start_date, 'EX' from {{ ref('stg_crf__ex') }} where start_date_flag is null
    union all
    select subject_id, end_date, 'EX' from {{ ref('stg_crf__ex') }} where end_date_flag is null
    union all
    select subject_id, start_date, 'AE' from {{ ref('stg_crf__ae') }} where start_date_flag is null
    union all
    select subject_id, end_date, 'AE' from {{ ref('stg_crf__ae') }} where end_date_flag is null and coalesce(outcome, '') <> 'FATAL'
    union all
    select subject_id, collection_date, 'LB' from {{ ref('stg_crf__lb') }} where collection_date_flag is null
    union all
    select subject_id, measurement_date, 'VS' from {{ ref('stg_crf__vs') }} where measurement_date_flag is null
    union all
    select subject_id, assessment_date, 'TR' from {{ ref('stg_crf__tr') }} where assessment_date_flag is null
    union all
    select subject_id, assessment_date, 'RS' from {{ ref('stg_crf__rs') }} where assessment_date_flag is null
    union all
    select subject_id, questionnaire_date, 'QS' from {{ ref('stg_crf__qs') }} where questionnaire_date_flag is null
    union all
    select subject_id, collection_date, 'BS' from {{ ref('stg_crf__bs') }} where collection_date_flag is null
    union all
    select subject_id, start_date, 'CM' from {{ ref('stg_crf__cm') }} where start_date_flag is null
    union all
    select subject_id, event_date, 'DS' from {{ ref('stg_crf__ds') }}
    where event_date_flag is null and coalesce(category, '') <> 'DEATH' and coalesce(decoded_term, '') <> 'DEATH'
),

eligible as (
    select
        a.subject_id,
        a.alive_date,
        a.source_domain,
        row_number() over (
            partition by a.subject_id order by a.alive_date desc, a.source_domain
        ) as recency
    from alive_dates as a
    inner join subjects as s
        on a.subject_id = s.subject_id
    where a.alive_date is not null
        and {{ within_cutoff('a.alive_date', keep_null=false) }}
        and (s.death_date is null or a.alive_date <= s.death_date)
)

select
    s.subject_id,
    e.alive_date as last_known_alive_date,
    e.source_domain as last_known_alive_source
from subjects as s
left join eligible as e
    on s.subject_id = e.subject_id
    and e.recency = 1
