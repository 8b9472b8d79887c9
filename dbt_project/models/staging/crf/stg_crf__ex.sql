-- Exposure records: one per patient per drug per dosing record. Start dates impute a missing day to the 1st,
-- end dates to the last day of the month.
with source as (
    {{ current_rows(source('raw', 'crf_ex')) }}
),

parsed as (
    select
        {{ subject_key('studyid', 'subjid') }} as subject_id,
        {{ clean_code('visit') }} as visit,
        {{ clean_code('extrt') }} as drug,
        {{ dtc_parts('exstdtc', 'start') }},
        {{ dtc_parts('exendtc', 'end') }},
        {{ to_number('exdose') }} as dose,
        lower({{ clean_text('exdosu') }}) as dose_unit,
        {{ clean_code('exdosfrq') }} as dose_frequency,
        {{ clean_code('exadj') }} as adjustment_reason,
        {{ to_integer('excaptkn') }} as capsules_taken,
        _source_file, _row_number, _file_sha256, _load_id
    from source
),

cleaned as (
    select
        *,
        {{ dtc_date('start', 'first') }},
        {{ dtc_date('end', 'last') }}
    from parsed
)

{{ deduplicate('cleaned', ['subject_id', 'visit', 'drug', 'start_dtc', 'start_date', 'start_date_flag', 'end_dtc',
    'end_date', 'end_date_flag', 'dose', 'dose_unit', 'dose_frequency', 'adjustment_reason', 'capsules_taken']) }}
