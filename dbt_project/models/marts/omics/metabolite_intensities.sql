-- Metabolomics intensities of patient samples (long, observed values only): one row per feature per injection.
select
    i.batch_id,
    i.feature_id,
    i.ion_mode,
    i.injection_id,
    j.specimen_barcode,
    j.subject_id,
    j.matrix,
    cast(j.run_order as {{ dbt.type_int() }}) as run_order,
    i.intensity
from {{ ref('stg_mtb__intensities') }} as i
inner join {{ ref('int_mtb__injections') }} as j
    on i.batch_id = j.batch_id
    and i.injection_id = j.injection_id
where j.link_status = 'LINKED'
