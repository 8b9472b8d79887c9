"""Build the whole trial report from a warehouse: collect every section, check blinding, write atomically.

Section contract (shared with the microbiome, metabolomics and integration modules): a module
``analysis.report.<section>`` exposes ``figures(con: duckdb.DuckDBPyConnection, ctx: ReportContext) ->
list[ReportFigure | ReportTable]`` that reads the tables it needs from the (read-only) warehouse connection. It may
declare ``REQUIRED_TABLES = ("analysis.x", ...)``; a section whose tables are missing (e.g. the omics assets did not
run), whose module is absent, or whose query meets a missing table is reported as "not available: table X missing"
instead of failing the report. Any other error is shown in the report as a failed section (and counted in the
result) so the rest of the report is still produced; a blinding breach is never tolerated (see below).

Blinding: the run's blinding status comes from the warehouse (``analysis.endpoint_run.blinded`` and
``marts.adsl.arm_code``), so the report is reproducible from the warehouse alone. In a blinded run the written
HTML, SVG, CSV and manifest are scanned for arm strings (:data:`ARM_PATTERN`) before the report is published; a hit
raises :class:`~analysis.report.style.BlindingError` and nothing is published.

Atomic publication: everything is written into a temporary sibling folder, which then replaces
``<reports_dir>/<run date>`` by ``rename`` (the previous report of the same day is moved aside first and removed after).
Unblinded reports get owner-only permissions (folders 0o700, files 0o600), including the reports folder itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from analysis.report.figure import ReportContext, ReportFigure, ReportTable
from analysis.report.html import ReportMeta, Section, now_text, write_report
from analysis.report.style import BlindingError

#: Section modules in report order.
SECTIONS: tuple[str, ...] = ("efficacy", "safety", "microbiome", "metabolomics", "integration")
#: Arm codes and arm display labels; none may appear in a blinded report ("capsules", the study drug, may).
ARM_PATTERN = re.compile(r"\b(capsule|placebo|capsule arm|placebo arm)\b|\barm[ _]code\b", re.IGNORECASE)
_MISSING_TABLE = re.compile(r"Table with name (\S+) does not exist", re.IGNORECASE)


@dataclass
class ReportResult:
    index: Path
    sections: list[Section]
    seconds: float
    key_values: dict[str, str] = field(default_factory=dict)
    #: CPU time of this process spent building the report (``time.process_time``).
    cpu_seconds: float = 0.0

    @property
    def n_figures(self) -> int:
        return sum(isinstance(i, ReportFigure) for s in self.sections for i in s.items)

    @property
    def n_tables(self) -> int:
        return sum(isinstance(i, ReportTable) for s in self.sections for i in s.items)

    @property
    def failed(self) -> list[Section]:
        return [s for s in self.sections if s.status == "failed"]

    @property
    def unavailable(self) -> list[Section]:
        return [s for s in self.sections if s.status == "unavailable"]


# ------------------------------------------------------------------------------------------------ context


def table_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, _, name = qualified.rpartition(".")
    rows = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema or "main", name],
    ).fetchall()  # fetch everything: DuckDB 2 refuses new work while a result is unfinished
    return bool(rows and rows[0][0])


def context_from_warehouse(
    con: duckdb.DuckDBPyConnection,
    run_date: dt.date | None = None,
    expect_unblinded: bool | None = None,
) -> ReportContext:
    """Cut-off and blinding as recorded in the warehouse (``analysis.endpoint_run``, ``marts.adsl.arm_code``).

    ``expect_unblinded`` (the run's setting) must agree with the warehouse, else ValueError: a blinded run must not
    publish an unblinded warehouse's results, nor the reverse.
    """
    cutoff = None
    blinded: bool | None = None
    if table_exists(con, "analysis.endpoint_run"):
        run = con.sql("select cutoff_date, blinded from analysis.endpoint_run").df()
        if len(run):
            c = run["cutoff_date"].iloc[0]
            cutoff = None if pd.isna(c) else pd.Timestamp(c).date()
            blinded = bool(run["blinded"].iloc[0])
    arms: set[str] = set()
    if table_exists(con, "marts.adsl"):
        arms = {str(a).upper() for a in con.sql("select distinct arm_code from marts.adsl").df()["arm_code"]}
    unblinded_data = bool(arms - {"BLINDED", "NONE", "NAN"})
    if blinded is None:
        blinded = not unblinded_data
    if blinded and unblinded_data:
        raise BlindingError("analysis.endpoint_run says blinded but marts.adsl holds treatment arms")
    if expect_unblinded is not None and expect_unblinded == blinded:
        raise ValueError(
            f"the run is {'unblinded' if expect_unblinded else 'blinded'} but the warehouse's endpoints were computed "
            f"{'blinded' if blinded else 'unblinded'}"
        )
    return ReportContext(cutoff=cutoff, unblinded=not blinded, run_date=run_date or dt.date.today())


# ------------------------------------------------------------------------------------------------ sections


def collect_section(con: duckdb.DuckDBPyConnection, ctx: ReportContext, name: str) -> Section:
    """Run one section module (see module docstring for the contract and the failure modes)."""
    modname = f"analysis.report.{name}"
    try:
        module = importlib.import_module(modname)
    except ModuleNotFoundError as exc:
        if exc.name == modname:
            return Section(name, status="unavailable", message=f"not available: section module {modname} missing")
        raise
    fn = getattr(module, "figures", None)
    if fn is None:
        return Section(name, status="unavailable", message=f"not available: {modname} has no figures()")
    missing = [t for t in getattr(module, "REQUIRED_TABLES", ()) if not table_exists(con, t)]
    if missing:
        return Section(name, status="unavailable", message=f"not available: table {', '.join(missing)} missing")
    try:
        items = list(fn(con, ctx))
    except BlindingError:
        raise
    except duckdb.CatalogException as exc:
        m = _MISSING_TABLE.search(str(exc))
        what = f"table {m.group(1).strip(chr(34))} missing" if m else str(exc).splitlines()[0]
        return Section(name, status="unavailable", message=f"not available: {what}")
    except Exception as exc:
        return Section(name, status="failed", message=f"failed: {type(exc).__name__}: {exc}")
    for item in items:
        if not isinstance(item, ReportFigure | ReportTable):
            return Section(name, status="failed", message=f"failed: {modname}.figures() returned {type(item)!r}")
    return Section(name, items)


def collect_sections(
    con: duckdb.DuckDBPyConnection, ctx: ReportContext, sections: Sequence[str] = SECTIONS
) -> list[Section]:
    return [collect_section(con, ctx, s) for s in sections]


# ------------------------------------------------------------------------------------------------ checks


def check_captions(sections: Sequence[Section], ctx: ReportContext) -> None:
    """Every item's caption states population, n, cut-off and blinding (built with ``ReportContext.caption``)."""
    for s in sections:
        for item in s.items:
            c = item.caption
            if not ("Population:" in c and "n = " in c and ctx.cutoff_text in c and ctx.blinding_text in c):
                raise ValueError(f"{item.slug}: caption lacks population/n/cut-off/blinding: {c!r}")


def scan_for_arms(folder: Path) -> list[str]:
    """``path: match`` for every arm string in the text files of a report folder."""
    hits = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in {".html", ".svg", ".csv", ".json"}:
            for m in ARM_PATTERN.finditer(path.read_text(encoding="utf-8", errors="replace")):
                hits.append(f"{path.relative_to(folder)}: {m.group(0)!r}")
    return hits


# ------------------------------------------------------------------------------------------------ files


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _restrict(folder: Path) -> None:
    """Owner-only permissions for an unblinded report folder."""
    for root, dirs, files in os.walk(folder):
        os.chmod(root, 0o700)
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o700)
        for f in files:
            os.chmod(os.path.join(root, f), 0o600)


