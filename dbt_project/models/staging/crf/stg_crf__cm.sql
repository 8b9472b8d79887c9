-- Subsequent anti-cancer therapy.
with source as (
    {{ current_rows(source('raw', 'crf_cm')) }}
),

parsed as (
    select
        {{ subject_key('studyid', 'subjid') }} as subject_id,
        {{ clean_code('cmtrt') }} as therapy,
        {{ clean_code('cmcat') }} as therapy_category,
        {{ dtc_parts('cmstdtc', 'start') }},
        _source_file, _row_number, _file_sha256, _load_id
    from source
),

cleaned as (
    select
        *,
        {{ dtc_date('start', 'first') }}
    from parsed
)

{{ deduplicate('cleaned', ['subject_id', 'therapy', 'therapy_category', 'start_dtc', 'start_date', 'start_date_flag']) }}
