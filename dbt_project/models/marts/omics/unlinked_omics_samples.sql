-- Omics samples that do not link to a logged patient specimen (data-management follow-up list): one row per
-- sequencing library or metabolomics injection with role SAMPLE whose barcode is missing or in no biospecimen
-- log row, or that is missing from the manifest or the feature table.
select
    'SEQUENCING' as platform,
    batch_id,
    sample_id as omics_sample_id,
    specimen_barcode,
    link_status as issue,
    cast(library_size as {{ dbt.type_bigint() }}) as library_size
from {{ ref('int_seq__libraries') }}
where link_status not in ('LINKED', 'CONTROL', 'AFTER_CUTOFF')
union all
select
    'METABOLOMICS' as platform,
    batch_id,
    injection_id as omics_sample_id,
    specimen_barcode,
    link_status as issue,
    cast(null as {{ dbt.type_bigint() }}) as library_size
from {{ ref('int_mtb__injections') }}
where link_status not in ('LINKED', 'QC', 'AFTER_CUTOFF')
