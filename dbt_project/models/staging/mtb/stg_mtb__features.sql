-- Metabolomics feature annotation: m/z, retention time (min), name, formula, KEGG and HMDB ids.
with source as (
    {{ current_rows(source('raw', 'mtb_features')) }}
),

cleaned as (
    select
        trim(batch_id) as batch_id,
        trim(feature_id) as feature_id,
        {{ clean_code('ion_mode') }} as ion_mode,
        {{ to_number('mz') }} as mz,
        {{ to_number('rt_min') }} as rt_min,
        {{ clean_text('name') }} as metabolite_name,
        {{ clean_text('formula') }} as formula,
        {{ clean_code('kegg_id') }} as kegg_id,
        {{ clean_code('hmdb_id') }} as hmdb_id,
        {{ clean_text('compound_class') }} as compound_class,
        {{ clean_text('evidence') }} as evidence,
        _source_file, _row_number, _file_sha256, _load_id
    from source
)

{{ deduplicate('cleaned', ['batch_id', 'feature_id', 'ion_mode', 'mz', 'rt_min', 'metabolite_name', 'formula',
    'kegg_id', 'hmdb_id', 'compound_class', 'evidence']) }}
