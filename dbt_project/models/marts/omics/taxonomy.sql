-- Feature taxonomy: one row per feature (batch x feature id), kingdom .. species, unassigned ranks NULL.
select
    batch_id,
    feature_id,
    kingdom,
    phylum,
    class,
    {{ q('order') }},
    family,
    genus,
    species,
    taxonomy_string,
    taxonomy_style,
    taxonomy_source
from {{ ref('int_seq__taxonomy') }}
