"""The report's omics sections (issue 8): microbiome, metabolomics and integration figures.

Warehouses: the shared full demo warehouses (``_warehouse.full_demo_warehouse``: 30 patients, the endpoint,
microbiome, metabolomics and report assets run on the shared raw + dbt marts; blinded, and an unblinded twin with
``marts.adsl.arm_code`` filled from the restricted randomisation list), built once per session and opened
read-only; the section figures are built once per module (fixtures ``blinded`` / ``unblinded``). Checked against
the warehouse tables and two oracles: R ``survival::coxph`` (Cox HRs of baseline Shannon vs PFS, 1e-6) and vegan
``ordiellipse`` (the 95 % ellipses); both skipped without R.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import matplotlib.text
import numpy as np
import pandas as pd
import pytest
from _warehouse import full_demo_warehouse
from matplotlib.collections import PathCollection, PolyCollection

from analysis.report import integration, metabolomics, microbiome, style
from analysis.report.figure import ReportContext, ReportFigure, ReportTable

pytestmark = pytest.mark.slow

RSCRIPT = shutil.which("Rscript") or ("/usr/bin/Rscript" if Path("/usr/bin/Rscript").exists() else None)
CUTOFF = dt.date(2025, 8, 31)
SECTIONS = (microbiome, metabolomics, integration)
#: Arm strings that must never appear in a blinded figure (texts, legends, SVG) or table.
ARM_TEXT = re.compile(r"capsule|placebo|\barms?\b", re.IGNORECASE)
ARM_VALUES = re.compile(r"capsule\b|placebo", re.IGNORECASE)
BLINDED_SLUGS = {
    "mb_alpha_by_visit",
    "mb_alpha_tests",
    "mb_pcoa_braycurtis",
    "mb_nmds_braycurtis",
    "mb_pca_clr",
    "mb_top_genera_samples",
    "mb_top_genera_groups",
    "mb_rarefaction_curves",
    "mb_da_volcano",
    "mb_da_effects",
    *(f"mtb_{kind}_{m}" for kind in ("pca_scores", "pca_loadings", "volcano", "top_kegg") for m in ("faeces", "serum")),
    "mtb_top_kegg",
    "mtb_qc_rsd",
    "int_genus_metabolite_heatmap",
    "int_diversity_pfs_km",
    "int_diversity_pfs_cox",
}
UNBLINDED_ONLY = {"mb_da_volcano_arm", "mb_da_effects_arm"}


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def blinded_wh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return full_demo_warehouse(tmp_path_factory).warehouse


@pytest.fixture(scope="module")
def unblinded_wh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return full_demo_warehouse(tmp_path_factory, unblinded=True).warehouse


def context(unblinded: bool) -> ReportContext:
    return ReportContext(cutoff=CUTOFF, unblinded=unblinded, run_date=dt.date(2025, 9, 1))


def build_all(path: Path, unblinded: bool) -> dict[str, ReportFigure | ReportTable]:
    with duckdb.connect(str(path), read_only=True) as con:
        items = [item for section in SECTIONS for item in section.figures(con, context(unblinded))]
    slugs = [i.slug for i in items]
    assert len(slugs) == len(set(slugs)), "slugs must be unique"
    return {i.slug: i for i in items}


@pytest.fixture(scope="module")
def blinded(blinded_wh: Path) -> dict[str, ReportFigure | ReportTable]:
    return build_all(blinded_wh, unblinded=False)


@pytest.fixture(scope="module")
def unblinded(unblinded_wh: Path) -> dict[str, ReportFigure | ReportTable]:
    return build_all(unblinded_wh, unblinded=True)


def read(path: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).df()


def figure_texts(fig: object) -> list[str]:
    """Every text of a figure: titles, labels, tick labels, annotations, legend entries and titles."""
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]  # type: ignore[attr-defined]


def points(ax: object, gid: str = "points") -> int:
    return sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection) and c.get_gid() == gid)  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------------ every figure


def test_every_figure_is_built_with_the_mandatory_caption(
    blinded: dict[str, ReportFigure | ReportTable], unblinded: dict[str, ReportFigure | ReportTable]
) -> None:
    assert set(blinded) == BLINDED_SLUGS
    assert set(unblinded) == BLINDED_SLUGS | UNBLINDED_ONLY
    for items, ctx in ((blinded, context(False)), (unblinded, context(True))):
        for item in items.values():
            caption = item.caption
            assert "Population: " in caption and re.search(r"; n = \d", caption), (item.slug, caption)
            assert ctx.cutoff_text in caption and ctx.blinding_text in caption, (item.slug, caption)
            assert item.section in {"microbiome", "metabolomics", "integration"}
            if isinstance(item, ReportFigure):
                assert item.figure.axes, item.slug
                # every panel shows something (a risk table holds texts only)
                assert all(ax.has_data() or ax.texts for ax in item.figure.axes), f"empty axes in {item.slug}"
            else:
                assert len(item.frame), item.slug


def test_blinded_output_carries_no_arm(
    blinded: dict[str, ReportFigure | ReportTable], tmp_path_factory: pytest.TempPathFactory
) -> None:
    # the SVG files the blinded refresh published (same warehouse, same figure code): drawing the figures again here
    # would only repeat the report asset's work
    published = full_demo_warehouse(tmp_path_factory).report_index.parent / "figures"
    for slug, item in blinded.items():
        assert not ARM_VALUES.search(item.caption), slug
        if isinstance(item, ReportTable):
            assert not any(ARM_TEXT.search(str(c)) for c in item.frame.columns), slug
            text = item.frame.astype(str).to_csv(index=False)
            assert not ARM_VALUES.search(text), slug
            continue
        hits = [t for t in figure_texts(item.figure) if ARM_TEXT.search(t)]
        assert not hits, (slug, hits)
        assert not any(ARM_TEXT.search(f"{k} {v}") for k, v in item.key_values.items()), slug
        svg = (published / f"{slug}.svg").read_text(encoding="utf-8")
        # SVG text stays <text> (style: svg.fonttype none), so this sees every label the reader sees
        texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
        assert texts, slug
        assert not [t for t in texts if ARM_TEXT.search(t)], slug
        assert not ARM_VALUES.search(svg), slug


def test_unblinded_output_shows_the_arms(unblinded: dict[str, ReportFigure | ReportTable]) -> None:
    labels = {style.ARM_LABELS[a] for a in ("CAPSULE", "PLACEBO")}
    for slug in (
        "mb_alpha_by_visit",
        "mb_pcoa_braycurtis",
        "mb_top_genera_samples",
        "mtb_pca_scores_faeces",
        "int_diversity_pfs_km",
    ):
        texts = " | ".join(figure_texts(unblinded[slug].figure))
        assert all(label in texts for label in labels), slug


# ------------------------------------------------------------------------------------------------ microbiome


def test_top_genera_shares_sum_to_one_and_match_a_direct_computation(blinded_wh: Path) -> None:
    with duckdb.connect(str(blinded_wh), read_only=True) as con:
        shares = microbiome.read_genus_shares(con, context(False))
    assert "arm" not in shares.columns
    per_sample = shares.groupby("sample_id")["share"].sum()
    np.testing.assert_allclose(per_sample.to_numpy(), 1.0, rtol=0, atol=1e-12)
    assert shares["genus"].nunique() == microbiome.TOP_GENERA + 1 and "Other" in set(shares["genus"])
    # the same samples as the microbiome pipeline (one library per specimen)
    alpha = read(blinded_wh, "select sample_id, nseqs from analysis.alpha_diversity")
    assert set(per_sample.index) == set(alpha["sample_id"])
    # one sample by hand: deepest library, reads per genus / library reads, top genera from the mean shares
    counts = read(
        blinded_wh,
        "select c.batch_id, c.sample_id as library_id, c.specimen_barcode, c.read_count, x.genus "
        "from marts.taxa_counts c left join marts.taxonomy x using (batch_id, feature_id) where c.read_count > 0",
    )
    lib = counts.groupby(["specimen_barcode", "batch_id", "library_id"], as_index=False)["read_count"].sum()
    lib = lib.sort_values(["specimen_barcode", "read_count", "batch_id"], ascending=[True, False, True])
    lib = lib.drop_duplicates("specimen_barcode")
    kept = counts.merge(lib[["batch_id", "library_id"]], on=["batch_id", "library_id"])
    rel = (
        kept.groupby(["specimen_barcode", "genus"], dropna=False)["read_count"].sum()
        / kept.groupby("specimen_barcode")["read_count"].sum()
    )
    rel = rel.rename("share").reset_index()
    mean = rel.dropna(subset=["genus"]).groupby("genus")["share"].sum().sort_values(ascending=False)
    top = list(mean.index[: microbiome.TOP_GENERA])
    assert set(shares["genus"]) - {"Other"} == set(top)
    sample = sorted(per_sample.index)[len(per_sample) // 2]
    mine = rel[rel["specimen_barcode"] == sample]
    expected = mine[mine["genus"].isin(top)].set_index("genus")["share"]
    expected["Other"] = 1.0 - expected.sum()
    got = shares[shares["sample_id"] == sample].set_index("genus")["share"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False, atol=1e-12, rtol=0)
    assert int(alpha.set_index("sample_id").loc[sample, "nseqs"]) == int(
        lib.set_index("specimen_barcode").loc[sample, "read_count"]
    )


def test_stacked_bars_draw_one_bar_per_sample(blinded: dict, blinded_wh: Path) -> None:
    fig = blinded["mb_top_genera_samples"].figure
    n_samples = len(read(blinded_wh, "select sample_id from analysis.alpha_diversity"))
    bars = [c for ax in fig.axes for c in ax.collections if isinstance(c, PolyCollection)]
    genera = blinded["mb_top_genera_samples"].key_values["genera shown"].split(", ")
    assert {c.get_gid() for c in bars} == {f"bar:{g}" for g in [*genera, "Other"]}
    per_genus = pd.Series([len(c.get_paths()) for c in bars], index=[c.get_gid() for c in bars]).groupby(level=0).sum()
    assert (per_genus == n_samples).all()
    # stacked heights of every sample end at 1
    tops = np.concatenate(
        [np.array([p.vertices[:, 1].max() for p in c.get_paths()]) for c in bars if c.get_gid() == "bar:Other"]
    )
    np.testing.assert_allclose(tops, 1.0, atol=1e-12)


@pytest.mark.parametrize("slug", list(microbiome.ORDINATIONS))
def test_ordination_caption_points_and_stress(
    slug: str, blinded: dict, unblinded: dict, blinded_wh: Path, unblinded_wh: Path
) -> None:
    method, metric, _ = microbiome.ORDINATIONS[slug]
    for items, path, ctx in ((blinded, blinded_wh, context(False)), (unblinded, unblinded_wh, context(True))):
        item = items[slug]
        where = f"method = '{method}' and metric = '{metric}'"
        n = len(read(path, f"select * from analysis.ordination_coordinates where {where}"))
        panels = [ax for ax in item.figure.axes if points(ax)]
        assert len(panels) == (2 if ctx.unblinded else 1)
        assert all(points(ax) == n for ax in panels)  # every sample once per panel
        assert sum(1 for ax in panels for line in ax.lines if line.get_gid() == "ellipse") >= 2
        tests = read(path, "select * from analysis.beta_group_tests where test = 'PERMANOVA' and visit = 'ALL'")
        tests = tests[tests["metric"] == metric]
        factors = {"visit", "responder"} | ({"arm"} if ctx.unblinded else set())
        assert set(tests["factor"]) == factors
        for r in tests.itertuples():
            stat = f"F = {r.statistic:.3f}, R² = {r.r2:.4f}, p = {r.p_value:.3f}"
            assert stat in item.caption, (slug, r.factor, item.caption)
            assert f"{int(r.permutations)} permutations" in item.caption
        if method == "nmds":
            stress = read(path, "select stress from analysis.ordination_axes where method = 'nmds'")["stress"].iloc[0]
            assert f"stress (Kruskal stress-1, 2 dimensions) = {stress:.4f}" in item.caption
            assert float(item.key_values["NMDS stress"]) == pytest.approx(stress, abs=5e-5)
        else:
            assert "stress" not in item.caption


def test_alpha_figure_plots_every_rarefied_sample_and_the_kruskal_p(blinded: dict, blinded_wh: Path) -> None:
    item = blinded["mb_alpha_by_visit"]
    n = len(read(blinded_wh, "select * from analysis.alpha_diversity_rarefied"))
    assert [points(ax) for ax in item.figure.axes] == [n] * len(microbiome.ALPHA_INDICES)
    kw = read(
        blinded_wh,
        "select index, p_value from analysis.alpha_group_tests where source = 'rarefied' and factor = 'visit' "
        "and test = 'kruskal'",
    ).set_index("index")["p_value"]
    for index, ax in zip(microbiome.ALPHA_INDICES, item.figure.axes, strict=True):
        assert f"p = {microbiome.fmt_p(kw[index])}" in ax.get_title(loc="left")


def test_volcano_marks_the_significant_genera(blinded: dict, blinded_wh: Path) -> None:
    da = read(
        blinded_wh,
        "select * from analysis.differential_abundance where analysis = 'responder_pooled' and rank = 'genus'",
    )
    item = blinded["mb_da_volcano"]
    ax = item.figure.axes[0]
    assert points(ax) == len(da)
    n_sig = int((da["q_value"] < microbiome.Q_THRESHOLD).sum())
    assert item.key_values[f"responder_pooled: genera with q < {microbiome.Q_THRESHOLD:g}"] == f"{n_sig} of {len(da)}"
    labelled = {t.get_text().replace("\n", " ") for t in ax.texts}
    top = da[da["q_value"] < microbiome.Q_THRESHOLD].nsmallest(8, "q_value")["taxon"]
    assert labelled == set(top)


# ------------------------------------------------------------------------------------------------ metabolomics


@pytest.mark.parametrize("matrix", ["FAECES", "SERUM"])
def test_pca_scores_show_every_sample_and_qc(matrix: str, blinded: dict, blinded_wh: Path) -> None:
    scores = read(
        blinded_wh, f"select * from analysis.metabolomics_pca_scores where matrix = '{matrix}' and scope = 'ALL'"
    )
    fig = blinded[f"mtb_pca_scores_{matrix.lower()}"].figure
    top, drift = fig.axes[0], fig.axes[-1]
    assert points(top) == int((scores["sample_type"] == "SAMPLE").sum())
    assert points(top, "qc") == int((scores["sample_type"] == "QC").sum()) > 0
    # the drift panel: every injection once (samples as points, QCs as one line per batch)
    qc_points = sum(len(line.get_xdata()) for line in drift.lines)
    assert qc_points + sum(len(c.get_offsets()) for c in drift.collections) == len(scores)


def test_metabolite_volcano_and_top_kegg(blinded: dict, unblinded: dict, blinded_wh: Path) -> None:
    diff = read(blinded_wh, "select * from analysis.differential_metabolites where matrix = 'FAECES'")
    per_visit = diff[(diff["analysis"] == "visit_vs_baseline") & diff["visit"].notna()]
    ax = blinded["mtb_volcano_faeces"].figure.axes[0]
    assert points(ax) == int((per_visit["lmm_log2fc"].notna() & per_visit["lmm_q"].notna()).sum())
    table = blinded["mtb_top_kegg"].frame
    assert table["KEGG"].str.fullmatch(r"C\d{5}(;C\d{5})*").all()
    assert table.groupby("matrix").size().max() <= metabolomics.TOP_KEGG
    assert (table.groupby("matrix")["best q"].apply(lambda s: s.is_monotonic_increasing)).all()
    assert "arm × visit q (joint)" in unblinded["mtb_top_kegg"].frame.columns
    assert len(blinded["mtb_top_kegg_faeces"].figure.axes) == 2  # one dot panel + colour bar
    assert len(unblinded["mtb_top_kegg_faeces"].figure.axes) == 3  # + the arm x visit panel


def test_qc_rsd_figure_reports_the_medians(blinded: dict, blinded_wh: Path) -> None:
    rsd = read(blinded_wh, "select * from analysis.metabolomics_qc_rsd where matrix = 'SERUM'")
    key = blinded["mtb_qc_rsd"].key_values
    assert key["serum median QC RSD after drift correction"] == f"{rsd['qc_rsd_after'].median():.1f} %"
    assert rsd["qc_rsd_after"].median() < rsd["qc_rsd_before"].median()


# ------------------------------------------------------------------------------------------------ integration


def test_heatmap_marks_equal_the_significant_pairs(blinded: dict, blinded_wh: Path) -> None:
    corr = read(blinded_wh, "select * from analysis.metabolite_genus_correlations")
    fig = blinded["int_genus_metabolite_heatmap"].figure
    for matrix, ax in zip([m for m in ("FAECES", "SERUM") if (corr["matrix"] == m).any()], fig.axes, strict=False):
        rho, q = integration.heatmap_matrix(corr, matrix)
        sub = corr[(corr["matrix"] == matrix) & corr["genus_differential"]]
        assert set(rho.index) == set(sub["genus"])
        assert rho.shape[1] == min(sub["feature"].nunique(), integration.MAX_HEATMAP_METABOLITES)
        marks = [t for t in ax.texts if t.get_gid() == "mark"]
        assert len(marks) == int((q.to_numpy(float) < 0.05).sum())
        assert ax.images[0].get_array().shape == rho.shape


@pytest.fixture(scope="module")
def pfs_data(blinded_wh: Path) -> pd.DataFrame:
    alpha = read(blinded_wh, "select * from analysis.alpha_diversity")
    adtte = read(blinded_wh, "select * from analysis.adtte")
    return integration.shannon_pfs_data(alpha, adtte)


def test_baseline_shannon_tertiles(pfs_data: pd.DataFrame, blinded_wh: Path, blinded: dict) -> None:
    base = read(blinded_wh, "select subject_id, shannon from analysis.alpha_diversity where visit = 'BASELINE'")
    pfs = read(blinded_wh, "select subject_id from analysis.adtte where PARAMCD = 'PFS'")
    assert set(pfs_data["subject_id"]) == set(base["subject_id"]) & set(pfs["subject_id"])
    assert pfs_data["subject_id"].is_unique
    sizes = pfs_data["tertile"].value_counts().reindex(list(integration.TERTILES))
    n = len(pfs_data)
    assert sizes.sum() == n and sizes.max() - sizes.min() <= 1  # continuous Shannon: no ties at the cut points
    cuts = np.quantile(pfs_data["shannon"], [1 / 3, 2 / 3])  # R quantile type 7
    expected = [
        (pfs_data["shannon"] <= cuts[0]).sum(),
        ((pfs_data["shannon"] > cuts[0]) & (pfs_data["shannon"] <= cuts[1])).sum(),
        (pfs_data["shannon"] > cuts[1]).sum(),
    ]
    assert sizes.tolist() == expected
    low, high = pfs_data.groupby("tertile")["shannon"].agg(["min", "max"]).loc[list(integration.TERTILES)].T.to_numpy()
    assert (high[:-1] < low[1:]).all()  # ordered, non-overlapping
    caption = blinded["int_diversity_pfs_km"].caption
    assert f"tertiles {'/'.join(map(str, sizes))}" in caption
    assert f"n = {n} patients ({int(pfs_data['event'].sum())} PFS events" in caption


R_COX = r"""
suppressMessages(library(survival))
d <- read.csv(commandArgs(TRUE)[1])
d$tertile <- factor(d$tertile, levels = c("T1 (lowest)", "T2", "T3 (highest)"))
out <- function(fit, model) {
  s <- summary(fit)$coefficients; ci <- summary(fit, conf.int = 0.95)$conf.int
  data.frame(model = model, term = rownames(s), coef = s[, "coef"], se = s[, "se(coef)"], hr = ci[, "exp(coef)"],
             lcl = ci[, "lower .95"], ucl = ci[, "upper .95"], p = s[, "Pr(>|z|)"])
}
r <- rbind(out(coxph(Surv(time, event) ~ shannon, data = d, ties = "efron"), "continuous"),
           out(coxph(Surv(time, event) ~ tertile, data = d, ties = "efron"), "tertiles"))
