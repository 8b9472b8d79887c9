"""The Dagster code location (``dagster dev -m orchestration.definitions`` / ``make ui``).

``guttrial build`` runs the ``refresh_all`` job of these same definitions headless, so there is one code
path for the UI and the command line.
"""

from __future__ import annotations

import dagster as dg

from orchestration.assets.raw import raw_family_assets
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
        assets=[*raw_family_assets],
        jobs=[refresh_all],
        resources={"settings": TrialSettings()},
        # The console logger stays the default for the UI; headless builds pick the terse progress logger.
        loggers={"console": dg.colored_console_logger, "progress": progress_logger},
    )


defs = build_definitions()
