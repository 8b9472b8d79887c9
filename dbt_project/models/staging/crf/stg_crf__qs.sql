-- EORTC QLQ-C30 item responses (1-4, items 29-30 1-7), one row per patient per visit per item.
with source as (
    {{ current_rows(source('raw', 'crf_qs')) }}
),

parsed as (
    select
        {{ subject_key('studyid', 'subjid') }} as subject_id,
        {{ clean_code('visit') }} as visit,
        {{ dtc_parts('qsdtc', 'questionnaire') }},
        {{ clean_code('qstestcd') }} as item_code,
        {{ guttrial.try_cast(guttrial.regexp_extract(clean_code('qstestcd'), '^QLQ([0-9]+)$', 1), dbt.type_int()) }} as item_number,
        {{ clean_text('qsorres') }} as response_text,
        {{ to_integer('qsorres') }} as response,
        _source_file, _row_number, _file_sha256, _load_id
    from source
),

cleaned as (
    select
        *,
        {{ dtc_date('questionnaire', 'first') }}
    from parsed
)

{{ deduplicate('cleaned', ['subject_id', 'visit', 'questionnaire_dtc', 'questionnaire_date', 'questionnaire_date_flag',
    'item_code', 'item_number', 'response_text', 'response']) }}
