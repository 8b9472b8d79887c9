-- Demographics without direct identifiers: MRN, PATNAME, INITIALS and BRTHDTC are not selected here (the birth
-- date is read only by the ephemeral stg_crf__dm_birth_dates, which is never written to the warehouse).
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
    'informed_consent_dtc', 'informed_consent_date', 'informed_consent_date_flag']) }}
