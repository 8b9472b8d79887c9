-- Study-drug exposure: one row per patient per drug per dosing record, with the protocol dose, dose intensity,
-- capsule compliance per course and the lenvatinib weight-band deviation flag.
with records as (
    select * from {{ ref('int_exposure__records') }}
),

weight as (
    select subject_id, weight_band, planned_lenvatinib_dose_mg from {{ ref('int_subjects__weight_band') }}
),

planned as (
    select
        r.*,
        w.weight_band,
        case r.drug
            when 'LENVATINIB' then cast(w.planned_lenvatinib_dose_mg as {{ guttrial.type_double() }})
            when 'PD-1 ANTIBODY' then {{ var('pd1_planned_dose_mg') }}
            when 'STUDY CAPSULES' then {{ var('capsules_per_day') }}
        end as planned_dose,
        case when r.drug = 'STUDY CAPSULES' then r.drug_record_number end as capsule_course_number
    from records as r
    left join weight as w
        on r.subject_id = w.subject_id
)

select
    subject_id,
    drug,
    visit,
    cast(cycle_number as {{ dbt.type_int() }}) as cycle_number,
    cast(drug_record_number as {{ dbt.type_int() }}) as drug_record_number,
    start_date,
    start_date_flag,
    end_date,
    end_date_flag,
    cast(start_study_day as {{ dbt.type_int() }}) as start_study_day,
    cast(end_study_day as {{ dbt.type_int() }}) as end_study_day,
    cast(case when end_date is not null then {{ dbt.datediff('start_date', 'end_date', 'day') }} + 1 end
        as {{ dbt.type_int() }}) as duration_days,
    case when is_ongoing then 'Y' else 'N' end as ongoing_fl,
    dose,
    dose_unit,
    dose_frequency,
    adjustment_reason,
    planned_dose,
    case when planned_dose > 0 then dose / planned_dose end as dose_intensity,
    weight_band,
    cast(capsule_course_number as {{ dbt.type_int() }}) as capsule_course_number,
    cast(capsules_taken as {{ dbt.type_int() }}) as capsules_taken,
    cast(case when drug = 'STUDY CAPSULES' then {{ var('capsules_per_course') }} end as {{ dbt.type_int() }})
        as capsules_planned,
    case when drug = 'STUDY CAPSULES' then capsules_taken / {{ var('capsules_per_course') }}.0 end
        as capsule_compliance,
    case
        when drug <> 'LENVATINIB' then null
        when planned_dose is null or dose is null then null
        when (drug_record_number = 1 and dose <> planned_dose) or dose > planned_dose then 'Y'
        else 'N'
    end as dose_band_deviation_fl,
    _source_file as source_file,
    cast(_row_number as {{ dbt.type_int() }}) as source_row
from planned