def _open_up(folder: Path) -> None:
    """Ordinary permissions for a blinded report (mkdtemp creates 0o700)."""
    umask = os.umask(0)
    os.umask(umask)
    for root, dirs, files in os.walk(folder):
        os.chmod(root, 0o777 & ~umask)
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o777 & ~umask)
        for f in files:
            os.chmod(os.path.join(root, f), 0o666 & ~umask)


def publish(tmp: Path, target: Path) -> None:
    """Replace ``target`` by ``tmp`` with renames (same file system), keeping the old folder until the swap."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        if old is not None:
            os.rename(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_report(
    con: duckdb.DuckDBPyConnection,
    ctx: ReportContext,
    reports_dir: Path,
    *,
    warehouse: Path | None = None,
    run_id: str = "",
    sections: Sequence[str] = SECTIONS,
    png_dpi: int | None = None,
) -> ReportResult:
    """Build every section and publish ``<reports_dir>/<run date>/index.html`` atomically; returns the result.

    Figures are written as SVG (inlined in the page); ``png_dpi`` also writes a PNG of each (a second draw)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    collected = collect_sections(con, ctx, sections)
    check_captions(collected, ctx)
    meta = ReportMeta(
        warehouse=str(warehouse) if warehouse else "",
        warehouse_sha256=file_sha256(warehouse) if warehouse and warehouse.is_file() else "",
        run_id=run_id,
        generated_at=now_text(),
    )
    reports_dir.mkdir(parents=True, exist_ok=True)
    if ctx.unblinded:
        os.chmod(reports_dir, 0o700)
    target = reports_dir / ctx.run_date.isoformat()
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=reports_dir))
    try:
        write_report(collected, ctx, tmp, meta, png_dpi=png_dpi)
        if not ctx.unblinded:
            hits = scan_for_arms(tmp)
            if hits:
                raise BlindingError("arm information in a blinded report: " + "; ".join(hits[:10]))
            _open_up(tmp)
        else:
            _restrict(tmp)
        publish(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        for s in collected:
            for item in s.items:
                if isinstance(item, ReportFigure):
                    item.figure.clear()
    key_values: dict[str, str] = {}
    for s in collected:
        for item in s.items:
            if isinstance(item, ReportFigure):
                key_values.update(item.key_values)
    return ReportResult(
        target / "index.html",
        collected,
        time.perf_counter() - started,
        key_values,
        cpu_seconds=time.process_time() - cpu_started,
    )
