-- Adverse events (CTCAE 5.0): one row per adverse event, with the treatment-emergent flag and study day.
select
    subject_id,
    ae_spid,
    cast(row_number() over (
        partition by subject_id order by analysis_start_date, ae_spid, _source_file, _row_number
    ) as {{ dbt.type_int() }}) as ae_sequence,
    reported_term,
    ctcae_term,
    system_organ_class,
    start_date,
    start_date_flag,
    analysis_start_date,
    end_date,
    end_date_flag,
    cast(start_study_day as {{ dbt.type_int() }}) as start_study_day,
    cast(end_study_day as {{ dbt.type_int() }}) as end_study_day,
    cast(ctcae_grade as {{ dbt.type_int() }}) as ctcae_grade,
    serious as serious_fl,
    relationship_lenvatinib,
    relationship_pd1,
    relationship_capsules,
    {{ related_flag('relationship_lenvatinib') }} as related_lenvatinib_fl,
    {{ related_flag('relationship_pd1') }} as related_pd1_fl,
    {{ related_flag('relationship_capsules') }} as related_capsules_fl,
    action_lenvatinib,
    action_pd1,
    outcome,
    immune_related as immune_related_fl,
    treatment_emergent_fl,
    _source_file as source_file,
    cast(_row_number as {{ dbt.type_int() }}) as source_row
from {{ ref('int_adverse_events') }}
