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
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo in the same folder")


def _add_build(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="refresh the warehouse from a landing folder (every asset, headless)")
    p.add_argument("--landing", type=Path, required=True, help="landing folder (see docs/raw_exports.md)")
    p.add_argument("--warehouse", type=Path, default=Path(res.DEFAULT_WAREHOUSE), help="DuckDB warehouse file")
    p.add_argument("--cutoff", type=dt.date.fromisoformat, help="data cut-off date (YYYY-MM-DD)")
    p.add_argument("--unblinded", action="store_true", help="unblind: read the randomisation list (restricted)")
    p.add_argument("--randomisation-list", type=Path, help="restricted randomisation list (unblinded runs only)")
    p.add_argument("--quiet", action="store_true", help="print only the summary")


def _add_alpha(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "alpha",
        help="alpha diversity of any provider's feature table, in mothur's summary.single layout",
        description="Alpha diversity (mothur summary.single calculators) of a BIOM JSON/HDF5, .qza, mothur "
        ".shared or classic TSV feature table. Prints mothur's .groups.summary layout (or the .groups.ave-std"
        ".summary layout with --subsample).",
    )
    p.add_argument("file", type=Path)
    p.add_argument("--format", default="auto", choices=["auto", "biom", "qza", "shared", "tsv"])
    p.add_argument("--label", help="mothur label to use from a multi-label .shared (default 0.03 or the first)")
    p.add_argument("--calc", help="calculators joined by '-', as mothur's calc= (default: the protocol set)")
    p.add_argument(
        "--subsample",
        nargs="?",
        const="smallest",
        help="rarefy: a depth N, or no value for the smallest sample (mothur subsample=T)",
    )
    p.add_argument("--iters", type=int, default=1000, help="subsampling iterations (default 1000)")
    p.add_argument("--seed", type=int, default=19760620, help="random seed (default mothur's 19760620)")
    p.add_argument("--csv", action="store_true", help="CSV instead of mothur's tab-separated layout")


def cmd_alpha(args: argparse.Namespace) -> int:
    from analysis.errors import ContractViolation
    from analysis.microbiome import alpha
    from analysis.readers import read_feature_table

    try:
        table = read_feature_table(args.file, format=args.format, label=args.label)
    except ContractViolation as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    calcs = tuple(args.calc.split("-")) if args.calc else alpha.DEFAULT_CALCS
    label = table.label or "0.03"
    try:
        if args.subsample is None:
            frame = alpha.alpha_diversity(table.counts, table.sample_ids, calcs=calcs)
            text = frame.to_csv() if args.csv else alpha.format_mothur_summary(frame, label=label)
        else:
            size = None if args.subsample == "smallest" else int(args.subsample)
            ave, std = alpha.subsampled_alpha(
                table.counts, table.sample_ids, size=size, iters=args.iters, seed=args.seed, calcs=calcs
            )
            dropped = ave.attrs.get("dropped_samples") or []
            if dropped:
                print(
                    f"note: {len(dropped)} samples below the depth were left out: {', '.join(dropped)}", file=sys.stderr
                )
            if args.csv:
                text = ave.assign(method="ave").to_csv() + std.assign(method="std").to_csv(header=False)
            else:
                text = alpha.format_mothur_ave_std(ave, std, label=label)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from analysis.simulation import generate_trial

    started = time.perf_counter()
    summary = generate_trial(args.out, n_patients=args.patients, seed=args.seed, overwrite=args.overwrite)
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
    _add_alpha(sub)
    args = parser.parse_args(argv)
    handlers = {"demo": cmd_demo, "build": cmd_build, "alpha": cmd_alpha}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
