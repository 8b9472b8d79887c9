"""Benchmark: the whole great-expectations validation of a built warehouse, the way the check steps run it.

Usage::

    .venv/bin/python tests/bench/gx_validation.py [--warehouse data/warehouse.duckdb] [--quality-dir DIR]
        [--suites] [--profile OUT.prof] [--repeat N] [--json]

Works on a copy-free read of the warehouse (quarantine rows are written into a temporary copy only with
``--quarantine``). Every check step (``quality_raw``, ``quality_staging``, ``quality_marts``, one per analysis
asset) is planned from the Dagster definitions exactly as ``orchestration.checks.quality`` plans it; each step
reads its tables, validates every suite and renders its Data Docs. Printed: CPU seconds of the great-expectations
import, and per layer (``--suites``: per suite) the suites, expectations, CPU seconds reading tables, validating
and rendering Data Docs. ``--repeat 2`` runs everything again in the same process (suites already stored and
rendered: the steady state of a nightly refresh). A fresh quality folder is used unless ``--quality-dir`` names one.
"""

import argparse
import cProfile
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # after PYTHONPATH, so an older `expectations` can be measured
    sys.path.append(str(ROOT))


def cpu() -> float:
    return time.process_time()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, default=ROOT / "data" / "warehouse.duckdb")
    parser.add_argument("--quality-dir", type=Path, default=None)
    parser.add_argument("--suites", action="store_true", help="print one line per suite")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of the validation")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print only one JSON line")
    args = parser.parse_args(argv)

    import os

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import duckdb
    import pandas  # imported by everything else anyway: not GX's cost
    import pydantic  # noqa: F401

    started = cpu()
    import great_expectations  # noqa: F401

    import_seconds = cpu() - started

    from expectations import QualityRunner

    try:
        from expectations.runner import read_frame
    except ImportError:  # an older runner (to measure "before"): DuckDB's own conversion

        def read_frame(con: duckdb.DuckDBPyConnection, query: str) -> pandas.DataFrame:
            return con.execute(query).df()

    from orchestration.checks.quality import plan_batches, suite_factories
    from orchestration.definitions import _assets

    factories = suite_factories()
    batches = plan_batches(_assets(), factories)
    scratch = tempfile.TemporaryDirectory(prefix="gx_bench_")  # removed at exit unless --quality-dir is given
    quality_dir = args.quality_dir or Path(scratch.name) / "quality"
    con = duckdb.connect(str(args.warehouse), read_only=True)
    runner = QualityRunner(quality_dir)
    specs_by_layer = {layer: factory(None) for layer, factory in factories.items()}

    profiler = cProfile.Profile() if args.profile else None
    report: dict = {"import_seconds": round(import_seconds, 2), "rounds": []}
    for round_no in range(args.repeat):
        layers: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        suites: list[dict] = []
        if profiler:
            profiler.enable()
        for batch in batches:
            specs = [specs_by_layer[batch.layer][key] for key in sorted(batch.specs)]
            summaries = []
            stats = layers[batch.layer]
            for spec in specs:
                if spec.restricted:
                    continue
                t0 = cpu()
                frame = read_frame(con, spec.query)
                t1 = cpu()
                summary = runner.validate(spec, frame, run_name=f"bench-{round_no}")
                t2 = cpu()
                summaries.append(summary)
                stats["suites"] += 1
                stats["expectations"] += summary.evaluated
                stats["read"] += t1 - t0
                stats["validate"] += t2 - t1
                stats["failed_expectations"] += len(summary.failed)
                suites.append(
                    {
                        "suite": spec.name,
                        "step": batch.name,
                        "rows": len(frame),
                        "expectations": summary.evaluated,
                        "failed": len(summary.failed),
                        "status": summary.status,
                        "read": round(t1 - t0, 3),
                        "validate": round(t2 - t1, 3),
                    }
                )
            t0 = cpu()
            assets = {spec.name: spec.asset for spec in specs}
            runner.build_docs(summaries, layer=batch.layer, assets=assets, blinded=True)
            stats["docs"] += cpu() - t0
            stats["steps"] += 1
        if profiler:
            profiler.disable()
        total = {k: round(sum(v[k] for v in layers.values()), 2) for k in ("suites", "expectations", "read")}
        total.update({k: round(sum(v[k] for v in layers.values()), 2) for k in ("validate", "docs", "steps")})
        report["rounds"].append(
            {
                "layers": {name: {k: round(v, 2) for k, v in stats.items()} for name, stats in layers.items()},
                "total": total,
                "suites": suites,
            }
        )
    if profiler:
        profiler.dump_stats(str(args.profile))

    if args.json:
        print(
            json.dumps({**report, "rounds": [{k: v for k, v in r.items() if k != "suites"} for r in report["rounds"]]})
        )
        return report
    print(f"great-expectations import: {import_seconds:.2f} s CPU")
    for number, result in enumerate(report["rounds"], 1):
        print(f"\nround {number}  (CPU seconds)")
        print(
            f"{'layer':<10}{'steps':>6}{'suites':>8}{'expect.':>9}{'read':>8}{'validate':>10}{'docs':>8}{'failed':>8}"
        )
        rows = [*result["layers"].items(), ("total", {**result["total"], "failed_expectations": 0})]
        for name, s in rows:
            print(
                f"{name:<10}{int(s['steps']):>6}{int(s['suites']):>8}{int(s['expectations']):>9}{s['read']:>8.2f}"
                f"{s['validate']:>10.2f}{s['docs']:>8.2f}{int(s.get('failed_expectations', 0)):>8}"
            )
        t = result["total"]
        print(f"all: {t['read'] + t['validate'] + t['docs'] + import_seconds:.2f} s CPU including the import")
        if args.suites:
            print(f"\n{'suite':<48}{'rows':>8}{'exp':>5}{'fail':>5}{'read':>7}{'valid.':>8}  status")
            for s in sorted(result["suites"], key=lambda s: -s["validate"]):
                print(
                    f"{s['suite']:<48}{s['rows']:>8}{s['expectations']:>5}{s['failed']:>5}{s['read']:>7.3f}"
                    f"{s['validate']:>8.3f}  {s['status']}"
                )
    return report


if __name__ == "__main__":
    main()
