-- 16S feature counts of patient samples (long, non-zero only): one row per sequencing library per feature.
-- Feature ids are per batch for mothur OTU tables (Otu001 ...), so the feature key is (batch_id, feature_id).
select
    c.batch_id,
    c.sample_id,
    l.specimen_barcode,
    l.subject_id,
    c.feature_id,
    c.read_count,
    cast(c.read_count as {{ guttrial.type_double() }}) / l.library_size as relative_abundance
from {{ ref('stg_seq__counts') }} as c
inner join {{ ref('int_seq__libraries') }} as l
    on c.batch_id = l.batch_id
    and c.sample_id = l.sample_id
where l.link_status = 'LINKED'