write.csv(r, stdout(), row.names = FALSE)
"""


@pytest.mark.skipif(RSCRIPT is None, reason="Rscript not installed (apt-get install r-base-core r-cran-survival)")
def test_cox_hazard_ratios_equal_r_coxph(pfs_data: pd.DataFrame, tmp_path: Path, blinded: dict) -> None:
    data_csv = tmp_path / "pfs.csv"
    pfs_data[["time", "event", "shannon", "tertile"]].to_csv(data_csv, index=False)
    script = tmp_path / "cox.R"
    script.write_text(R_COX)
    proc = subprocess.run([RSCRIPT, str(script), str(data_csv)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and "survival" in proc.stderr and "no package" in proc.stderr.lower():
        pytest.skip("R package survival not installed (apt-get install r-cran-survival)")
    assert proc.returncode == 0, proc.stderr
    from io import StringIO

    ref = pd.read_csv(StringIO(proc.stdout))
    mine = integration.cox_table(pfs_data, context(False))
    assert blinded["int_diversity_pfs_cox"].frame[["hr", "lcl", "ucl"]].to_numpy() == pytest.approx(
        mine[["hr", "lcl", "ucl"]].to_numpy(), rel=1e-12
    )
    assert len(ref) == len(mine) == 3
    for col in ("coef", "se", "hr", "lcl", "ucl"):
        np.testing.assert_allclose(mine[col].to_numpy(float), ref[col].to_numpy(float), rtol=1e-6, err_msg=col)
    np.testing.assert_allclose(mine["p"].to_numpy(float), ref["p"].to_numpy(float), rtol=1e-5)
    hr = mine.iloc[0]
    assert f"HR {hr['hr']:.3f} (95 % CI {hr['lcl']:.3f}–{hr['ucl']:.3f})" in blinded["int_diversity_pfs_km"].caption


def test_unblinded_cox_adds_the_arm_adjusted_model(unblinded: dict) -> None:
    cox = unblinded["int_diversity_pfs_cox"].frame
    assert list(cox["model"]).count("Shannon + arm") == 2
    assert cox["hr"].gt(0).all() and (cox["lcl"] < cox["hr"]).all() and (cox["hr"] < cox["ucl"]).all()


# ------------------------------------------------------------------------------------------------ helpers


R_ELLIPSE = r"""
suppressMessages(library(vegan))
X <- as.matrix(read.csv(commandArgs(TRUE)[1]))
pdf(NULL); plot(X)
e <- ordiellipse(X, rep("g", nrow(X)), kind = "sd", conf = 0.95, draw = "none")$g
p <- vegan:::veganCovEllipse(e$cov, e$center, e$scale, npoints = 50)
write.csv(data.frame(x = p[, 1], y = p[, 2]), stdout(), row.names = FALSE)
cat(sprintf("#scale=%.15g\n", e$scale), file = stderr())
"""


def test_ellipse_is_normal_theory_95_percent() -> None:
    rng = np.random.default_rng(7)
    xy = rng.multivariate_normal([1.0, -2.0], [[2.0, 0.8], [0.8, 0.5]], size=40)
    outline = microbiome.confidence_ellipse(xy)
    assert outline is not None and outline.shape == (101, 2)
    cov = np.cov(xy, rowvar=False)
    d = outline - xy.mean(axis=0)
    mahalanobis = np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d)
    np.testing.assert_allclose(mahalanobis, 5.991464547107979, rtol=1e-12)  # chi-square(2) 95 % quantile
    se = microbiome.confidence_ellipse(xy, kind="se") - xy.mean(axis=0)
    np.testing.assert_allclose(se * np.sqrt(len(xy)), d, rtol=1e-12, atol=1e-12)
    assert microbiome.confidence_ellipse(xy[:2]) is None


@pytest.mark.skipif(RSCRIPT is None, reason="Rscript not installed (apt-get install r-base-core r-cran-vegan)")
def test_ellipse_equals_vegan_ordiellipse(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    xy = rng.multivariate_normal([0.3, 0.1], [[0.04, -0.01], [-0.01, 0.02]], size=25)
    pd.DataFrame(xy, columns=["a", "b"]).to_csv(tmp_path / "xy.csv", index=False)
    (tmp_path / "e.R").write_text(R_ELLIPSE)
    proc = subprocess.run(
        [RSCRIPT, str(tmp_path / "e.R"), str(tmp_path / "xy.csv")], capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0 and "vegan" in proc.stderr:
        pytest.skip("R package vegan not installed (apt-get install r-cran-vegan)")
    assert proc.returncode == 0, proc.stderr
    from io import StringIO

    vegan = pd.read_csv(StringIO(proc.stdout)).to_numpy(float)
    scale = float(re.search(r"#scale=(\S+)", proc.stderr).group(1))  # type: ignore[union-attr]
    assert scale == pytest.approx(np.sqrt(5.991464547107979), rel=1e-12)
    # vegan's outline points lie on our ellipse (same set: centre, covariance and scale agree)
    cov = np.cov(xy, rowvar=False)
    d = vegan - xy.mean(axis=0)
    np.testing.assert_allclose(np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d), scale**2, rtol=1e-9)
    mine = microbiome.confidence_ellipse(xy, n_points=400)
    area = 0.5 * abs(np.dot(mine[:-1, 0], mine[1:, 1]) - np.dot(mine[1:, 0], mine[:-1, 1]))
    assert area == pytest.approx(np.pi * scale**2 * np.sqrt(np.linalg.det(cov)), rel=1e-3)


def test_labels_do_not_overlap() -> None:
    with style.report_style():
        fig = microbiome.new_figure(3.0, 4.0)
        ax = fig.add_subplot()
        ax.set_xlim(-2, 2)
        ax.set_ylim(0, 10)
        x = np.array([1.0, 1.1, 1.2, 0.9, -1.0, -1.2, -0.8])
        y = np.array([5.0, 5.05, 5.1, 4.95, 5.0, 5.02, 4.98])
        pos = microbiome.label_points(ax, x, y, [f"taxon {i}" for i in range(len(x))])
    gap = 0.055 * 10.0
    assert len(pos) == len(x)
    for side in (True, False):
        ys = sorted(ly for lx, ly in pos if (lx > 0) == side)
        assert len(ys) >= 3  # labels on both sides of the axis, right of the right points and left of the left
        assert all(b - a >= gap - 1e-9 for a, b in itertools.pairwise(ys)), ys
    lo, hi = ax.get_xlim()
    assert lo <= -2 and hi >= 2


def test_missing_tables_skip_figures_without_error() -> None:
    con = duckdb.connect()
    con.execute("create schema analysis")
    con.execute("create schema marts")
    for section in SECTIONS:
        assert section.figures(con, context(False)) == []
        lacking = section.missing_tables(con, section.FIGURE_TABLES)
        assert set(lacking) == set(section.FIGURE_TABLES)
        assert set(section.REQUIRED_TABLES) == {t for ts in lacking.values() for t in ts}
    con.close()


def test_figures_are_deterministic(blinded_wh: Path) -> None:
    with duckdb.connect(str(blinded_wh), read_only=True) as con:
        alpha = microbiome.read_table(con, "analysis.alpha_diversity_rarefied")
        tests = microbiome.read_table(con, "analysis.alpha_group_tests")
    one = microbiome.alpha_figure(alpha, tests, context(False))
    two = microbiome.alpha_figure(alpha, tests, context(False))
    assert style.svg_bytes(one.figure) == style.svg_bytes(two.figure)
    assert one.caption == two.caption
