-- Biospecimen log: one row per collected specimen (barcode = BSREFID, the link to the omics cores).
with source as (
    {{ current_rows(source('raw', 'crf_bs')) }}
),

parsed as (
    select
        {{ subject_key('studyid', 'subjid') }} as subject_id,
        {{ clean_code('visit') }} as visit,
        {{ clean_code('bsrefid') }} as specimen_barcode,
        {{ clean_code('bsspec') }} as specimen_type,
        {{ dtc_parts('bsdtc', 'collection') }},
        _source_file, _row_number, _file_sha256, _load_id
    from source
),

cleaned as (
    select
        *,
        {{ dtc_date('collection', 'first') }}
    from parsed
)

{{ deduplicate('cleaned', ['subject_id', 'visit', 'specimen_barcode', 'specimen_type', 'collection_dtc',
    'collection_date', 'collection_date_flag']) }}
