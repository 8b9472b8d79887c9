-- EORTC QLQ-C30 item responses: one row per patient per visit per item (scales are scored downstream).
with items as (
    select *
    from {{ ref('stg_crf__qs') }}
    where {{ within_cutoff('questionnaire_date') }}
),

subjects as (
    select s.subject_id, s.randomisation_date, w.baseline_reference_date
    from {{ ref('int_subjects') }} as s
    inner join {{ ref('int_subjects__weight_band') }} as w
        on s.subject_id = w.subject_id
),

visits as (
    select
        i.subject_id,
        i.visit,
        i.questionnaire_date,
        row_number() over (
            partition by i.subject_id,
                case when i.questionnaire_date <= s.baseline_reference_date then 1 else 0 end
            order by i.questionnaire_date desc, i.visit
        ) as pre_rank,
        case when i.questionnaire_date <= s.baseline_reference_date then 1 else 0 end as is_pre
    from (select distinct subject_id, visit, questionnaire_date from items) as i
    inner join subjects as s
        on i.subject_id = s.subject_id
)

select
    i.subject_id,
    i.visit,
    i.questionnaire_date,
    i.questionnaire_date_flag,
    cast({{ study_day('i.questionnaire_date', 's.randomisation_date') }} as {{ dbt.type_int() }}) as study_day,
    case when v.is_pre = 1 and v.pre_rank = 1 then 'Y' else 'N' end as baseline_fl,
    i.item_code,
    cast(i.item_number as {{ dbt.type_int() }}) as item_number,
    cast(i.response as {{ dbt.type_int() }}) as response,
    i._source_file as source_file,
    cast(i._row_number as {{ dbt.type_int() }}) as source_row
from items as i
inner join subjects as s
    on i.subject_id = s.subject_id
left join visits as v
    on i.subject_id = v.subject_id
    and i.visit = v.visit
    and i.questionnaire_date = v.questionnaire_date
