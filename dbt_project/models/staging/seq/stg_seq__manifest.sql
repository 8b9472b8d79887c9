-- Sequencing manifest: sequencing sample -> specimen barcode and role (SAMPLE, NEGATIVE_CONTROL, MOCK).
with source as (
    {{ current_rows(source('raw', 'seq_manifest')) }}
),

cleaned as (
    select
        trim(batch_id) as batch_id,
        trim(sample_id) as sample_id,
        {{ clean_code('specimen_barcode') }} as specimen_barcode,
        {{ guttrial.regexp_replace_all(clean_code('sample_role'), '[ -]', '_') }} as sample_role,
        {{ clean_text('run_id') }} as run_id,
        {{ clean_text('notes') }} as notes,
        _source_file, _row_number, _file_sha256, _load_id
    from source
)

{{ deduplicate('cleaned', ['batch_id', 'sample_id', 'specimen_barcode', 'sample_role', 'run_id', 'notes']) }}
