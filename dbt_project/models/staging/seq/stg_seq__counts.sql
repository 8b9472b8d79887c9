-- 16S feature counts (long, non-zero only), current file versions, exact duplicates removed.
with source as (
    {{ current_rows(source('raw', 'seq_counts')) }}
),

cleaned as (
    select
        trim(batch_id) as batch_id,
        trim(sample_id) as sample_id,
        trim(feature_id) as feature_id,
        cast({{ q('count') }} as {{ dbt.type_bigint() }}) as read_count,
        _source_file, _row_number, _file_sha256, _load_id
    from source
)

{{ deduplicate('cleaned', ['batch_id', 'sample_id', 'feature_id', 'read_count']) }}
