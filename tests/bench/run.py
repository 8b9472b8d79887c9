"""Benchmarks (`make bench`): load throughput and peak memory, default and large trials.

Each stage runs in a fresh child process so its peak resident memory (``ru_maxrss``) is its own.
Results are printed as a table and written to ``data/bench/<stage>.json`` for comparison across runs.
Speed goals live here, never in timed unit tests.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "data" / "bench"


def run_stage(name: str, code: str) -> dict:
    """Run ``code`` in a child Python; it must print one JSON object on its last line."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read() if proc.stdout else ""
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"stage {name} failed:\n{out}")
    result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    # CPU seconds of the child next to its wall seconds: on a shared, loaded machine wall time mostly measures the
    # other processes, CPU time the stage itself
    result.update(
        stage=name,
        seconds=round(elapsed, 2),
        cpu_seconds=round(usage.ru_utime + usage.ru_stime, 2),
        peak_rss_mib=round(usage.ru_maxrss / 1024, 1),
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    return result


def generate(out: Path, patients: int, extra: str = "") -> dict:
    code = (
        "import json; from pathlib import Path; from analysis.simulation import generate_trial\n"
        f"s = generate_trial(Path({str(out)!r}), n_patients={patients}{extra})\n"
        "print(json.dumps({'summary': str(s)}))"
    )
    return run_stage(f"generate_{patients}", code)


def load(landing: Path, warehouse: Path, label: str) -> dict:
    code = (
        "import json, duckdb; from pathlib import Path; from analysis.ingest import load_family\n"
        f"con = duckdb.connect({str(warehouse)!r})\n"
        "out = {}\n"
        "import time\n"
        "for family in ('crf', 'sequencing', 'metabolomics'):\n"
        "    t = time.perf_counter()\n"
        f"    r = load_family(con, Path({str(landing)!r}), family)\n"
        "    out[family] = {'seconds': round(time.perf_counter() - t, 3), 'rows': r.current_rows,\n"
        "                   'rejected': [o.reason for o in r.rejected]}\n"
        "print(json.dumps(out))"
    )
    result = run_stage(f"load_{label}", code)
    crf_rows = sum(v for k, v in result["crf"]["rows"].items())
    counts = result["sequencing"]["rows"].get("seq_counts", 0)
    intensities = result["metabolomics"]["rows"].get("mtb_intensities", 0)
    result["crf_rows_per_s"] = round(crf_rows / max(result["crf"]["seconds"], 1e-9))
    result["nonzero_counts_per_s"] = round(counts / max(result["sequencing"]["seconds"], 1e-9))
    result["intensities_per_s"] = round(intensities / max(result["metabolomics"]["seconds"], 1e-9))
    result["crf_rows"], result["nonzero_counts"], result["intensities"] = crf_rows, counts, intensities
    return result


def build(landing: Path, warehouse: Path, label: str) -> dict:
    started = time.perf_counter()
    subprocess.run(
        [
            str(Path(sys.executable).parent / "guttrial"),
            "build",
            "--landing",
            str(landing),
            "--warehouse",
            str(warehouse),
            "--quiet",
        ],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return {"stage": f"build_{label}", "seconds": round(time.perf_counter() - started, 2)}


def gx_validation(warehouse: Path) -> dict:
    """Every great-expectations suite of every layer on a built warehouse, as the check steps run them (CPU
    seconds per layer: reading tables, validating, Data Docs; and the GX import). See ``gx_validation.py``."""
    script = Path(__file__).with_name("gx_validation.py")
    code = (
        f"import runpy, sys; sys.argv = ['gx_validation', '--warehouse', {str(warehouse)!r}, '--json']\n"
        f"runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    return run_stage("gx_validation", code)


#: The project's speed standard: `make demo` (after installation) finishes within this on 2 cores.
DEMO_GOAL_SECONDS = 60.0


def timed(name: str, argv: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``argv`` (output discarded); wall seconds and CPU seconds (user + system, with the processes it
    waited for, e.g. the dbt subprocess of a build): on a shared machine the CPU time is the steadier number."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"stage {name} failed: {' '.join(argv)}")
    return {
        "stage": name,
        "seconds": round(time.perf_counter() - started, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
    }


def demo(work: Path, patients: int = 120, iterations: int = 100) -> list[dict]:
    """The steps of `make demo` after installation, each timed: the dbt parse (a fresh one: the Makefile skips it
    while the manifest is newer than the dbt project), the demo generation (run side by side with the parse by
    the Makefile) and `guttrial build` with a Dagster home, as `make demo` runs it. Writes only under ``work``:
    dbt's target folder is redirected there, with the parse made for the build's warehouse path so the build
    reuses its partial parse exactly as after `make dbt-parse`."""
    bin_dir = Path(sys.executable).parent
    warehouse = (work / "demo_warehouse.duckdb").resolve()
    target = work / "dbt_target"
    home = work / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    env = {
        **os.environ,
        "GUTTRIAL_WAREHOUSE": str(warehouse),
        "DBT_TARGET_PATH": str(target),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "GX_ANALYTICS_ENABLED": "false",
        "DAGSTER_HOME": str(home),
        "GUTTRIAL_MICROBIOME_ITERATIONS": str(iterations),
    }
    project = ["--project-dir", str(ROOT / "dbt_project"), "--profiles-dir", str(ROOT / "dbt_project")]
    vars_ = json.dumps({"unblinded": False, "cutoff": ""})
    rows = [
        timed("demo_dbt_parse", [str(bin_dir / "dbt"), "parse", "--quiet", *project, "--vars", vars_], env),
        timed(
            "demo_generate",
            [str(bin_dir / "guttrial"), "demo", "--out", str(work / "demo"), "--patients", str(patients)],
            env,
        ),
        timed(
            "demo_build",
            [
                str(bin_dir / "guttrial"),
                "build",
                "--landing",
                str(work / "demo" / "landing"),
                "--warehouse",
                str(warehouse),
                "--quiet",
            ],
            env,
        ),
    ]
    parse, generate, build_ = rows
    total = max(parse["seconds"], generate["seconds"]) + build_["seconds"]
    rows.append(
        {
            "stage": "demo_total",
            "seconds": round(total, 2),
            "cpu_seconds": round(sum(r["cpu_seconds"] for r in rows), 2),
            "goal_seconds": DEMO_GOAL_SECONDS,
            "within_goal": total <= DEMO_GOAL_SECONDS,
        }
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "demo.json").write_text(json.dumps(rows, indent=2))
    return rows


def metabolomics(injections: int, features: int) -> dict:
    """``prepare`` (with QC drift correction) + prcomp-exact PCA on a simulated injections x features table."""
    code = (
        "import os; os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')\n"
        "from analysis.metabolomics.bench import main\n"
        f"main(['--injections', '{injections}', '--features', '{features}', '--drift'])"
    )
    return run_stage(f"metabolomics_{injections}x{features}", code)


#: Bray-Curtis + PCoA (10 axes) on n samples x 5,000 features: wall-clock goals in seconds
MICROBIOME_BETA_GOAL_SECONDS: dict[int, float] = {1000: 1.0, 5000: 20.0}


def microbiome(work: Path, beta_samples: tuple[int, ...] = (1000, 5000)) -> list[dict]:
    """16S analyses: alpha with CIs vs mothur summary.single and scikit-bio (5,000 x 5,000 .shared, parsing
    included; 20,000 x 5,000 BIOM with peak memory), Bray–Curtis + PCoA at 1,000 (with scikit-bio) and 5,000
    samples, NMDS at 800 samples. See ``analysis.microbiome._bench``."""
    rows = [
        run_stage(
            "microbiome_alpha",
            "import json; from analysis.microbiome._bench import bench_alpha\n"
            f"print(json.dumps(bench_alpha({str(work / 'alpha')!r})))",
        )
    ]
    for n in beta_samples:
        row = run_stage(
            f"microbiome_beta_{n}",
            "import json; from analysis.microbiome._bench import bench_size\n"
            f"print(json.dumps(bench_size({n}, 5000, skbio_max=1000, full_max=2000)))",
        )
        # speed goal: Bray-Curtis + 10-axis PCoA, wall seconds (CPU seconds beside them)
        row["braycurtis_plus_pcoa_s"] = round(row["braycurtis_s"] + row["pcoa10_s"], 3)
        row["braycurtis_plus_pcoa_cpu_s"] = round(row["braycurtis_cpu_s"] + row["pcoa10_cpu_s"], 3)
        row["goal_seconds"] = MICROBIOME_BETA_GOAL_SECONDS.get(n)
        if row["goal_seconds"] is not None:
            row["within_goal"] = row["braycurtis_plus_pcoa_s"] <= row["goal_seconds"]
        rows.append(row)
    rows.append(
        run_stage(
            "microbiome_nmds_800",
            "import json; from analysis.microbiome._bench import bench_nmds\nprint(json.dumps(bench_nmds(800)))",
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-large", action="store_true", help="only the default 120-patient trial")
    parser.add_argument("--large-patients", type=int, default=2000)
    parser.add_argument("--large-asvs", type=int, default=5000)
    parser.add_argument("--mtb-injections", type=int, default=5000, help="metabolomics pipeline bench size")
    parser.add_argument("--mtb-features", type=int, default=10000)
    parser.add_argument("--skip-microbiome", action="store_true", help="skip the 16S alpha/beta/NMDS benchmarks")
    parser.add_argument("--demo-only", action="store_true", help="only the `make demo` timing (speed goal 60 s)")
    args = parser.parse_args()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="guttrial-bench-") as tmp:
        work = Path(tmp)
        rows.extend(demo(work / "make_demo"))
        if args.demo_only:
            _print(rows)
            return
        rows.append(generate(work / "default", 120))
        rows.append(load(work / "default" / "landing", work / "default.duckdb", "default"))
        rows.append(build(work / "default" / "landing", work / "default_build.duckdb", "default"))
        rows.append(gx_validation(work / "default_build.duckdb"))
        if not args.skip_large:
            rows.append(
                generate(
                    work / "large", args.large_patients, f", n_asvs={args.large_asvs}, faecal_samples_per_patient=10"
                )
            )
            rows.append(load(work / "large" / "landing", work / "large.duckdb", "large"))
            with duckdb.connect(str(work / "large.duckdb"), read_only=True) as con:
                shape = con.execute(
                    "select count(distinct (batch_id, sample_id)), count(distinct feature_id) from raw.seq_counts"
                ).fetchone()
            rows[-1]["samples_x_features"] = f"{shape[0]} x {shape[1]}"
        rows.append(metabolomics(args.mtb_injections, args.mtb_features))
        if not args.skip_microbiome:
            rows.extend(microbiome(work))
    _print(rows)


def _print(rows: list[dict]) -> None:
    print(f"{'stage':<18}{'seconds':>9}{'peak MiB':>10}  details")
    for row in rows:
        details = {
            k: v
            for k, v in row.items()
            if k not in {"stage", "seconds", "peak_rss_mib", "crf", "sequencing", "metabolomics"}
        }
        print(f"{row['stage']:<18}{row['seconds']:>9}{row.get('peak_rss_mib', ''):>10}  {json.dumps(details)[:300]}")


if __name__ == "__main__":
    main()
