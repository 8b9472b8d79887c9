-- Subsequent anti-cancer therapies (new anti-cancer therapy, NACT): one row per therapy.
select
    subject_id,
    therapy,
    therapy_category,
    start_date,
    start_date_flag,
    cast(start_study_day as {{ dbt.type_int() }}) as start_study_day,
    after_randomisation_fl,
    _source_file as source_file,
    cast(_row_number as {{ dbt.type_int() }}) as source_row
from {{ ref('int_subsequent_therapy') }}
