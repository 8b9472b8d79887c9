-- One row per exposure record (patient x drug x dosing record) with study days and record order; the base
-- of treatment start/end dates and of the exposure mart.
with exposure as (
    select * from {{ ref('stg_crf__ex') }}
    where {{ within_cutoff('start_date') }}
),

subjects as (
    select subject_id, randomisation_date from {{ ref('int_subjects') }}
)

select
    e.subject_id,
    e.visit,
    e.drug,
    e.start_dtc,
    e.start_date,
    e.start_date_flag,
    e.end_dtc,
    -- a record still running at the data cut-off is ongoing at it (end date unknown as of the cut-off)
    case when {{ within_cutoff('e.end_date') }} then e.end_date end as end_date,
    case when {{ within_cutoff('e.end_date') }} then e.end_date_flag end as end_date_flag,
    e.dose,
    e.dose_unit,
    e.dose_frequency,
    e.adjustment_reason,
    e.capsules_taken,
    {{ study_day('e.start_date', 's.randomisation_date') }} as start_study_day,
    case when {{ within_cutoff('e.end_date') }} then {{ study_day('e.end_date', 's.randomisation_date') }} end
        as end_study_day,
    -- A record gives drug when a positive dose was prescribed (or capsules were taken).
    case when coalesce(e.dose, 0) > 0 or coalesce(e.capsules_taken, 0) > 0 then true else false end as is_dosing,
    case
        when e.end_date is null and e.end_dtc is null then true
        when not {{ within_cutoff('e.end_date') }} then true
        else false
    end as is_ongoing,
    row_number() over (
        partition by e.subject_id, e.drug order by e.start_date, e.end_date, e._source_file, e._row_number
    ) as drug_record_number,
    {{ guttrial.try_cast(guttrial.regexp_extract('e.visit', '^CYCLE ([0-9]+)', 1), dbt.type_int()) }} as cycle_number,
    e._source_file,
    e._row_number
from exposure as e
inner join subjects as s
    on e.subject_id = s.subject_id
