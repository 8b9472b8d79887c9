-- One row per randomised patient: randomisation, demographics and age. The age is the age at informed consent in
-- completed years (SDTM DM.AGE may be derived at informed consent, RFICDTC), computed by the raw loader: the
-- warehouse never holds a birth date (analysis/ingest/deidentify.py). Until issue 9 it was the age at
-- randomisation, derived here from the birth date; consent is 1-4 weeks before randomisation, so a patient whose
-- birthday falls in between is one year younger than before.
with randomisations as (
    select
        subject_id,
        study_id,
        site_id,
        randno,
        randomisation_date,
        randomisation_date_flag,
        randomisation_stratum,
        row_number() over (
            partition by subject_id order by randomisation_date, _source_file, _row_number
        ) as record_rank
    from {{ ref('stg_crf__rand') }}
    where subject_id is not null
        and {{ within_cutoff('randomisation_date') }}
),

demographics as (
    select
        subject_id,
        subjid,
        sex,
        ethnic,
        informed_consent_date,
        age_at_consent,
        age_imputation_flag,
        row_number() over (partition by subject_id order by _source_file, _row_number) as record_rank
    from {{ ref('stg_crf__dm') }}
)

select
    r.subject_id,
    r.study_id,
    r.site_id,
    d.subjid,
    r.randno,
    r.randomisation_date,
    r.randomisation_date_flag,
    r.randomisation_stratum,
    d.sex,
    d.ethnic,
    d.informed_consent_date,
    d.age_at_consent as age_years,
    d.age_imputation_flag
from randomisations as r
left join demographics as d
    on r.subject_id = d.subject_id
    and d.record_rank = 1
where r.record_rank = 1
