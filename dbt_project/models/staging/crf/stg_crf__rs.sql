-- Investigator's response assessment as recorded. 'NA' is a real code here (not applicable: e.g. no target
-- lesions), so it is kept rather than mapped to NULL.
with source as (
    {{ current_rows(source('raw', 'crf_rs')) }}
),

parsed as (
    select
        {{ subject_key('studyid', 'subjid') }} as subject_id,
        {{ clean_code('visit') }} as visit,
        {{ dtc_parts('rsdtc', 'assessment') }},
        {{ clean_code('rstlresp', keep=['NA']) }} as target_response,
        {{ clean_code('rsntresp', keep=['NA']) }} as non_target_response,
        {{ to_yn('rsnlresp') }} as new_lesions,
        {{ clean_code('rsovrlresp') }} as overall_response,
        _source_file, _row_number, _file_sha256, _load_id
    from source
),

cleaned as (
    select
        *,
        {{ dtc_date('assessment', 'first') }}
    from parsed
)

{{ deduplicate('cleaned', ['subject_id', 'visit', 'assessment_dtc', 'assessment_date', 'assessment_date_flag',
    'target_response', 'non_target_response', 'new_lesions', 'overall_response']) }}
