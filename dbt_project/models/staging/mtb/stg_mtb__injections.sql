-- Metabolomics injection list: patient sample, pooled QC or blank, with matrix and run order.
with source as (
    {{ current_rows(source('raw', 'mtb_injections')) }}
),

cleaned as (
    select
        trim(batch_id) as batch_id,
        trim(injection_id) as injection_id,
        {{ clean_code('sample_type') }} as sample_type,
        {{ clean_code('specimen_barcode') }} as specimen_barcode,
        {{ clean_code('matrix') }} as matrix,
        {{ to_integer('run_order') }} as run_order,
        {{ clean_text('batch') }} as instrument_batch,
        _source_file, _row_number, _file_sha256, _load_id
    from source
)

{{ deduplicate('cleaned', ['batch_id', 'injection_id', 'sample_type', 'specimen_barcode', 'matrix', 'run_order',
    'instrument_batch']) }}
