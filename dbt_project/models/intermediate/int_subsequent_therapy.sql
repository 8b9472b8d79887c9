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
    case when t.start_date >= s.randomisation_date then 'Y' else 'N' end as after_randomisation_fl,
    t._source_file,
    t._row_number
from therapies as t
inner join subjects as s
    on t.subject_id = s.subject_id
