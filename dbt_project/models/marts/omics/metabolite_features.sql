-- Metabolomics features: one row per feature per batch (feature id + ion mode), with m/z, RT and annotation.
with features as (
    select
        *,
        row_number() over (
            partition by batch_id, feature_id, ion_mode order by _source_file, _row_number
        ) as record_rank
    from {{ ref('stg_mtb__features') }}
)

select
    batch_id,
    feature_id,
    ion_mode,
    mz,
    rt_min,
    metabolite_name,
    formula,
    kegg_id,
    hmdb_id,
    compound_class,
    evidence
from features
where record_rank = 1
