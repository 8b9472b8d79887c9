-- Phylogenetic trees of the sequencing batches (optional; for UniFrac): the Newick text as delivered, current
-- file versions, one row per tree file. Checked on load (analysis/readers/tree.py); the microbiome analyses parse
-- it again (unrooted trees are midpoint-rooted there).
with source as (
    {{ current_rows(source('raw', 'seq_trees')) }}
),

cleaned as (
    select
        trim(batch_id) as batch_id,
        lower(trim(tree_format)) as tree_format,
        newick,
        newick_sha256,
        n_tips,
        n_table_features,
        upper(trim(rooted)) as rooted,
        _source_file, _row_number, _file_sha256, _load_id
    from source
)

{{ deduplicate('cleaned', ['batch_id', 'tree_format', 'newick_sha256', 'newick', 'n_tips', 'n_table_features', 'rooted']) }}
