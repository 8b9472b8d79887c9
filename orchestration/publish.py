"""Publishing: the audit record of the run, then a read-only copy of the warehouse for analysts, swapped in atomically.

Why a copy: DuckDB lets one process write a file, and a reader holding the working file open (even read-only) stops
the next refresh from opening it for writing. Analysts therefore query ``<warehouse stem>_published.duckdb``
(``TrialSettings.published_path``), which a run replaces only after it has finished everything else:

1. the last step, asset ``published_warehouse`` (group ``publish``), depends on every terminal asset of the graph,
   so it runs only when every other asset succeeded and no blocking check failed upstream (a failed or skipped
   upstream step skips it, and the previous published copy stays as it was). Its priority is the lowest, so the
   run's non-blocking checks are evaluated before it and their results reach the audit;
2. it writes the run's audit (``orchestration.audit``: inputs, content hashes of every mart and analysis table,
   check results) into the working warehouse and checkpoints it, so the published copy carries its own audit;
3. :func:`publish_copy` copies the warehouse into a temporary file in the same folder (``ATTACH`` + ``COPY FROM
   DATABASE ... (SCHEMA)`` + one ``INSERT ... SELECT`` per table, all in one transaction), withholding any column
   named as a direct identifier of the raw CRF (``raw.crf_dm`` MRN, name, initials, birth date are NULL in the
   copy). Defensive only: the loader never stores their values (``analysis.ingest.deidentify``), so the columns are
   already NULL; the check still covers a warehouse whose rows were blanked by an UPDATE (their old bytes may
   linger in freed blocks of the working file, never in this copy). It fsyncs the copy, makes it read-only and
   ``os.replace``-s it over the published path (atomic on POSIX), then fsyncs the folder.

A reader that opens the published path sees either the previous complete copy or the new complete copy, never a
half-written one; a reader that already holds the previous copy keeps reading it (its inode lives until closed),
and no reader ever blocks the writer. A run killed while publishing leaves a ``.tmp-*`` file, removed by the
next publish. Why not a plain file copy (0.5 s instead of 6-7 s on the 52 MB 120-patient demo): a byte copy would
carry the identifiers, and blanking them in the copy afterwards leaves their old bytes in freed blocks of the
file; building the copy table by table never writes them. Measurements: ``docs/reliability.md``.
"""

import contextlib
import errno
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb

from analysis import contract
from analysis.hashing import quote_ident, warehouse_hashes
from orchestration import audit
from orchestration.assets.raw import DUCKDB_POOL
from orchestration.assets.unblinding import check_unblinded_warehouse
from orchestration.permissions import restrict_if_unblinded
from orchestration.resources import TrialSettings

PUBLISH_KEY = dg.AssetKey("published_warehouse")
PUBLISH_GROUP = "publish"
#: Lowest step priority: among the steps ready at the end of a run, checks go first, publishing last.
PUBLISH_PRIORITY = "-1000"
TMP_MARK = ".tmp-"
#: Published copies are read-only files (owner-only for an unblinded run).
PUBLISHED_MODE = 0o444
PUBLISHED_MODE_UNBLINDED = 0o400
#: Below this much free space beside the warehouse, a failed run's summary points at the disk.
LOW_DISK_MB = 64


class PublishError(RuntimeError):
    """Publishing failed; the previous published copy is untouched and no temporary file is left behind."""


