-- Investigator's RECIST 1.1 response assessments as recorded: one row per patient per assessment.
with responses as (
    select *
    from {{ ref('stg_crf__rs') }}
    where {{ within_cutoff('assessment_date') }}
),

subjects as (
    select subject_id, randomisation_date from {{ ref('int_subjects') }}
),

sums as (
    select distinct subject_id, visit, sum_of_diameters_mm
    from {{ ref('int_tumor__measurements') }}
)

select
    r.subject_id,
    r.visit,
    r.assessment_date,
    r.assessment_date_flag,
    cast({{ study_day('r.assessment_date', 's.randomisation_date') }} as {{ dbt.type_int() }}) as study_day,
    cast({{ nominal_scan_day('r.visit') }} as {{ dbt.type_int() }}) as nominal_day,
    cast({{ dbt.datediff('s.randomisation_date', 'r.assessment_date', 'day') }} - {{ nominal_scan_day('r.visit') }}
        as {{ dbt.type_int() }}) as days_from_nominal,
    case
        when {{ nominal_scan_day('r.visit') }} is null or r.assessment_date is null then null
        when abs({{ dbt.datediff('s.randomisation_date', 'r.assessment_date', 'day') }} - {{ nominal_scan_day('r.visit') }})
            <= {{ var('tumour_window_days') }} then 'Y'
        else 'N'
    end as in_window_fl,
    cast(row_number() over (
        partition by r.subject_id order by r.assessment_date, r.visit, r._source_file, r._row_number
    ) as {{ dbt.type_int() }}) as assessment_number,
    r.target_response,
    r.non_target_response,
    r.new_lesions,
    r.overall_response,
    t.sum_of_diameters_mm,
    r._source_file as source_file,
    cast(r._row_number as {{ dbt.type_int() }}) as source_row
from responses as r
inner join subjects as s
    on r.subject_id = s.subject_id
left join sums as t
    on r.subject_id = t.subject_id
    and r.visit = t.visit
