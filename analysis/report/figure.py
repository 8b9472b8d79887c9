"""The unit of the trial report: a matplotlib figure with the caption every figure must carry.

Every figure states its population, the data cut-off, the blinding status and n (issue 8), so the
caption is built from a :class:`ReportContext` and never typed by hand. Figure functions in the sibling
modules (``efficacy``, ``safety``, ``microbiome``, ``metabolomics``, ``integration``) are pure: they take
DataFrames read from the warehouse's ``analysis``/``marts`` tables plus a context and return
:class:`ReportFigure` objects (or tables as :class:`ReportTable`), without touching files or Dagster.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class ReportContext:
    """Run-wide facts every caption repeats."""

    #: Data cut-off date of the run (None = no cut-off configured: all data received).
    cutoff: dt.date | None
    #: False in a blinded run: nothing in the report may reveal or split by treatment arm.
    unblinded: bool
    #: Date the report was produced (folder name ``reports/<run date>``).
    run_date: dt.date
    study_id: str = "HCC-GUT-01"

    @property
    def blinding_text(self) -> str:
        return "UNBLINDED (arms shown)" if self.unblinded else "blinded (arms pooled)"

    @property
    def cutoff_text(self) -> str:
        return f"data cut-off {self.cutoff.isoformat()}" if self.cutoff else "no data cut-off (all data received)"

    def caption(self, text: str, population: str, n: int | str) -> str:
        """``text`` followed by the mandatory population / cut-off / blinding / n statement."""
        return f"{text.rstrip('.')}. Population: {population}; n = {n}; {self.cutoff_text}; {self.blinding_text}."


@dataclass
class ReportFigure:
    """One figure of the report."""

    #: File stem, unique in the report (``km_pfs`` -> ``km_pfs.png`` and ``km_pfs.svg``).
    slug: str
    #: Report section: ``efficacy``, ``safety``, ``microbiome``, ``metabolomics`` or ``integration``.
    section: str
    title: str
    #: Full caption, built with :meth:`ReportContext.caption`.
    caption: str
    figure: Any  # matplotlib.figure.Figure (kept as Any so importing this module needs no matplotlib)
    #: Key figures shown beside the plot and recorded as Dagster metadata (e.g. {"PFS HR": "0.71 (0.48-1.05)"}).
    key_values: dict[str, str] = field(default_factory=dict)


@dataclass
class ReportTable:
    """One table of the report (rendered as an HTML table and written as CSV)."""

    slug: str
    section: str
    title: str
    caption: str
    frame: pd.DataFrame