@dataclass(frozen=True)
class PublishResult:
    path: Path
    seconds: float
    size_bytes: int
    tables: int
    withheld: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def identifier_columns(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, ...]]:
    """``raw.<table>`` -> its columns named as a direct identifier of the CRF contract (MRN, PATNAME, INITIALS,
    BRTHDTC), in any raw table (an export may deliver one in an unexpected form). The loader stores none of their
    values; publishing blanks them anyway (defence in depth)."""
    wanted = {c.upper() for c in contract.DIRECT_IDENTIFIERS}
    rows = con.execute(
        "select table_name, column_name from duckdb_columns() where database_name = current_database() "
        "and schema_name = 'raw' order by table_name, column_index"
    ).fetchall()
    out: dict[str, list[str]] = {}
    for table, column in rows:
        if column.upper() in wanted:
            out.setdefault(f"raw.{table}", []).append(column)
    return {k: tuple(v) for k, v in out.items()}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    for item in (path, path.with_name(path.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            item.unlink()


def stale_temporaries(target: Path) -> list[Path]:
    """Temporary copies left by a publish that was killed (there is one writer, so none is in use)."""
    return sorted(p for p in target.parent.glob(f"{target.name}{TMP_MARK}*") if not p.name.endswith(".wal"))


def _copy_database(source: Path, tmp: Path, withhold: Mapping[str, Sequence[str]], run_id: str | None) -> int:
    with duckdb.connect(":memory:") as con:
        con.execute("set enable_progress_bar = false")
        con.execute(f"attach {_literal(source)} as src (read_only)")
        con.execute(f"attach {_literal(tmp)} as pub")
        # Schemas, tables (with their constraints), views and sequences, no rows.
        con.execute("copy from database src to pub (schema)")
        tables = con.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = 'src' order by 1, 2"
        ).fetchall()
        con.execute("begin transaction")
        for schema, table in tables:
            name = f"{quote_ident(schema)}.{quote_ident(table)}"
            blank = withhold.get(f"{schema}.{table}", ())
            replace = ""
            if blank:
                replace = " replace (" + ", ".join(f"null as {quote_ident(c)}" for c in blank) + ")"
            con.execute(f"insert into pub.{name} select *{replace} from src.{name}")
        con.execute("create schema if not exists pub.audit")
        con.execute(
            "create or replace table pub.audit.publication (run_id varchar, published_at timestamp, "
            "source_path varchar, withheld_columns varchar[])"
        )
        con.execute(
            "insert into pub.audit.publication values (?, ?, ?, ?)",
            [
                run_id,
                audit.utc_now(),
                str(source),
                [f"{t}.{c}" for t, cols in sorted(withhold.items()) for c in cols],
            ],
        )
        con.execute("commit")
        con.execute("checkpoint pub")
        con.execute("detach pub")
        con.execute("detach src")
    return len(tables)


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def publish_copy(
    source: Path,
    target: Path,
    *,
    withhold: Mapping[str, Sequence[str]] | None = None,
    owner_only: bool = False,
    run_id: str | None = None,
) -> PublishResult:
    """Copy the warehouse ``source`` to ``target`` atomically (see the module docstring).

    ``source`` must not be open for writing by another process (the publish step holds the DuckDB pool). Raises
    :class:`PublishError` (disk full, permissions, ...) with the previous ``target`` untouched."""
    started = time.perf_counter()
    source = Path(source)
    target = Path(target)
    if not source.is_file():
        raise PublishError(f"cannot publish {source}: the warehouse file does not exist")
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in stale_temporaries(target):
        _remove(stale)
    if withhold is None:
        with duckdb.connect(str(source), read_only=True) as con:
            withhold = identifier_columns(con)
    tmp = target.with_name(f"{target.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        n_tables = _copy_database(source, tmp, withhold, run_id)
        os.chmod(tmp, PUBLISHED_MODE_UNBLINDED if owner_only else PUBLISHED_MODE)
        _fsync(tmp)
        os.replace(tmp, target)
        _fsync(target.parent)
    except (duckdb.Error, OSError) as exc:
        _remove(tmp)
        raise PublishError(f"publishing {target} failed, the previous copy is unchanged: {_reason(exc)}") from exc
    except BaseException:
        _remove(tmp)
        raise
    return PublishResult(
        target,
        time.perf_counter() - started,
        target.stat().st_size,
        n_tables,
        {k: tuple(v) for k, v in withhold.items()},
    )


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space left" in text:
        return f"disk full ({text.strip().splitlines()[0] if text.strip() else 'ENOSPC'})"
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


# --------------------------------------------------------------------------------------------- Dagster wiring


def run_config(settings: TrialSettings) -> audit.RunConfig:
    path = settings.randomisation_path
    return audit.RunConfig(
        landing_dir=str(settings.landing),
        warehouse_path=str(settings.warehouse),
        published_path=str(settings.published_path),
        cutoff_date=settings.cutoff,
        unblinded=settings.is_unblinded,
        randomisation_list_path=str(path) if (path is not None and settings.is_unblinded) else None,
        environment=audit.guttrial_environment(),
    )


def check_results(instance: dg.DagsterInstance, run_id: str) -> list[audit.CheckResult]:
    """Every asset check evaluated so far in the run (the last evaluation of each check wins)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    latest: dict[tuple[str, str], audit.CheckResult] = {}
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        key = (evaluation.asset_key.to_user_string(), evaluation.check_name)
        severity = getattr(evaluation.severity, "value", None)
        latest[key] = audit.CheckResult(key[0], key[1], bool(evaluation.passed), severity, evaluation.description)
    return [latest[k] for k in sorted(latest)]


def unblinded_outputs(settings: TrialSettings) -> list[Path]:
    """Every file or folder an unblinded run writes beside its warehouse."""
    wh = settings.warehouse
    return [
        wh,
        wh.with_name(wh.name + ".wal"),
        settings.published_path,
        settings.quality_dir,
        settings.reports_dir,
        wh.parent / f"{wh.stem}_microbiome",
    ]


def terminal_keys(assets: Iterable[dg.AssetsDefinition | dg.AssetSpec]) -> list[dg.AssetKey]:
    """Asset keys no other asset depends on: everything else in the graph is upstream of one of them."""
    assets = list(assets)
    keys: set[dg.AssetKey] = set()
    upstream: set[dg.AssetKey] = set()
    for definition in assets:
        for spec in [definition] if isinstance(definition, dg.AssetSpec) else definition.specs:
            keys.add(spec.key)
            upstream.update(dep.asset_key for dep in spec.deps)
    return sorted(keys - upstream, key=lambda k: k.to_user_string())


def record_start(settings: TrialSettings, run_id: str | None, log) -> None:
    """Write the run's ``started`` audit row (called when the settings resource starts a run).

    An unblinded run aimed at a warehouse whose name does not say ``unblinded`` is refused here, before any step
    and before anything is written to that (blinded) file. Otherwise best effort: if the warehouse is locked by a
    step of another run, the row is written by the publish step (or the failure hook) instead."""
    if settings.is_unblinded:
        check_unblinded_warehouse(settings.warehouse)
    if not run_id:
        return
    try:
        with settings.connect() as con:
            audit.record_run_start(con, run_id, run_config(settings))
    except (duckdb.Error, OSError) as exc:
        if log is not None:
            log.warning(f"audit: could not record the start of run {run_id[:8]}: {_reason(exc)}")


def build_publish_asset(upstream: Iterable[dg.AssetsDefinition | dg.AssetSpec]) -> dg.AssetsDefinition:
    """The last step of the graph: audit the run, then publish the read-only copy (see the module docstring)."""
    deps = terminal_keys(upstream)

    @dg.asset(
        key=PUBLISH_KEY,
        group_name=PUBLISH_GROUP,
        deps=deps,
        kinds={"duckdb", "python"},
        owners=["team:data-engineering"],
        pool=DUCKDB_POOL,
        op_tags={"dagster/priority": PUBLISH_PRIORITY},
        description="Last step of a refresh: records the run in audit.runs (inputs with SHA-256, content hash of "
        "every mart and analysis table, check results) and replaces the analysts' read-only copy "
        "(<warehouse>_published.duckdb) atomically. Runs only when every upstream asset succeeded and no blocking "
        "check failed.",
    )
    def published_warehouse(context: dg.AssetExecutionContext, settings: TrialSettings) -> dg.MaterializeResult:
        run_id = context.run.run_id
        config = run_config(settings)
        checks = check_results(context.instance, run_id)
        with settings.connect() as con:
            started = time.perf_counter()
            outputs = warehouse_hashes(con)
            hash_seconds = time.perf_counter() - started
            inputs = audit.landing_inputs(con, run_id)
            if settings.is_unblinded:
                inputs += audit.randomisation_list_input(settings.randomisation_path)
            audit.record_run_end(
                con,
                run_id,
                config,
                status="succeeded",
                inputs=inputs,
                outputs=outputs,
                checks=checks,
                hash_seconds=hash_seconds,
            )
            con.execute("checkpoint")
            withhold = identifier_columns(con)
        try:
            result = publish_copy(
                settings.warehouse,
                settings.published_path,
                withhold=withhold,
                owner_only=settings.is_unblinded,
                run_id=run_id,
            )
        except PublishError as exc:
            raise dg.Failure(str(exc)) from exc
        restrict_if_unblinded(unblinded_outputs(settings), settings)
        passed, failed = audit.summarise_checks(checks)
        context.log.info(
            f"published {result.path} ({result.size_bytes / 1e6:.1f} MB, {result.tables} tables) in "
            f"{result.seconds:.1f} s; {len(outputs)} output tables hashed in {hash_seconds:.1f} s"
        )
        return dg.MaterializeResult(
            metadata={
                "published_path": dg.MetadataValue.path(str(result.path)),
                "publish_seconds": round(result.seconds, 2),
                "published_bytes": result.size_bytes,
                "tables_copied": result.tables,
                "withheld_columns": ", ".join(f"{t}.{c}" for t, cols in result.withheld.items() for c in cols)
                or "none",
                "output_tables_hashed": len(outputs),
                "hash_seconds": round(hash_seconds, 2),
                "input_files": sum(1 for i in inputs if i["role"] == "landing"),
                "checks_passed": passed,
                "checks_failed": len(failed),
                "audit": "audit.runs / audit.run_inputs / audit.run_outputs / audit.run_checks",
                "blinded": not settings.is_unblinded,
            }
        )

    return published_warehouse


def _root_cause(error) -> str:
    """The innermost error of a Dagster step failure, as ``Class: message`` (first line)."""
    seen = error
    while seen is not None and (seen.cause is not None or seen.context is not None):
        seen = seen.cause or seen.context
    seen = seen or error
    message = (seen.message or "").strip()
    # Dagster's messages repeat the class, sometimes module-qualified: "a.b.SomeError: text".
    prefix = re.match(rf"^(?:[\w.]+\.)?{re.escape(seen.cls_name or '')}:\s*", message)
    if prefix:
        message = message[prefix.end() :]
    return f"{seen.cls_name}: {message.splitlines()[0] if message else ''}".strip()


def failure_lines(instance: dg.DagsterInstance, run_id: str, warehouse: Path) -> list[str]:
    """For the build summary: each failed step with the root cause of its failure (the terminal shows only the
    wrapper), and a plain statement when the cause is a full disk."""
    lines: list[str] = []
    disk_full = False
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    for record in records:
        event = record.event_log_entry.dagster_event
        error = event.step_failure_data.error if event.step_failure_data else None
        if error is None:
            continue
        cause = _root_cause(error)
        disk_full = disk_full or "No space left on device" in cause or "[Errno 28]" in cause
        lines.append(f"  step {event.step_key} failed: {cause[:400]}")
    folder = warehouse.parent
    try:
        free_mb: float | None = shutil.disk_usage(folder).free / 2**20
    except OSError:
        free_mb = None
    free = f"{free_mb:.0f} MB free" if free_mb is not None else "free space unknown"
    if disk_full:
        lines.append(
            f"  DISK FULL in {folder} ({free}): the previous published copy is unchanged; free space and rerun"
        )
    elif lines and free_mb is not None and free_mb < LOW_DISK_MB:
        # e.g. dbt ran out of space: its error is in dbt.log, not in the step's message.
        lines.append(f"  note: only {free} in {folder}; a full disk may be the cause")
    return lines


@dg.failure_hook(required_resource_keys={"settings"})
def audit_failure_hook(context: dg.HookContext) -> None:
    """Mark the run ``failed`` in ``audit.runs`` with the first failing step (best effort: a disk-full failure
    may not be recordable, and then the row stays ``started``)."""
    settings: TrialSettings = context.resources.settings
    try:
        with settings.connect() as con:
            audit.record_run_failure(con, context.run_id, run_config(settings), context.step_key or "?")
    except (duckdb.Error, OSError) as exc:
        context.log.warning(f"audit: could not record the failure of run {context.run_id[:8]}: {_reason(exc)}")
    # A failed unblinded run never reaches the publish step: make what it wrote owner-only here too (files copied
    # with their source's mode, e.g. Data Docs assets, escape the umask).
    with contextlib.suppress(OSError):
        restrict_if_unblinded(unblinded_outputs(settings), settings)
