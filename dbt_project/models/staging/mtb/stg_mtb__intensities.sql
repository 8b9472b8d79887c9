-- Metabolomics intensities (long: feature x injection, observed values only).
with source as (
    {{ current_rows(source('raw', 'mtb_intensities')) }}
),

cleaned as (
    select
        trim(batch_id) as batch_id,
        trim(feature_id) as feature_id,
        upper(trim(ion_mode)) as ion_mode,
        trim(injection_id) as injection_id,
        cast(intensity as {{ guttrial.type_double() }}) as intensity,
        _source_file, _row_number, _file_sha256, _load_id
    from source
)

{{ deduplicate('cleaned', ['batch_id', 'feature_id', 'ion_mode', 'injection_id', 'intensity']) }}
