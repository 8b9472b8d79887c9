"""The ``guttrial`` command line.

``guttrial demo``   writes the seeded demo trial (landing folder, restricted randomisation list, truth).
``guttrial build``  materialises every asset headless through the Dagster definitions the UI uses.
``guttrial beta``   distance matrix (PHYLIP as mothur's dist.shared, or CSV) of any provider's feature table.
``guttrial ordinate`` PCoA / NMDS / PCA (CLR) coordinates of a feature table or a PHYLIP distance matrix.
``guttrial pca``    PCA equal to R prcomp of a metabolomics feature table; prints summary(prcomp) importance.
``guttrial endpoints`` prints the efficacy summary (PFS/OS/DOR, ORR/DCR) from the warehouse's ``analysis`` tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from orchestration import resources as res

if TYPE_CHECKING:
    from analysis.readers.tables import FeatureTable


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


def _add_endpoints(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "endpoints",
        help="print the efficacy summary (PFS, OS, DOR, ORR, DCR) from a built warehouse",
        description="Efficacy summary from the warehouse's analysis tables (read-only): per endpoint and group n, "
        "events, median with 95%% CI, 6- and 12-month rates, HR with 95%% CI and log-rank p (unblinded warehouses); "
        "ORR and DCR with Clopper-Pearson CIs and Miettinen-Nurminen differences. A --cutoff other than the one the "
        "tables were built with recomputes the efficacy endpoints from the marts in memory (nothing is written).",
    )
    p.add_argument("--warehouse", type=Path, default=Path(res.DEFAULT_WAREHOUSE), help="DuckDB warehouse file")
    p.add_argument("--cutoff", type=dt.date.fromisoformat, help="data cut-off date (YYYY-MM-DD)")
    p.add_argument("--json", action="store_true", help="the same figures as JSON")


def _stored_config(run: dict | None):
    """The EndpointConfig recorded in analysis.endpoint_run (defaults when absent or unreadable)."""
    import dataclasses
    import json

    from analysis.endpoint_config import DEFAULT_CONFIG, EndpointConfig

    if not run or not run.get("config_json"):
        return DEFAULT_CONFIG
    stored = json.loads(run["config_json"])
    fields = {f.name for f in dataclasses.fields(EndpointConfig)}
    known = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items() if k in fields}
    return dataclasses.replace(DEFAULT_CONFIG, **known)


def cmd_endpoints(args: argparse.Namespace) -> int:
    import duckdb
    import pandas as pd

    from analysis import endpoints as ep
    from orchestration.analysis_io import read_analysis, read_marts, table_exists

    if not args.warehouse.is_file():
        print(f"error: warehouse {args.warehouse} does not exist", file=sys.stderr)
        return 2
    names = ("survival_summary", "survival_comparisons", "response_rates", "response_rate_differences")
    notes: list[str] = []
    with duckdb.connect(str(args.warehouse), read_only=True) as con:
        run: dict | None = None
        if table_exists(con, "analysis", "endpoint_run"):
            rows = con.execute("select * from analysis.endpoint_run").df()
            run = rows.iloc[0].to_dict() if len(rows) else None
        config = _stored_config(run)
        stored_cutoff = None
        if run is not None and not pd.isna(run.get("cutoff_date")):
            stored_cutoff = pd.Timestamp(run["cutoff_date"]).date()
        have_tables = run is not None and all(table_exists(con, "analysis", n) for n in names)
        recompute = not have_tables or (args.cutoff is not None and args.cutoff != stored_cutoff)
        try:
            if recompute:
                if run is not None:
                    blinded = bool(run["blinded"])
                else:
                    arms = con.execute("select distinct arm_code from marts.adsl").fetchall()
                    blinded = {a for (a,) in arms} <= {ep.BLINDED_ARM_CODE}
                cutoff = args.cutoff if args.cutoff is not None else stored_cutoff
                if stored_cutoff is not None and cutoff is not None and cutoff > stored_cutoff:
                    notes.append(
                        f"the marts were built with cut-off {stored_cutoff}: they hold nothing after it, so a later "
                        "cut-off adds no data"
                    )
                marts = read_marts(con, ep.DOMAIN_MARTS["efficacy"])
                tables = ep.compute_efficacy(marts, config, cutoff, blinded)
                source = "recomputed in memory from the marts"
                computed_at = None
                if not have_tables:
                    notes.append("the warehouse has no endpoint tables yet (run `guttrial build`): computed from marts")
            else:
                tables = read_analysis(con, names)
                blinded = bool(run["blinded"])
                cutoff = stored_cutoff
                source = "analysis tables"
                computed_at = pd.Timestamp(run["computed_at"]).isoformat(timespec="seconds") + " UTC"
        except (LookupError, KeyError, ValueError, duckdb.Error) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    figures = ep.efficacy_summary(
        tables["survival_summary"],
        tables["survival_comparisons"],
        tables["response_rates"],
        tables["response_rate_differences"],
        config,
    )
    header = {
        "warehouse": str(args.warehouse.resolve()),
        "cutoff": cutoff.isoformat() if cutoff else None,
        "blinded": blinded,
        "source": source,
        "computed_at": computed_at,
        "ci_transform": config.ci_transform,
        "conf_level": config.conf_level,
        "days_per_month": config.days_per_month,
        "notes": notes,
    }
    if args.json:
        print(ep.as_json({**header, **figures}))
        return 0
    print(f"efficacy summary: {header['warehouse']}")
    print(
        f"  cut-off: {header['cutoff'] or 'none'}; "
        + ("blinded (pooled estimates only)" if blinded else "UNBLINDED (by randomised arm, reference PLACEBO)")
        + f"; source: {source}"
        + (f" ({computed_at})" if computed_at else "")
    )
    print(
        f"  medians in months (days / {config.days_per_month:g}); {config.conf_level:.0%} CIs: KM "
        f"{config.ci_transform} transform (Brookmeyer-Crowley for medians), Clopper-Pearson for rates"
        + ("" if blinded else "; HR (Cox, Wald CI) and log-rank p stratified by randomisation stratum")
        + "; NE = not estimable"
    )
    for note in notes:
        print(f"  note: {note}")
    print()
    print(ep.format_efficacy_summary(figures, config))
    return 0


def _add_pca(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pca",
        help="PCA equal to R prcomp of a metabolomics feature table (generic wide table or vendor export)",
        description="Prepare a metabolomics feature table (the contract's wide features.csv, or an MS-DIAL, Progenesis "
        "QI, XCMS or mwTab export) with the pipeline's recipe, run PCA equal to R prcomp(x, center=TRUE, "
        "scale.=FALSE), print the importance table as summary(prcomp(...)) does, and write scores (pooled QCs "
        "projected), loadings, importance, the prepared matrix and the step log as CSV.",
    )
    p.add_argument("file", type=Path)
    p.add_argument(
        "--transform", default="glog", choices=["none", "log10", "glog"], help="default glog (MetaboAnalyst)"
    )
    p.add_argument("--scaling", default="pareto", choices=["none", "auto", "pareto"], help="default pareto")
    p.add_argument("--impute", default="lod", choices=["lod", "none"], help="lod: 1/5 of the feature's minimum")
    p.add_argument(
        "--normalise", default="pqn", choices=["none", "sum", "median", "pqn"], help="row normalisation (default pqn)"
    )
    p.add_argument("--injections", type=Path, help="injection list (injections.csv) telling samples, QCs, blanks")
    p.add_argument("--ion-mode", choices=["POS", "NEG"], help="ion mode of a Progenesis/XCMS export")
    p.add_argument("--out", type=Path, help="output folder (default: <file stem>_pca)")


def cmd_pca(args: argparse.Namespace) -> int:
    import pandas as pd

    from analysis import safe_csv
    from analysis.errors import ContractViolation
    from analysis.ingest.mtb_vendors import MODE_FROM_NAME_ONLY, detect_export, ion_mode_from_name
    from analysis.metabolomics.pca import format_importance, prcomp
    from analysis.metabolomics.steps import PrepareConfig, prepare
    from analysis.metabolomics.table import MetaboliteTable
    from analysis.metabolomics.vendors import read_vendor_export
    from analysis.readers import read_injection_list, read_metabolomics_table

    if not args.file.is_file():
        print(f"error: {args.file} does not exist", file=sys.stderr)
        return 2
    name = args.file.name.removesuffix(".gz")
    out = args.out or Path(f"{name.rsplit('.', 1)[0]}_pca")
    try:
        listed = read_injection_list(args.injections) if args.injections else None
        vendor = detect_export(args.file)
        if vendor is None:
            table = MetaboliteTable.from_generic(read_metabolomics_table(args.file), listed)
        else:
            mode = args.ion_mode or ion_mode_from_name(args.file.name)
            if mode is None and vendor in MODE_FROM_NAME_ONLY:
                print(
                    f"error: {args.file}: a {vendor} export does not state its ion mode; pass --ion-mode POS|NEG "
                    "(or put pos/neg in the file name)",
                    file=sys.stderr,
                )
                return 2
            options: dict[str, object] = {"ion_mode": mode, "injections": listed}
            table = read_vendor_export(args.file, vendor, **options)
        config = PrepareConfig(
            transform=args.transform, scaling=args.scaling, impute=args.impute, row_normalisation=args.normalise
        )
        prepared, steps = prepare(table, config)
        if prepared.values.shape[1] == 0 or prepared.values.shape[0] < 2:
            trail = ", ".join(f"{r.name} {r.features_after}" for r in steps.itertuples() if r.applied)
            print(
                f"error: {args.file}: {prepared.values.shape[0]} samples x {prepared.values.shape[1]} features left "
                f"after preparation, nothing to analyse (features after each step: {trail})",
                file=sys.stderr,
            )
            return 2
        pca = prcomp(prepared.values, sample_ids=prepared.sample_ids, feature_ids=prepared.feature_keys)
    except (ContractViolation, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_importance(pca))
    out.mkdir(parents=True, exist_ok=True)
    scores = pca.scores_frame().assign(sample_type="SAMPLE", projected=False)
    if len(prepared.qc_values):
        qc = pca.scores_frame(prepared.qc_values, prepared.qc_ids).assign(sample_type="QC", projected=True)
        scores = pd.concat([scores, qc], ignore_index=True)
    scores = scores[["sample_id", "sample_type", "projected", *pca.component_names]]
    loadings = pca.loadings_frame().rename(columns={"feature_id": "feature"})
    names = prepared.features[["ion_mode", "feature_id", "name"]].reset_index(drop=True)
    loadings = pd.concat([loadings.iloc[:, :1], names, loadings.iloc[:, 1:]], axis=1)
    # CSV for people: ids and metabolite names are delivered text, so formula-like cells are neutralised
    safe_csv.to_csv(scores, out / "scores.csv", index=False)
    safe_csv.to_csv(loadings, out / "loadings.csv", index=False)
    safe_csv.to_csv(pca.importance(), out / "importance.csv", index_label="")
    safe_csv.to_csv(
        pd.DataFrame(prepared.values, index=prepared.sample_ids, columns=prepared.feature_keys),
        out / "prepared_matrix.csv",
        index_label="sample_id",
    )
    if len(prepared.qc_values):
        safe_csv.to_csv(
            pd.DataFrame(prepared.qc_values, index=prepared.qc_ids, columns=prepared.feature_keys),
            out / "prepared_qc.csv",
            index_label="sample_id",
        )
    safe_csv.to_csv(steps, out / "steps.csv", index=False)
    print(
        f"\n{len(prepared.sample_ids)} samples x {len(prepared.feature_keys)} features "
        f"(from {table.n_injections} injections x {table.n_features} features; {len(prepared.qc_ids)} QCs projected); "
        f"scores, loadings, importance, prepared matrix and steps in {out}",
        file=sys.stderr,
    )
    return 0


def cmd_alpha(args: argparse.Namespace) -> int:
    from analysis import safe_csv
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
            text = safe_csv.to_csv(frame) if args.csv else alpha.format_mothur_summary(frame, label=label)
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
                text = safe_csv.to_csv(ave.assign(method="ave")) + safe_csv.to_csv(
                    std.assign(method="std"), header=False
                )
            else:
                text = alpha.format_mothur_ave_std(ave, std, label=label)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


def _read_table_or_exit(args: argparse.Namespace) -> FeatureTable | None:
    """The feature table of ``args.file`` (``--format``, ``--label``), or None after printing the error."""
    from analysis.errors import ContractViolation
    from analysis.readers import read_feature_table

    try:
        return read_feature_table(args.file, format=args.format, label=args.label, allow_relative=True)
    except (ContractViolation, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def _write_text(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8", newline="\n")


def _add_beta(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "beta",
        help="beta-diversity distance matrix of any provider's feature table (PHYLIP as mothur, or CSV)",
        description="Pairwise distances between the samples of a BIOM JSON/HDF5, .qza, mothur .shared or classic "
        "TSV feature table: Bray-Curtis (mothur braycurtis, vegan bray), Jaccard on presence/absence (mothur "
        "jclass) or Aitchison (Euclidean on clr(counts + pseudocount)). Writes mothur's dist.shared PHYLIP "
        "layout (square, 6 decimals; --lt for mothur's default lower triangle) or, with --csv, a square CSV.",
    )
    p.add_argument("file", type=Path)
    p.add_argument("--metric", default="braycurtis", choices=["braycurtis", "jaccard", "aitchison"])
    p.add_argument("--format", default="auto", choices=["auto", "biom", "qza", "shared", "tsv"])
    p.add_argument("--label", help="mothur label to use from a multi-label .shared (default 0.03 or the first)")
    p.add_argument("--pseudocount", type=float, default=1.0, help="Aitchison pseudocount (default 1)")
    p.add_argument("--lt", action="store_true", help="lower-triangular PHYLIP (mothur's default output=lt)")
    p.add_argument("--csv", action="store_true", help="square CSV (full precision) instead of PHYLIP")
    p.add_argument("--out", type=Path, help="output file (default: standard output)")


def cmd_beta(args: argparse.Namespace) -> int:
    import tempfile

    from analysis.microbiome.beta import beta_diversity, write_phylip, write_square_csv

    table = _read_table_or_exit(args)
    if table is None:
        return 2
    kwargs = {"pseudocount": args.pseudocount} if args.metric == "aitchison" else {}
    try:
        dist = beta_diversity(args.metric, table.counts, table.sample_ids, **kwargs)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="guttrial-beta-") as tmp:
        path = Path(tmp) / "out"
        try:
            if args.csv:
                write_square_csv(dist, path)
            else:
                write_phylip(dist, path, lower_triangle=args.lt)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        _write_text(path.read_text(encoding="utf-8"), args.out)
    return 0


def _add_ordinate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ordinate",
        help="PCoA, NMDS or PCA (CLR) coordinates of a feature table or a PHYLIP distance file",
        description="Ordination of a feature table (any reader format) or of a PHYLIP distance matrix (--format "
        "phylip, e.g. from `guttrial beta` or mothur dist.shared): PCoA (scikit-bio convention; --lingoes for "
        "mothur's pcoa), NMDS (numpy SMACOF, Kruskal stress-1, several seeded starts) or PCA of clr(counts + 1) "
        "(prcomp). Writes sample coordinates as CSV; the per-axis eigenvalues and proportions explained (or the "
        "NMDS stress) go to <out>.axes.csv, or to standard error as '#' lines when writing to standard output.",
    )
    p.add_argument("file", type=Path)
    p.add_argument("--method", default="pcoa", choices=["pcoa", "nmds", "pca"])
    p.add_argument("--metric", default="braycurtis", choices=["braycurtis", "jaccard", "aitchison"])
    p.add_argument("--format", default="auto", choices=["auto", "biom", "qza", "shared", "tsv", "phylip"])
    p.add_argument("--label", help="mothur label to use from a multi-label .shared (default 0.03 or the first)")
    p.add_argument("--axes", type=int, default=None, help="axes to write (default: 2 for NMDS, else all)")
    p.add_argument("--lingoes", action="store_true", help="PCoA with mothur's Lingoes correction")
    p.add_argument("--starts", type=int, default=4, help="NMDS starts (default 4, the first from PCoA)")
    p.add_argument("--seed", type=int, default=0, help="NMDS random seed (default 0)")
    p.add_argument("--engine", default="smacof", choices=["smacof", "sklearn"], help="NMDS implementation")
    p.add_argument("--out", type=Path, help="coordinates CSV (default: standard output)")


def _is_phylip(path: Path) -> bool:
    try:
        with path.open("r", encoding="utf-8") as fh:
            first = fh.readline().strip()
    except (OSError, UnicodeDecodeError):
        return False
    return first.isdigit()


def cmd_ordinate(args: argparse.Namespace) -> int:
    from analysis import safe_csv
    from analysis.microbiome.beta import beta_diversity, read_phylip
    from analysis.microbiome.ordination import nmds, pca_clr, pcoa

    if not args.file.is_file():
        print(f"error: {args.file} does not exist", file=sys.stderr)
        return 2
    phylip = args.format == "phylip" or (args.format == "auto" and _is_phylip(args.file))
    if phylip and args.method == "pca":
        print("error: PCA needs a feature table (counts), not a distance matrix", file=sys.stderr)
        return 2
    try:
        if phylip:
            data = read_phylip(args.file)
        else:
            table = _read_table_or_exit(args)
            if table is None:
                return 2
            data = None if args.method == "pca" else beta_diversity(args.metric, table.counts, table.sample_ids)
        if args.method == "pcoa":
            result = pcoa(data, correction="lingoes" if args.lingoes else None)
        elif args.method == "nmds":
            result = nmds(data, n_components=args.axes or 2, n_starts=args.starts, seed=args.seed, engine=args.engine)
        else:
            result = pca_clr(table.counts, table.sample_ids, feature_ids=table.feature_ids)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    frame = result.to_frame()
    if args.axes:
        frame = frame.iloc[:, : args.axes]
    axes = result.axes_frame().head(frame.shape[1])
    if result.stress is not None:
        axes["stress"] = result.stress
    _write_text(safe_csv.to_csv(frame, float_format="%.10g"), args.out)
    if args.out is not None:
        axes_path = args.out.with_name(args.out.stem + ".axes.csv")
        safe_csv.to_csv(axes, axes_path, index=False, float_format="%.10g")
        print(f"wrote {args.out} and {axes_path}", file=sys.stderr)
    else:
        for line in axes.to_csv(index=False, float_format="%.10g").splitlines():
            print(f"# {line}", file=sys.stderr)
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
            # A WARN-severity failure (e.g. a quality warning whose rows went to quality.quarantine) blocks
            # nothing: list it, but do not count it as a failed check.
            warning = evaluation.severity == dg.AssetCheckSeverity.WARN
            failed_checks += 0 if warning else 1
            lines.append(
                f"  check {'warning' if warning else 'failed'}: "
                f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
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
                "select schema_name, table_name from duckdb_tables() "
                "union all select schema_name, view_name from duckdb_views() where not internal "
                "order by 1, 2"
            ).fetchall()
            per_layer: dict[str, list[int]] = {}
            for schema, table in tables:
                n_rows = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
                per_layer.setdefault(schema, []).append(n_rows)
            for schema, counts in per_layer.items():
                lines.append(f"  {schema:<13} {len(counts):>3} tables/views {sum(counts):>12,} rows")
            from orchestration.audit import summary_line

            audit_line = summary_line(con, run_id)
            if audit_line:
                lines.append(audit_line)
            from expectations.quarantine import summary_line as quality_line

            quality = quality_line(con, run_id)
            if quality:
                lines.append(quality)
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
    if args.unblinded and "unblinded" not in args.warehouse.name.lower():
        # Refused before anything runs, so the blinded file is not even opened (the UI path is refused when the
        # settings resource starts, see orchestration/publish.py record_start).
        example = args.warehouse.with_name(args.warehouse.stem + "_unblinded.duckdb")
        print(
            f"error: refusing to unblind into {args.warehouse}: an unblinded build writes its own warehouse file "
            f"whose name contains 'unblinded' (e.g. {example})"
        )
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
    import uuid

    from orchestration.headless import fast_event_log

    started = time.perf_counter()
    run_id = str(uuid.uuid4())
    # In-process executor: one step at a time (every step that touches the warehouse holds DuckDB's single writer
    # lock anyway); the run's SQLite event log in $DAGSTER_HOME skips its per-event checkpoint (headless.py).
    with fast_event_log(instance, run_id):
        result = job.execute_in_process(
            instance=instance,
            run_id=run_id,
            raise_on_error=False,
            run_config={"loggers": {"progress": {"config": {"quiet": args.quiet}}}},
        )
    elapsed = time.perf_counter() - started
    lines, failed_checks = _summary(instance, result.run_id, settings)
    if not result.success:
        from orchestration.publish import failure_lines

        lines = failure_lines(instance, result.run_id, settings.warehouse) + lines
    status = "succeeded" if result.success else "FAILED"
    print(f"run {result.run_id[:8]} {status} in {elapsed:.1f} s")
    for line in lines:
        print(line)
    print(f"  failed checks: {failed_checks}")
    for line in _output_paths(settings):
        print(line)
    return 0 if result.success else 1


def _output_paths(settings: res.TrialSettings) -> list[str]:
    """Where the run's outputs are, for the last lines of the build summary (only those that exist)."""
    lines = [f"warehouse: {settings.warehouse}"]
    if settings.published_path.exists():
        lines.append(f"published read-only copy (for analysts): {settings.published_path}")
    if settings.data_docs_index.exists():
        lines.append(f"data docs (quality reports): {settings.data_docs_index}")
    reports = sorted(settings.reports_dir.glob("*/index.html")) if settings.reports_dir.is_dir() else []
    if reports:
        lines.append(f"trial report: {reports[-1]}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="guttrial", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_demo(sub)
    _add_build(sub)
    _add_alpha(sub)
    _add_beta(sub)
    _add_ordinate(sub)
    _add_pca(sub)
    _add_endpoints(sub)
    args = parser.parse_args(argv)
    handlers = {
        "demo": cmd_demo,
        "build": cmd_build,
        "alpha": cmd_alpha,
        "beta": cmd_beta,
        "ordinate": cmd_ordinate,
        "endpoints": cmd_endpoints,
        "pca": cmd_pca,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
