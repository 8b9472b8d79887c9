{{ config(materialized='ephemeral') }}
-- Birth dates for the age derivation only. EPHEMERAL on purpose: this model is compiled into int_subjects as a
-- CTE and is never written to the warehouse, so no staging/intermediate/mart relation holds a date of birth.
-- Partial birth dates use the usual "mid" imputation for ages (error < 6 months), recorded in the flag:
-- day missing -> 15th of the month ('D'); month missing, year known -> 1 July ('M'); year missing -> NULL.
with source as (
    {{ current_rows(source('raw', 'crf_dm')) }}
),

parts as (
    select
        {{ subject_key('studyid', 'subjid') }} as subject_id,
        {{ dtc_year('brthdtc') }} as birth_year,
        {{ dtc_month('brthdtc') }} as birth_month,
        {{ dtc_day('brthdtc') }} as birth_day,
        {{ dtc_to_date('brthdtc', 'first') }} as complete_or_month_date,
        {{ dtc_flag('brthdtc') }} as birth_date_flag,
        _source_file,
        _row_number
    from source
),

imputed as (
    select
        subject_id,
        case
            when birth_date_flag is null then complete_or_month_date
            when birth_date_flag = 'D' then {{ guttrial.make_date('birth_year', 'birth_month', 15) }}
            when birth_date_flag = 'M' and birth_year between 1800 and 2200
                then {{ guttrial.make_date('birth_year', 7, 1) }}
        end as birth_date,
        birth_date_flag,
        row_number() over (partition by subject_id order by _source_file, _row_number) as record_rank
    from parts
)

select subject_id, birth_date, birth_date_flag
from imputed
where record_rank = 1
