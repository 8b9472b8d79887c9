"""The ``guttrial`` command line.

``guttrial demo``   writes the seeded demo trial (landing folder, restricted randomisation list, truth).
``guttrial build``  materialises every asset headless through the Dagster definitions the UI uses.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from orchestration import resources as res


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="write the seeded demo trial (landing exports + truth)")
    p.add_argument("--out", type=Path, default=Path("demo"), help="output folder (default: demo)")
    p.add_argument("--patients", type=int, default=120, help="number of randomised patients (default 120)")
    p.add_argument("--seed", type=int, default=20240501, help="random seed (default 20240501)")


def _add_build(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="refresh the warehouse from a landing folder (every asset, headless)")
    p.add_argument("--landing", type=Path, required=True, help="landing folder (see docs/raw_exports.md)")
    p.add_argument("--warehouse", type=Path, default=Path(res.DEFAULT_WAREHOUSE), help="DuckDB warehouse file")
    p.add_argument("--cutoff", type=dt.date.fromisoformat, help="data cut-off date (YYYY-MM-DD)")
    p.add_argument("--unblinded", action="store_true", help="unblind: read the randomisation list (restricted)")
    p.add_argument("--randomisation-list", type=Path, help="restricted randomisation list (unblinded runs only)")
    p.add_argument("--quiet", action="store_true", help="print only the summary")


def cmd_demo(args: argparse.Namespace) -> int:
    from analysis.simulation import generate_trial

    started = time.perf_counter()
    summary = generate_trial(args.out, n_patients=args.patients, seed=args.seed)
    print(f"demo trial written to {args.out.resolve()} in {time.perf_counter() - started:.1f} s")
    print(f"  landing folder:      {(args.out / 'landing').resolve()}")
    print(f"  randomisation list:  {(args.out / 'unblinding' / 'randomisation_list.csv').resolve()} (restricted)")
    print(f"  truth:               {(args.out / 'truth').resolve()}")
    print(f"  {summary}")
    return 0


def _summary(instance, run_id: str, settings: res.TrialSettings) -> tuple[list[str], int]:
    """Lines for the end-of-run summary and the number of failed checks."""
    import dagster as dg

    lines: list[str] = []
    failed_checks = 0
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if not evaluation.passed:
            failed_checks += 1
            lines.append(
                f"  check failed: {evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
                + (f" - {evaluation.description}" if evaluation.description else "")
            )
    if settings.warehouse.exists():
        import duckdb

        with duckdb.connect(str(settings.warehouse), read_only=True) as con:
            have_manifest = con.execute(
                "select count(*) from information_schema.tables where table_schema='raw' and table_name='load_manifest'"
            ).fetchone()[0]
            if have_manifest:
                files = con.execute(
                    "select status, count(*) from raw.load_manifest where load_id = ? group by status order by status",
                    [run_id],
                ).fetchall()
                lines.insert(0, "  files: " + (", ".join(f"{n} {s}" for s, n in files) or "none"))
                rejected = con.execute(
                    "select reason from raw.load_manifest where load_id = ? and status = 'rejected' order by path",
                    [run_id],
                ).fetchall()
                for (reason,) in rejected:
                    lines.append(f"  rejected: {reason}")
            tables = con.execute(
                "select schema_name, table_name from duckdb_tables() order by schema_name, table_name"
            ).fetchall()
            per_layer: dict[str, list[int]] = {}
            for schema, table in tables:
                n_rows = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
                per_layer.setdefault(schema, []).append(n_rows)
            for schema, counts in per_layer.items():
                lines.append(f"  {schema:<13} {len(counts):>3} tables {sum(counts):>12,} rows")
    return lines, failed_checks


def cmd_build(args: argparse.Namespace) -> int:
    if args.unblinded and not args.randomisation_list:
        print("error: --unblinded needs --randomisation-list FILE (the restricted list is never looked up implicitly)")
        return 2
    if args.randomisation_list and not args.unblinded:
        print("error: --randomisation-list is read only by an explicitly --unblinded run")
        return 2
    if not args.landing.is_dir():
        print(f"error: landing folder {args.landing} does not exist")
        return 2
    os.environ[res.ENV_LANDING] = str(args.landing.resolve())
    os.environ[res.ENV_WAREHOUSE] = str(args.warehouse.resolve())
    os.environ[res.ENV_CUTOFF] = args.cutoff.isoformat() if args.cutoff else ""
    os.environ[res.ENV_UNBLINDED] = "true" if args.unblinded else ""
    os.environ[res.ENV_RANDOMISATION_LIST] = str(args.randomisation_list.resolve()) if args.randomisation_list else ""

    import dagster as dg

    from orchestration.definitions import REFRESH_JOB, defs

    settings = res.TrialSettings()
    print(f"building {settings.warehouse} from {settings.landing}")
    print(f"  cut-off: {settings.cutoff or 'none'}; " + ("UNBLINDED run" if settings.is_unblinded else "blinded run"))
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    job = defs.resolve_job_def(REFRESH_JOB)
    started = time.perf_counter()
    result = job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"progress": {"config": {"quiet": args.quiet}}}},
    )
    elapsed = time.perf_counter() - started
    lines, failed_checks = _summary(instance, result.run_id, settings)
    status = "succeeded" if result.success else "FAILED"
    print(f"run {result.run_id[:8]} {status} in {elapsed:.1f} s")
    for line in lines:
        print(line)
    print(f"  failed checks: {failed_checks}")
    print(f"warehouse: {settings.warehouse}")
    return 0 if result.success else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="guttrial", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_demo(sub)
    _add_build(sub)
    args = parser.parse_args(argv)
    handlers = {"demo": cmd_demo, "build": cmd_build}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
