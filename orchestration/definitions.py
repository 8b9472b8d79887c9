"""The Dagster code location (``dagster dev -m orchestration.definitions`` / ``make ui``).

``guttrial build`` runs the ``refresh_all`` job of these same definitions headless, so there is one code
path for the UI and the command line.

What a user finds in the UI:

* asset groups per layer (:mod:`orchestration.groups`), each asset with a description, owners, kinds and its group's
  description as metadata ``layer``;
* job ``refresh_all`` (everything), whose launchpad opens with the ``settings`` resource filled in: data cut-off,
  blinding switch, randomisation list, landing folder, warehouse file (empty = the ``GUTTRIAL_*`` variable);
* schedule ``nightly_refresh`` and sensor ``landing_folder_sensor``, both stopped until someone turns them on.

Loading is offline and runs no dbt: the dbt assets are built from ``dbt_project/target/manifest.json`` (see
:mod:`orchestration.assets.dbt`), and nothing reads the environment or the warehouse before a run starts.
To register more assets or checks, add them to ``_assets()`` / ``_asset_checks()`` below.
"""

from collections.abc import Sequence
from typing import Any

import dagster as dg

from orchestration.assets.dbt import dbt_model_assets, dbt_resource
from orchestration.assets.endpoints import endpoint_assets
from orchestration.assets.metabolomics import metabolite_genus_correlations, metabolomics_analysis
from orchestration.assets.microbiome import microbiome_assets
from orchestration.assets.raw import current_files, raw_family_assets
from orchestration.assets.reports import report_assets
from orchestration.assets.unblinding import randomisation_list
from orchestration.checks.quality import quality_checks
from orchestration.groups import groups_markdown, with_group_defaults
from orchestration.progress import progress_logger
from orchestration.publish import audit_failure_hook, build_publish_asset
from orchestration.resources import TrialSettings
from orchestration.schedules import build_nightly_schedule
from orchestration.sensors import build_landing_sensor

REFRESH_JOB = "refresh_all"

#: The launchpad of ``refresh_all`` opens with these fields shown, each documented in the side panel (an empty value
#: falls back to the GUTTRIAL_* environment variable, read at run start, so ``guttrial build`` and ``make ui`` keep
#: steering runs through it). Cut-off and blinding are what a user changes per run.
SETTINGS_LAUNCHPAD_DEFAULTS: dict[str, str] = {
    "cutoff_date": "",
    "unblinded": "",
    "randomisation_list": "",
    "landing_dir": "",
    "warehouse_path": "",
}
REFRESH_JOB_CONFIG: dict[str, Any] = {"resources": {"settings": {"config": SETTINGS_LAUNCHPAD_DEFAULTS}}}


def _assets() -> list[dg.AssetsDefinition | dg.AssetSpec]:
    return [
        *raw_family_assets,
        current_files,
        randomisation_list,
        dbt_model_assets(),
        *endpoint_assets,
        metabolomics_analysis,
        metabolite_genus_correlations,
        *microbiome_assets,
        *report_assets,
    ]


def _asset_checks() -> list[dg.AssetChecksDefinition]:
    # great-expectations suites of every layer as (blocking) asset checks, batched per layer.
    return quality_checks(_assets())


def refresh_all_job() -> Any:
    return dg.define_asset_job(
        REFRESH_JOB,
        selection=dg.AssetSelection.all(),
        config=REFRESH_JOB_CONFIG,
        description="Refresh the whole warehouse: landing files -> raw -> staging -> marts -> endpoints, "
        "microbiome, metabolomics, quality, reports. In the launchpad: `cutoff_date` (YYYY-MM-DD) and "
        "`unblinded` ('true' needs `randomisation_list` and a warehouse file named *unblinded*).\n\n"
        "Asset groups:\n\n" + groups_markdown(),
        tags={"guttrial/job": REFRESH_JOB},
        # A failing step marks the run "failed" in audit.runs (a killed run stays "started").
        hooks={audit_failure_hook},
    )


def build_definitions() -> dg.Definitions:
    refresh_all = refresh_all_job()
    assets: Sequence[dg.AssetsDefinition | dg.AssetSpec] = with_group_defaults(_assets())
    # Last step: audit the run and publish the analysts' read-only copy, after every other asset.
    assets = [*assets, *with_group_defaults([build_publish_asset(assets)])]
    return dg.Definitions(
        assets=assets,
        asset_checks=_asset_checks(),
        jobs=[refresh_all],
        schedules=[build_nightly_schedule(refresh_all)],
        sensors=[build_landing_sensor(refresh_all)],
        resources={"settings": TrialSettings(), "dbt": dbt_resource()},
        # The console logger stays the default for the UI; headless builds pick the terse progress logger.
        loggers={"console": dg.colored_console_logger, "progress": progress_logger},
    )


defs = build_definitions()
