-- One row per metabolomics injection (batch x injection id), linked to the biospecimen log by barcode.
-- link_status: LINKED (patient specimen found), QC (pooled QC or blank), ORPHAN_BARCODE (SAMPLE whose barcode is
-- in no biospecimen log row), NO_BARCODE (SAMPLE without barcode), AFTER_CUTOFF (specimen collected after the data
-- cut-off).
with injections as (
    select
        *,
        row_number() over (partition by batch_id, injection_id order by _source_file, _row_number) as record_rank
    from {{ ref('stg_mtb__injections') }}
),

specimens as (
    select
        specimen_barcode, subject_id, specimen_type,
        row_number() over (partition by specimen_barcode order by _source_file, _row_number) as record_rank
    from {{ ref('stg_crf__bs') }}
    where specimen_barcode is not null
),

-- specimens collected on or before the data cut-off (int_samples applies it)
in_cutoff as (
    select specimen_barcode from {{ ref('int_samples') }}
)

select
    i.batch_id,
    i.injection_id,
    i.sample_type,
    i.specimen_barcode,
    i.matrix,
    i.run_order,
    i.instrument_batch,
    s.subject_id,
    s.specimen_type,
    case
        when i.sample_type in ('QC', 'BLANK') then 'QC'
        when i.specimen_barcode is null then 'NO_BARCODE'
        when s.specimen_barcode is null then 'ORPHAN_BARCODE'
        when c.specimen_barcode is null then 'AFTER_CUTOFF'
        else 'LINKED'
    end as link_status
from injections as i
left join specimens as s
    on i.specimen_barcode = s.specimen_barcode
    and s.record_rank = 1
left join in_cutoff as c
    on s.specimen_barcode = c.specimen_barcode
where i.record_rank = 1
