"""The Dagster code location (``dagster dev -m orchestration.definitions`` / ``make ui``).

``guttrial build`` runs the ``refresh_all`` job of these same definitions headless, so there is one code
path for the UI and the command line.
"""

from __future__ import annotations

import dagster as dg

from orchestration.assets.dbt import dbt_model_assets, dbt_resource
from orchestration.assets.endpoints import endpoint_assets
from orchestration.assets.metabolomics import metabolite_genus_correlations, metabolomics_analysis
from orchestration.assets.microbiome import microbiome_assets
from orchestration.assets.raw import raw_family_assets
from orchestration.assets.unblinding import randomisation_list
from orchestration.progress import progress_logger
from orchestration.resources import TrialSettings

REFRESH_JOB = "refresh_all"


def build_definitions() -> dg.Definitions:
    refresh_all = dg.define_asset_job(
        REFRESH_JOB,
        selection=dg.AssetSelection.all(),
        description="Refresh the whole warehouse: landing files -> raw -> marts -> endpoints and omics.",
    )
    return dg.Definitions(
        assets=[
            *raw_family_assets,
            randomisation_list,
            dbt_model_assets(),
            *endpoint_assets,
            metabolomics_analysis,
            metabolite_genus_correlations,
            *microbiome_assets,
        ],
        jobs=[refresh_all],
        resources={"settings": TrialSettings(), "dbt": dbt_resource()},
        # The console logger stays the default for the UI; headless builds pick the terse progress logger.
        loggers={"console": dg.colored_console_logger, "progress": progress_logger},
    )


defs = build_definitions()
