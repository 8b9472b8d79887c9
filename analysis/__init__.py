"""Pure computations for the guttrial warehouse: readers, simulator, endpoints and omics analyses.

Nothing in this package imports Dagster; ``orchestration`` wires these functions into assets.
"""
