-- Sequencing libraries: one row per sequencing sample per feature table (library size, number of features).
with source as (
    {{ current_rows(source('raw', 'seq_samples')) }}
),

cleaned as (
    select
        trim(batch_id) as batch_id,
        trim(sample_id) as sample_id,
        cast(library_size as {{ dbt.type_bigint() }}) as library_size,
        cast(n_features as {{ dbt.type_bigint() }}) as n_features,
        lower(trim(table_format)) as table_format,
        {{ clean_text('label') }} as label,
        _source_file, _row_number, _file_sha256, _load_id
    from source
)

{{ deduplicate('cleaned', ['batch_id', 'sample_id', 'library_size', 'n_features', 'table_format', 'label']) }}
