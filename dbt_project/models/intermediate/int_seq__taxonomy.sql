-- One row per feature (batch x feature id): the taxonomy string (a taxonomy file wins over the feature table's
-- metadata) parsed into kingdom .. species; unassigned ranks are NULL.
with features as (
    select
        batch_id,
        feature_id,
        taxonomy,
        taxonomy_source,
        row_number() over (
            partition by batch_id, feature_id
            order by
                case when taxonomy is null then 1 else 0 end,
                case when taxonomy_source = 'taxonomy file' then 0 else 1 end,
                _source_file,
                _row_number
        ) as preference
    from {{ ref('stg_seq__features') }}
)

select
    batch_id,
    feature_id,
    taxonomy as taxonomy_string,
    taxonomy_source,
    {{ taxonomy_style('taxonomy') }} as taxonomy_style,
    {{ taxon_rank('taxonomy', 'dk', 1) }} as kingdom,
    {{ taxon_rank('taxonomy', 'p', 2) }} as phylum,
    {{ taxon_rank('taxonomy', 'c', 3) }} as class,
    {{ taxon_rank('taxonomy', 'o', 4) }} as {{ q('order') }},
    {{ taxon_rank('taxonomy', 'f', 5) }} as family,
    {{ taxon_rank('taxonomy', 'g', 6) }} as genus,
    {{ taxon_rank('taxonomy', 's', 7) }} as species
from features
where preference = 1
