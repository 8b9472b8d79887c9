-- Metabolomics pooled QCs and blanks: one row per QC or blank injection (never mixed with patient samples);
-- their intensities are in metabolomics_qc_intensities.
select
    batch_id,
    injection_id,
    sample_type,
    matrix,
    cast(run_order as {{ dbt.type_int() }}) as run_order,
    instrument_batch
from {{ ref('int_mtb__injections') }}
where link_status = 'QC'
