-- One row per sequencing library (batch x sequencing sample id) from the feature tables and the manifests,
-- linked to the biospecimen log by specimen barcode. link_status: LINKED (patient specimen found),
-- CONTROL (negative control or mock community), ORPHAN_BARCODE (role SAMPLE, barcode in no biospecimen log
-- row), NO_BARCODE (role SAMPLE without barcode), NOT_IN_MANIFEST (in a feature table only),
-- NOT_IN_TABLE (in a manifest only: no reads delivered), AFTER_CUTOFF (specimen collected after the data cut-off).
with libraries as (
    select batch_id, sample_id, max(library_size) as library_size, max(n_features) as n_features,
        max(table_format) as table_format
    from {{ ref('stg_seq__samples') }}
    group by batch_id, sample_id
),

manifest as (
    select
        batch_id, sample_id, specimen_barcode, sample_role, run_id,
        row_number() over (partition by batch_id, sample_id order by _source_file, _row_number) as record_rank
    from {{ ref('stg_seq__manifest') }}
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
),

joined as (
    select
        coalesce(l.batch_id, m.batch_id) as batch_id,
        coalesce(l.sample_id, m.sample_id) as sample_id,
        l.library_size,
        l.n_features,
        l.table_format,
        m.specimen_barcode,
        m.sample_role,
        m.run_id,
        case when l.sample_id is not null then true else false end as in_feature_table,
        case when m.sample_id is not null then true else false end as in_manifest
    from libraries as l
    full outer join (select * from manifest where record_rank = 1) as m
        on l.batch_id = m.batch_id
        and l.sample_id = m.sample_id
)

select
    j.batch_id,
    j.sample_id,
    j.library_size,
    j.n_features,
    j.table_format,
    j.specimen_barcode,
    j.sample_role,
    j.run_id,
    s.subject_id,
    s.specimen_type,
    case
        when not j.in_manifest then 'NOT_IN_MANIFEST'
        when j.sample_role in ('NEGATIVE_CONTROL', 'MOCK') then 'CONTROL'
        when not j.in_feature_table then 'NOT_IN_TABLE'
        when j.specimen_barcode is null then 'NO_BARCODE'
        when s.specimen_barcode is null then 'ORPHAN_BARCODE'
        when c.specimen_barcode is null then 'AFTER_CUTOFF'
        else 'LINKED'
    end as link_status
from joined as j
left join specimens as s
    on j.specimen_barcode = s.specimen_barcode
    and s.record_rank = 1
left join in_cutoff as c
    on s.specimen_barcode = c.specimen_barcode
