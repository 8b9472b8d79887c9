-- Randomisation record (the arm is not in the EDC export; see int_subjects__arm).
with source as (
    {{ current_rows(source('raw', 'crf_rand')) }}
),

parsed as (
    select
        {{ subject_key('studyid', 'subjid') }} as subject_id,
        {{ clean_code('studyid') }} as study_id,
        {{ clean_code('siteid') }} as site_id,
        {{ clean_code('randno') }} as randno,
        {{ dtc_parts('randdtc', 'randomisation') }},
        {{ clean_code('randstrat') }} as randomisation_stratum,
        _source_file, _row_number, _file_sha256, _load_id
    from source
),

cleaned as (
    select
        *,
        {{ dtc_date('randomisation', 'first') }}
    from parsed
)

{{ deduplicate('cleaned', ['subject_id', 'study_id', 'site_id', 'randno', 'randomisation_dtc',
    'randomisation_date', 'randomisation_date_flag', 'randomisation_stratum']) }}
