-- One row per adverse event with analysis dates and the treatment-emergent flag (clinical-endpoints.md §5.1):
--   not treated -> NULL; AE ended before the first dose -> 'N'; start unknown -> 'Y' (conservative);
--   first dose <= start <= last dose + var('teae_window_days') (30) -> 'Y'; otherwise 'N'.
-- Analysis start date: a start imputed to the 1st of the month of the first dose is moved up to the first
-- dose date (admiral `min_dates = TRTSDT`), so imputation never makes an on-treatment AE pre-treatment.
with events as (
    select
        subject_id, ae_spid, reported_term, ctcae_term, system_organ_class, start_dtc, start_date, start_date_flag,
        end_dtc,
        -- an AE still running at the data cut-off is ongoing at it
        case when {{ within_cutoff('end_date') }} then end_date end as end_date,
        case when {{ within_cutoff('end_date') }} then end_date_flag end as end_date_flag,
        ctcae_grade, serious, relationship_lenvatinib, relationship_pd1, relationship_capsules, action_lenvatinib,
        action_pd1, outcome, immune_related, _source_file, _row_number
    from {{ ref('stg_crf__ae') }}
    where {{ within_cutoff('start_date') }}
),

subjects as (
    select s.subject_id, s.randomisation_date, t.first_dose_date, t.last_dose_date
    from {{ ref('int_subjects') }} as s
    left join {{ ref('int_subjects__treatment') }} as t
        on s.subject_id = t.subject_id
),

dated as (
    select
        e.*,
        s.randomisation_date,
        s.first_dose_date,
        s.last_dose_date,
        case
            when e.start_date_flag = 'D'
                and s.first_dose_date is not null
                and e.start_date < s.first_dose_date
                and {{ dbt.date_trunc('month', 'e.start_date') }} = {{ dbt.date_trunc('month', 's.first_dose_date') }}
                then s.first_dose_date
            else e.start_date
        end as analysis_start_date
    from events as e
    inner join subjects as s
        on e.subject_id = s.subject_id
)

select
    subject_id,
    ae_spid,
    reported_term,
    ctcae_term,
    system_organ_class,
    start_dtc,
    start_date,
    start_date_flag,
    analysis_start_date,
    end_dtc,
    end_date,
    end_date_flag,
    {{ study_day('analysis_start_date', 'randomisation_date') }} as start_study_day,
    {{ study_day('end_date', 'randomisation_date') }} as end_study_day,
    ctcae_grade,
    serious,
    relationship_lenvatinib,
    relationship_pd1,
    relationship_capsules,
    action_lenvatinib,
    action_pd1,
    outcome,
    immune_related,
    first_dose_date,
    last_dose_date,
    {{ teae_flag('analysis_start_date', 'start_dtc', 'end_date', 'first_dose_date', 'last_dose_date') }} as treatment_emergent_fl,
    _source_file,
    _row_number
from dated
