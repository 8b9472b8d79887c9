-- Tumour lesion measurements (RECIST 1.1 / mRECIST), diameters in mm.
with source as (
    {{ current_rows(source('raw', 'crf_tr')) }}
),

parsed as (
    select
        {{ subject_key('studyid', 'subjid') }} as subject_id,
        {{ clean_code('visit') }} as visit,
        {{ dtc_parts('trdtc', 'assessment') }},
        {{ clean_code('trmethod') }} as method,
        {{ clean_code('trlnkid') }} as lesion_id,
        {{ clean_code('trcat') }} as lesion_category,
        {{ clean_code('trloc') }} as location,
        {{ to_yn('trnode') }} as is_nodal,
        {{ clean_code('traxis') }} as axis,
        {{ to_number('trdiam') }} as diameter_mm,
        {{ to_number('trviabdiam') }} as viable_diameter_mm,
        {{ clean_code('trntstat') }} as lesion_status,
        _source_file, _row_number, _file_sha256, _load_id
    from source
),

cleaned as (
    select
        *,
        {{ dtc_date('assessment', 'first') }}
    from parsed
)

{{ deduplicate('cleaned', ['subject_id', 'visit', 'assessment_dtc', 'assessment_date', 'assessment_date_flag', 'method',
    'lesion_id', 'lesion_category', 'location', 'is_nodal', 'axis', 'diameter_mm', 'viable_diameter_mm',
    'lesion_status']) }}
