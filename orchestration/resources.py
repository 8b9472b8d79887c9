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
from pydantic import Field, PrivateAttr, field_validator

DEFAULT_WAREHOUSE = "data/warehouse.duckdb"
DEFAULT_LANDING = "data/landing"

ENV_LANDING = "GUTTRIAL_LANDING"
ENV_WAREHOUSE = "GUTTRIAL_WAREHOUSE"
ENV_CUTOFF = "GUTTRIAL_CUTOFF"
ENV_UNBLINDED = "GUTTRIAL_UNBLINDED"
ENV_RANDOMISATION_LIST = "GUTTRIAL_RANDOMISATION_LIST"

_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


class TrialSettings(dg.ConfigurableResource):
    """Run-wide settings of a warehouse refresh (empty = take the GUTTRIAL_* variable, then the default)."""

    # The descriptions are what the launchpad shows next to each field (refresh_all pre-fills them empty).
    landing_dir: str = Field(
        default="",
        description=f"Landing folder with the exports (read, never written). Empty: ${ENV_LANDING}, "
        f"else {DEFAULT_LANDING}.",
    )
    warehouse_path: str = Field(
        default="",
        description=f"DuckDB warehouse file this run writes. Empty: ${ENV_WAREHOUSE}, else {DEFAULT_WAREHOUSE}.",
    )
    cutoff_date: str = Field(
        default="",
        description="Data cut-off date, YYYY-MM-DD: nothing dated after it is used by the endpoints. "
        f"Empty: ${ENV_CUTOFF}, else no cut-off.",
    )
    unblinded: str = Field(
        default="",
        description="Blinding switch: 'true' unblinds (needs randomisation_list, and a warehouse_path whose file "
        f"name contains 'unblinded'); 'false': blinded. Empty: ${ENV_UNBLINDED}, else blinded.",
    )
    randomisation_list: str = Field(
        default="",
        description="Restricted randomisation list CSV, read only when unblinded is 'true'. "
        f"Empty: ${ENV_RANDOMISATION_LIST}.",
    )

    @field_validator("cutoff_date")
    @classmethod
    def _cutoff_is_iso(cls, value: str) -> str:
        # Fail at run start with the field named, not deep inside an endpoint.
        if value.strip():
            try:
                dt.date.fromisoformat(value.strip())
            except ValueError as exc:
                raise ValueError(f"cutoff_date must be YYYY-MM-DD, got {value!r}") from exc
        return value.strip()

    @field_validator("unblinded")
    @classmethod
    def _unblinded_is_boolean(cls, value: str) -> str:
        # A typo such as 'ture' must not silently produce a blinded run the user believes is unblinded.
        if value.strip() and value.strip().lower() not in _TRUE | _FALSE:
            raise ValueError(f"unblinded must be 'true' or 'false' (or empty), got {value!r}")
        return value.strip()

    _previous_umask: int | None = PrivateAttr(default=None)

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
        text = self._pick(self.unblinded, ENV_UNBLINDED).strip().lower()
        if text and text not in _TRUE | _FALSE:
            raise ValueError(f"{ENV_UNBLINDED} must be 'true' or 'false' (or empty), got {text!r}")
        return text in _TRUE

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
        con = duckdb.connect(str(self.warehouse), read_only=read_only)
        if self.is_unblinded:
            # An unblinded warehouse (and its write-ahead log) is readable by its owner only.
            from orchestration.permissions import restrict_if_unblinded

            restrict_if_unblinded([self.warehouse, self.warehouse.with_name(self.warehouse.name + ".wal")], self)
        return con

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Once per run process, before any step: an unblinded run creates every file owner-only (umask 077, see
        # orchestration/permissions.py), and the audit gets its "started" row, so a killed run leaves a trace.
        from orchestration.publish import record_start

        if self.is_unblinded:
            from orchestration.assets.unblinding import check_unblinded_warehouse

            # Refused here, before any step writes anything to a file not named as unblinded.
            check_unblinded_warehouse(self.warehouse)
            # The folder may also hold blinded files: create it (if new) with the usual mode, before the umask.
            self.warehouse.parent.mkdir(parents=True, exist_ok=True)
            self._previous_umask = os.umask(0o077)

        record_start(self, context.run.run_id if context.run else None, context.log)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._previous_umask is not None:
            os.umask(self._previous_umask)
            self._previous_umask = None
