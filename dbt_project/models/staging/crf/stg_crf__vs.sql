-- Vital signs (weight, height); result converted to kg / cm (lb and in are converted, other units left NULL).
with source as (
    {{ current_rows(source('raw', 'crf_vs')) }}
),

parsed as (
    select
        {{ subject_key('studyid', 'subjid') }} as subject_id,
        {{ clean_code('visit') }} as visit,
        {{ dtc_parts('vsdtc', 'measurement') }},
        {{ clean_code('vstestcd') }} as test_code,
        {{ clean_text('vsorres') }} as result_text,
        {{ to_number('vsorres') }} as result_value,
        lower({{ clean_text('vsorresu') }}) as result_unit,
        _source_file, _row_number, _file_sha256, _load_id
    from source
),

cleaned as (
    select
        *,
        {{ dtc_date('measurement', 'first') }}
    from parsed
),

standardised as (
    select
        *,
        case
            when test_code = 'WEIGHT' and result_unit in ('kg', 'kgs') then result_value
            when test_code = 'WEIGHT' and result_unit in ('lb', 'lbs') then result_value * 0.45359237
            when test_code = 'HEIGHT' and result_unit = 'cm' then result_value
            when test_code = 'HEIGHT' and result_unit = 'm' then result_value * 100
            when test_code = 'HEIGHT' and result_unit = 'in' then result_value * 2.54
        end as standard_value,
        case test_code when 'WEIGHT' then 'kg' when 'HEIGHT' then 'cm' end as standard_unit
    from cleaned
)

{{ deduplicate('standardised', ['subject_id', 'visit', 'measurement_dtc', 'measurement_date', 'measurement_date_flag',
    'test_code', 'result_text', 'result_value', 'result_unit', 'standard_value', 'standard_unit']) }}
