-- Adverse events (CTCAE 5.0). Start dates impute a missing day to the 1st, end dates to the last day of the
-- month; a missing month is not imputed.
with source as (
    {{ current_rows(source('raw', 'crf_ae')) }}
),

parsed as (
    select
        {{ subject_key('studyid', 'subjid') }} as subject_id,
        {{ clean_code('aespid') }} as ae_spid,
        {{ clean_text('aeterm') }} as reported_term,
        {{ clean_text('aedecod') }} as ctcae_term,
        {{ clean_text('aebodsys') }} as system_organ_class,
        {{ dtc_parts('aestdtc', 'start') }},
        {{ dtc_parts('aeendtc', 'end') }},
        {{ to_integer('aetoxgr') }} as ctcae_grade,
        {{ to_yn('aeser') }} as serious,
        {{ clean_code('aerellen') }} as relationship_lenvatinib,
        {{ clean_code('aerelpd1') }} as relationship_pd1,
        {{ clean_code('aerelcap') }} as relationship_capsules,
        {{ clean_code('aeacnlen') }} as action_lenvatinib,
        {{ clean_code('aeacnpd1') }} as action_pd1,
        {{ clean_code('aeout') }} as outcome,
        {{ to_yn('aeirae') }} as immune_related,
        _source_file, _row_number, _file_sha256, _load_id
    from source
),

cleaned as (
    select
        *,
        {{ dtc_date('start', 'first') }},
        {{ dtc_date('end', 'last') }}
    from parsed
)

{{ deduplicate('cleaned', ['subject_id', 'ae_spid', 'reported_term', 'ctcae_term', 'system_organ_class', 'start_dtc',
    'start_date', 'start_date_flag', 'end_dtc', 'end_date', 'end_date_flag', 'ctcae_grade', 'serious',
    'relationship_lenvatinib', 'relationship_pd1', 'relationship_capsules', 'action_lenvatinib', 'action_pd1',
    'outcome', 'immune_related']) }}
