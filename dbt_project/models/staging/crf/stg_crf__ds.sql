-- Disposition events: end of treatment, end of study, death, last contact.
with source as (
    {{ current_rows(source('raw', 'crf_ds')) }}
),

parsed as (
    select
        {{ subject_key('studyid', 'subjid') }} as subject_id,
        {{ clean_code('dscat') }} as category,
        {{ clean_code('dsdecod') }} as decoded_term,
        {{ clean_text('dsterm') }} as reported_term,
        {{ dtc_parts('dsstdtc', 'event') }},
        _source_file, _row_number, _file_sha256, _load_id
    from source
),

cleaned as (
    select
        *,
        {{ dtc_date('event', 'first') }}
    from parsed
)

{{ deduplicate('cleaned', ['subject_id', 'category', 'decoded_term', 'reported_term', 'event_dtc', 'event_date',
    'event_date_flag']) }}
