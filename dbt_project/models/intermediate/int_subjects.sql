-- One row per randomised patient: randomisation, demographics and age at randomisation. The birth date comes
-- from the ephemeral stg_crf__dm_birth_dates and is not kept: only the age in completed years leaves here.
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
        row_number() over (partition by subject_id order by _source_file, _row_number) as record_rank
    from {{ ref('stg_crf__dm') }}
),

birth_dates as (
    select subject_id, birth_date, birth_date_flag from {{ ref('stg_crf__dm_birth_dates') }}
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
    cast({{ age_in_years('b.birth_date', 'r.randomisation_date') }} as {{ dbt.type_int() }}) as age_years,
    b.birth_date_flag as age_imputation_flag
from randomisations as r
left join demographics as d
    on r.subject_id = d.subject_id
    and d.record_rank = 1
left join birth_dates as b
    on r.subject_id = b.subject_id
where r.record_rank = 1
