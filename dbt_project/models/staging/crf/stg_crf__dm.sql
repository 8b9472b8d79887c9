-- Demographics without direct identifiers. The loader never stores MRN, PATNAME, INITIALS or BRTHDTC (their raw
-- columns are always NULL, and none is selected here): it replaces the birth date by the age at informed consent
-- in completed years (AGE_AT_CONSENT) and the birth date's imputation flag (AGE_IMPUTATION_FLAG),
-- analysis/ingest/deidentify.py.
with source as (
    {{ current_rows(source('raw', 'crf_dm')) }}
),

parsed as (
    select
        {{ subject_key('studyid', 'subjid') }} as subject_id,
        {{ clean_code('studyid') }} as study_id,
        {{ clean_code('siteid') }} as site_id,
        {{ clean_code('subjid') }} as subjid,
        {{ clean_code('sex') }} as sex,
        {{ clean_code('ethnic') }} as ethnic,
        {{ dtc_parts('rficdtc', 'informed_consent') }},
        cast(age_at_consent as {{ dbt.type_int() }}) as age_at_consent,
        {{ clean_code('age_imputation_flag') }} as age_imputation_flag,
        _source_file, _row_number, _file_sha256, _load_id
    from source
),

cleaned as (
    select
        *,
        {{ dtc_date('informed_consent', 'first') }}
    from parsed
)

{{ deduplicate('cleaned', ['subject_id', 'study_id', 'site_id', 'subjid', 'sex', 'ethnic',
    'informed_consent_dtc', 'informed_consent_date', 'informed_consent_date_flag', 'age_at_consent',
    'age_imputation_flag']) }}
