-- Subsequent (new) anti-cancer therapies with study day, within the data cut-off; the source of NACTDT
-- (adsl.nact_date). One row per therapy.
with therapies as (
    select *
    from {{ ref('stg_crf__cm') }}
    where {{ within_cutoff('start_date') }}
),

subjects as (
    select subject_id, randomisation_date from {{ ref('int_subjects') }}
)

select
    t.subject_id,
    t.therapy,
    t.therapy_category,
    t.start_date,
    t.start_date_flag,
    {{ study_day('t.start_date', 's.randomisation_date') }} as start_study_day,
    -- A start date delivered with only its year (flag M) is still certainly after randomisation when the year is
    -- later, and certainly before when it is earlier; only a year-only date in the randomisation year (or no date
    -- at all) is undetermined, and is not counted as NACT (QA sees it in the marts.subsequent_therapy warning).
    case
        when t.start_date is not null then case when t.start_date >= s.randomisation_date then 'Y' else 'N' end
        when {{ dtc_year('t.start_dtc') }} > year(s.randomisation_date) then 'Y'
        else 'N'
    end as after_randomisation_fl,
    -- The date PFS is censored at for this therapy: the date as delivered, or for a year-only date the first day
    -- of that year (the earliest date the therapy can have started, so no progression after it is credited).
    case
        when t.start_date is not null then case when t.start_date >= s.randomisation_date then t.start_date end
        when {{ dtc_year('t.start_dtc') }} > year(s.randomisation_date)
            then make_date({{ dtc_year('t.start_dtc') }}, 1, 1)
    end as nact_start_date,
    t._source_file,
    t._row_number
from therapies as t
inner join subjects as s
    on t.subject_id = s.subject_id
