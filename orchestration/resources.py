"""Resources: where the landing folder and the warehouse are, and how this run is configured.

Every field may be set in the launchpad (resource config). A field left empty falls back to its
``GUTTRIAL_*`` environment variable, read when the run starts (never at import time, so loading the
definitions needs neither files nor network), then to the built-in default. ``guttrial build`` sets the
same variables from its arguments, so the command line and the UI run the same definitions.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import duckdb

DEFAULT_WAREHOUSE = "data/warehouse.duckdb"
DEFAULT_LANDING = "data/landing"

ENV_LANDING = "GUTTRIAL_LANDING"
ENV_WAREHOUSE = "GUTTRIAL_WAREHOUSE"
ENV_CUTOFF = "GUTTRIAL_CUTOFF"
ENV_UNBLINDED = "GUTTRIAL_UNBLINDED"
ENV_RANDOMISATION_LIST = "GUTTRIAL_RANDOMISATION_LIST"

_TRUE = {"1", "true", "yes", "y", "on"}


class TrialSettings(dg.ConfigurableResource):
    """Run-wide settings of a warehouse refresh (empty = take the GUTTRIAL_* variable, then the default)."""

    landing_dir: str = ""
    warehouse_path: str = ""
    #: ISO date; nothing dated after it is used by endpoints. Empty = no cut-off.
    cutoff_date: str = ""
    #: "true" to unblind: the run then reads the randomisation list and must write its own warehouse file.
    unblinded: str = ""
    randomisation_list: str = ""

    @staticmethod
    def _pick(value: str, env: str, default: str = "") -> str:
        return value or os.environ.get(env, "") or default

    @property
    def landing(self) -> Path:
        return Path(self._pick(self.landing_dir, ENV_LANDING, DEFAULT_LANDING)).expanduser().resolve()

    @property
    def warehouse(self) -> Path:
        return Path(self._pick(self.warehouse_path, ENV_WAREHOUSE, DEFAULT_WAREHOUSE)).expanduser().resolve()

    @property
    def cutoff(self) -> dt.date | None:
        text = self._pick(self.cutoff_date, ENV_CUTOFF)
        return dt.date.fromisoformat(text) if text else None

    @property
    def is_unblinded(self) -> bool:
        return self._pick(self.unblinded, ENV_UNBLINDED).strip().lower() in _TRUE

    @property
    def randomisation_path(self) -> Path | None:
        text = self._pick(self.randomisation_list, ENV_RANDOMISATION_LIST)
        return Path(text).expanduser().resolve() if text else None

    @property
    def quality_dir(self) -> Path:
        """Great-expectations project (suites, results history, Data Docs) kept beside the warehouse file."""
        return self.warehouse.parent / f"{self.warehouse.stem}_quality"

    @property
    def data_docs_index(self) -> Path:
        """The Data Docs site QA opens in a browser (one page per validation, with history)."""
        return self.quality_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"

    @property
    def reports_dir(self) -> Path:
        """Trial reports, one folder per run date (``<reports_dir>/<YYYY-MM-DD>/index.html``)."""
        return self.warehouse.parent / f"{self.warehouse.stem}_reports"

    @property
    def published_path(self) -> Path:
        """The read-only copy analysts query, replaced atomically after each successful run."""
        return self.warehouse.parent / f"{self.warehouse.stem}_published.duckdb"

    def connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        """A connection to the warehouse file (created with its folder if absent, unless read-only)."""
        if not read_only:
            self.warehouse.parent.mkdir(parents=True, exist_ok=True)
        return duckdb.connect(str(self.warehouse), read_only=read_only)
