-- Feature taxonomy strings as delivered (from the feature table or a taxonomy file), one row per feature per
-- source; parsed into ranks in int_seq__taxonomy.
with source as (
    {{ current_rows(source('raw', 'seq_features')) }}
),

cleaned as (
    select
        trim(batch_id) as batch_id,
        trim(feature_id) as feature_id,
        {{ clean_text('taxonomy') }} as taxonomy,
        lower(trim(taxonomy_source)) as taxonomy_source,
        _source_file, _row_number, _file_sha256, _load_id
    from source
)

{{ deduplicate('cleaned', ['batch_id', 'feature_id', 'taxonomy', 'taxonomy_source']) }}
