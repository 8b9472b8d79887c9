-- Baseline disease characteristics (BCLC, aetiology, ECOG, ascites, encephalopathy).
with source as (
    {{ current_rows(source('raw', 'crf_bl')) }}
),

parsed as (
    select
        {{ subject_key('studyid', 'subjid') }} as subject_id,
        {{ clean_code('siteid') }} as site_id,
        {{ clean_code('visit') }} as visit,
        {{ dtc_parts('diagdtc', 'diagnosis') }},
        {{ clean_code('bclc') }} as bclc_stage,
        {{ clean_code('aetiol') }} as aetiology,
        {{ to_integer('ecog') }} as ecog,
        {{ clean_code('ascites') }} as ascites,
        {{ clean_code('enceph') }} as encephalopathy,
        {{ to_yn('mvi') }} as macrovascular_invasion,
        {{ to_yn('ehs') }} as extrahepatic_spread,
        _source_file, _row_number, _file_sha256, _load_id
    from source
),

cleaned as (
    select
        *,
        {{ dtc_date('diagnosis', 'first') }}
    from parsed
)

{{ deduplicate('cleaned', ['subject_id', 'site_id', 'visit', 'diagnosis_dtc', 'diagnosis_date', 'diagnosis_date_flag',
    'bclc_stage', 'aetiology', 'ecog', 'ascites', 'encephalopathy', 'macrovascular_invasion', 'extrahepatic_spread']) }}
