-- Patient biospecimens: one row per logged specimen (barcode), with visit, sequencing and metabolomics status.
-- Controls, pooled QCs, blanks and unlinked omics samples are in their own marts.
with specimens as (
    select * from {{ ref('int_samples') }}
),

sequencing as (
    select
        specimen_barcode,
        count(*) as sequencing_libraries,
        max(library_size) as sequencing_depth,
        {{ dbt.listagg('batch_id', "','", 'order by batch_id') }} as sequencing_batches
    from {{ ref('int_seq__libraries') }}
    where link_status = 'LINKED'
    group by specimen_barcode
),

metabolomics as (
    select
        specimen_barcode,
        count(*) as metabolomics_injections,
        min(batch_id) as metabolomics_batch
    from {{ ref('int_mtb__injections') }}
    where link_status = 'LINKED'
    group by specimen_barcode
)

select
    s.specimen_barcode,
    s.subject_id,
    s.specimen_type,
    s.visit,
    s.nominal_visit,
    cast(s.nominal_visit_order as {{ dbt.type_int() }}) as nominal_visit_order,
    s.collection_date,
    s.collection_date_flag,
    cast(s.study_day as {{ dbt.type_int() }}) as study_day,
    s.target_date,
    cast(s.days_from_target as {{ dbt.type_int() }}) as days_from_target,
    s.in_window_fl,
    case when q.specimen_barcode is not null then 'Y' else 'N' end as sequenced_fl,
    cast(coalesce(q.sequencing_libraries, 0) as {{ dbt.type_int() }}) as sequencing_libraries,
    cast(q.sequencing_depth as {{ dbt.type_bigint() }}) as sequencing_depth,
    q.sequencing_batches,
    case when m.specimen_barcode is not null then 'Y' else 'N' end as profiled_fl,
    cast(coalesce(m.metabolomics_injections, 0) as {{ dbt.type_int() }}) as metabolomics_injections,
    m.metabolomics_batch,
    s._source_file as source_file,
    cast(s._row_number as {{ dbt.type_int() }}) as source_row
from specimens as s
left join sequencing as q
    on s.specimen_barcode = q.specimen_barcode
left join metabolomics as m
    on s.specimen_barcode = m.specimen_barcode
