-- Local lab results as reported, plus the value and reference range in the one standard unit of each test
-- (seed lab_unit_conversions; the factor used is recorded). A leading comparator (<, >, <=, >=) is split off.
with source as (
    {{ current_rows(source('raw', 'crf_lb')) }}
),

parsed as (
    select
        {{ subject_key('studyid', 'subjid') }} as subject_id,
        {{ clean_code('visit') }} as visit,
        {{ dtc_parts('lbdtc', 'collection') }},
        {{ clean_code('lbtestcd') }} as test_code,
        {{ clean_text('lborres') }} as result_text,
        {{ guttrial.regexp_extract(clean_text('lborres'), '^([<>]=?)', 1) }} as result_comparator,
        {{ guttrial.try_cast("replace(" ~ guttrial.regexp_replace_all(clean_text('lborres'), '^[<>]=?\\s*', '') ~ ", ',', '.')", guttrial.type_double()) }} as reported_value,
        {{ clean_text('lborresu') }} as reported_unit,
        {{ lab_unit_key('lborresu') }} as unit_key,
        {{ to_number('lbornrlo') }} as reported_lower_limit,
        {{ to_number('lbornrhi') }} as reported_upper_limit,
        _source_file, _row_number, _file_sha256, _load_id
    from source
),

cleaned as (
    select
        *,
        {{ dtc_date('collection', 'first') }}
    from parsed
),

deduplicated as (
    {{ deduplicate('cleaned', ['subject_id', 'visit', 'collection_dtc', 'collection_date', 'collection_date_flag',
        'test_code', 'result_text', 'result_comparator', 'reported_value', 'reported_unit', 'unit_key',
        'reported_lower_limit', 'reported_upper_limit']) }}
),

conversions as (
    select * from {{ ref('lab_unit_conversions') }}
)

select
    d.subject_id,
    d.visit,
    d.collection_dtc,
    d.collection_date,
    d.collection_date_flag,
    d.test_code,
    d.result_text,
    d.result_comparator,
    d.reported_value,
    d.reported_unit,
    d.unit_key,
    d.reported_lower_limit,
    d.reported_upper_limit,
    c.factor as conversion_factor,
    c.standard_unit,
    -- rounded to 6 decimals: removes binary floating-point noise of the multiplication (1.2 x 17.1), far below
    -- any reported precision
    round(d.reported_value * c.factor, 6) as standard_value,
    round(d.reported_lower_limit * c.factor, 6) as standard_lower_limit,
    round(d.reported_upper_limit * c.factor, 6) as standard_upper_limit,
    d._source_file,
    d._row_number,
    d._file_sha256,
    d._load_id,
    d._duplicate_count
from deduplicated as d
left join conversions as c
    on d.test_code = c.test_code
    and d.unit_key = c.unit_key
