-- One row per lab result (patient x test x draw) in standard units, with study day, reference range (as
-- reported, else the default of seed lab_tests), baseline flag and value (last non-missing value on or before
-- the first dose, or randomisation when never dosed), change from baseline and CTCAE 5.0 grade.
with labs as (
    select l.*
    from {{ ref('stg_crf__lb') }} as l
    where {{ within_cutoff('l.collection_date') }}
),

subjects as (
    select s.subject_id, s.randomisation_date, w.baseline_reference_date
    from {{ ref('int_subjects') }} as s
    inner join {{ ref('int_subjects__weight_band') }} as w
        on s.subject_id = w.subject_id
),

tests as (
    select * from {{ ref('lab_tests') }}
),

enriched as (
    select
        l.subject_id,
        l.visit,
        l.collection_dtc,
        l.collection_date,
        l.collection_date_flag,
        l.test_code,
        t.test_name,
        l.result_text,
        l.result_comparator,
        l.reported_value,
        l.reported_unit,
        l.conversion_factor,
        coalesce(l.standard_unit, t.standard_unit) as standard_unit,
        l.standard_value,
        coalesce(l.standard_lower_limit, t.default_lower_limit) as lower_limit,
        coalesce(l.standard_upper_limit, t.default_upper_limit) as upper_limit,
        case when l.standard_lower_limit is null and l.standard_upper_limit is null then 'DEFAULT' else 'REPORTED' end
            as reference_range_source,
        {{ study_day('l.collection_date', 's.randomisation_date') }} as study_day,
        s.baseline_reference_date,
        case
            when l.standard_value is not null and l.collection_date <= s.baseline_reference_date
                then row_number() over (
                    partition by l.subject_id, l.test_code,
                        case when l.standard_value is not null and l.collection_date <= s.baseline_reference_date
                            then 1 else 0 end
                    order by l.collection_date desc, l._source_file desc, l._row_number desc
                )
        end as baseline_candidate_rank,
        l._source_file,
        l._row_number
    from labs as l
    inner join subjects as s
        on l.subject_id = s.subject_id
    left join tests as t
        on l.test_code = t.test_code
),

flagged as (
    select
        *,
        case when baseline_candidate_rank = 1 then 'Y' else 'N' end as baseline_fl
    from enriched
),

baselines as (
    select
        subject_id,
        test_code,
        standard_value as baseline_value,
        collection_date as baseline_date,
        upper_limit as baseline_upper_limit
    from flagged
    where baseline_fl = 'Y'
)

select
    f.subject_id,
    f.visit,
    f.collection_dtc,
    f.collection_date,
    f.collection_date_flag,
    f.study_day,
    f.test_code,
    f.test_name,
    f.result_text,
    f.result_comparator,
    f.reported_value,
    f.reported_unit,
    f.conversion_factor,
    f.standard_value,
    f.standard_unit,
    f.lower_limit,
    f.upper_limit,
    f.reference_range_source,
    f.baseline_fl,
    b.baseline_value,
    case
        when f.baseline_fl = 'N' and f.collection_date > b.baseline_date
            then f.standard_value - b.baseline_value
    end as change_from_baseline,
    cast({{ ctcae_lab_grade(
        'f.test_code', 'f.standard_value', 'f.upper_limit', 'f.lower_limit', 'b.baseline_value',
        '(b.baseline_value > b.baseline_upper_limit)', "(f.baseline_fl = 'Y')"
    ) }} as {{ dbt.type_int() }}) as ctcae_grade,
    f._source_file,
    f._row_number
from flagged as f
left join baselines as b
    on f.subject_id = b.subject_id
    and f.test_code = b.test_code
