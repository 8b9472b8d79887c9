-- One row per logged biospecimen with its study day and nominal visit. Visit windows: the nominal visit comes
-- from the CRF visit label (SCREENING -> BASELINE, COURSE k END -> END OF COURSE k, PROGRESSION, CYCLE k DAY 1,
-- FOLLOW-UP k); its target date is counted from the first dose (course k ends on day 21(k-1)+10 after it,
-- cycle k starts on day 21(k-1)); in_window_fl = within +/- var('sample_window_days') days of the target.
-- A specimen with an unrecognised label is BASELINE when collected on or before the first dose (or
-- randomisation when never dosed), else UNSCHEDULED.
with specimens as (
    select
        *,
        row_number() over (partition by specimen_barcode order by _source_file, _row_number) as record_rank
    from {{ ref('stg_crf__bs') }}
    where specimen_barcode is not null
        and {{ within_cutoff('collection_date') }}
),

subjects as (
    select s.subject_id, s.randomisation_date, t.first_dose_date
    from {{ ref('int_subjects') }} as s
    left join {{ ref('int_subjects__treatment') }} as t
        on s.subject_id = t.subject_id
),

labelled as (
    select
        b.specimen_barcode,
        b.subject_id,
        b.specimen_type,
        b.visit,
        b.collection_date,
        b.collection_date_flag,
        s.randomisation_date,
        s.first_dose_date,
        {{ study_day('b.collection_date', 's.randomisation_date') }} as study_day,
        {{ guttrial.try_cast(guttrial.regexp_extract('b.visit', '^COURSE ([0-9]+) END$', 1), dbt.type_int()) }} as course_number,
        {{ guttrial.try_cast(guttrial.regexp_extract('b.visit', '^CYCLE ([0-9]+) DAY 1$', 1), dbt.type_int()) }} as cycle_number,
        {{ guttrial.try_cast(guttrial.regexp_extract('b.visit', '^FOLLOW-UP ([0-9]+)$', 1), dbt.type_int()) }} as follow_up_number,
        b._source_file,
        b._row_number
    from specimens as b
    left join subjects as s
        on b.subject_id = s.subject_id
    where b.record_rank = 1
),

nominal as (
    select
        *,
        case
            when visit in ('SCREENING', 'BASELINE') then 'BASELINE'
            when course_number is not null then 'END OF COURSE ' || cast(course_number as {{ dbt.type_string() }})
            when cycle_number is not null then 'CYCLE ' || cast(cycle_number as {{ dbt.type_string() }}) || ' DAY 1'
            when follow_up_number is not null then 'FOLLOW-UP ' || cast(follow_up_number as {{ dbt.type_string() }})
            when visit = 'PROGRESSION' then 'PROGRESSION'
            when collection_date <= coalesce(first_dose_date, randomisation_date) then 'BASELINE'
            else 'UNSCHEDULED'
        end as nominal_visit,
        case
            when course_number is not null
                then {{ dbt.dateadd('day', '21 * (course_number - 1) + 10', 'first_dose_date') }}
            when cycle_number is not null
                then {{ dbt.dateadd('day', '21 * (cycle_number - 1)', 'first_dose_date') }}
        end as target_timestamp
    from labelled
)

select
    specimen_barcode,
    subject_id,
    specimen_type,
    visit,
    nominal_visit,
    case
        when nominal_visit = 'BASELINE' then 0
        when course_number is not null then course_number
        when cycle_number is not null then cycle_number
        when follow_up_number is not null then 10 + follow_up_number
        when nominal_visit = 'PROGRESSION' then 90
        else 99
    end as nominal_visit_order,
    collection_date,
    collection_date_flag,
    study_day,
    cast(target_timestamp as date) as target_date,
    case
        when target_timestamp is not null and collection_date is not null
            then {{ dbt.datediff('cast(target_timestamp as date)', 'collection_date', 'day') }}
    end as days_from_target,
    case
        when nominal_visit = 'BASELINE'
            then case when collection_date <= coalesce(first_dose_date, randomisation_date) then 'Y' else 'N' end
        when target_timestamp is null or collection_date is null then null
        when abs({{ dbt.datediff('cast(target_timestamp as date)', 'collection_date', 'day') }})
            <= {{ var('sample_window_days') }} then 'Y'
        else 'N'
    end as in_window_fl,
    _source_file,
    _row_number
from nominal
