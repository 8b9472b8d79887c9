"""The metabolomics analysis assets on the shared demo warehouse: every table written, QC RSD as the simulated
drift predicts, the simulator's truly differential metabolites on top, and no arm information when blinded.

The shared warehouse (``_warehouse.py``) holds the marts of a blinded build. The assets run on copies:

* blinded: as ``guttrial build`` runs them, plus an ``analysis.best_overall_response`` made from the
  simulator's responders (what the endpoint assets write), so the responder analysis runs too;
* unblinded: ``marts.adsl.arm_code`` filled from the restricted randomisation list, which is what the
  unblinded dbt build does (``int_subjects__arm``), in a warehouse file named ``*unblinded*``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from _warehouse import DemoWarehouse, shared_demo_warehouse, subject_id
from scipy import stats

from analysis.metabolomics.bench import simulate
from analysis.metabolomics.steps import PrepareConfig, prepare
from analysis.metabolomics.study import rescale
from orchestration.assets.metabolomics import (
    INTEGRATION_TABLE,
    TABLES,
    arm_leaks,
    metabolite_genus_correlations,
    metabolomics_analysis,
)
from orchestration.resources import TrialSettings

pytestmark = pytest.mark.slow

QC_NOISE_LOG_SD = np.hypot(0.04, 0.07)  # simulator: pooled-QC sd + technical sd (natural log)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoWarehouse:
    return shared_demo_warehouse(tmp_path_factory)


def run_assets(warehouse: Path, unblinded: bool) -> dg.ExecuteInProcessResult:
    settings = TrialSettings(warehouse_path=str(warehouse), unblinded="true" if unblinded else "false")
    return dg.materialize([metabolomics_analysis, metabolite_genus_correlations], resources={"settings": settings})


@pytest.fixture(scope="module")
def blinded(demo: DemoWarehouse, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dg.ExecuteInProcessResult]:
    path = tmp_path_factory.mktemp("mtb_blinded") / "warehouse.duckdb"
    shutil.copy(demo.warehouse, path)
    patients = pd.read_csv(demo.truth / "patients.csv", dtype={"SUBJID": str})
    bor = pd.DataFrame(
        {
            "subject_id": patients["SUBJID"].map(subject_id),
            "responder": patients["responder"].astype(bool),
            "criterion": "RECIST 1.1",
            "evaluator": "DERIVED",
            "confirmed": True,
        }
    )
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists analysis")
        con.register("bor", bor)
        con.execute("create table analysis.best_overall_response as select * from bor")
    result = run_assets(path, unblinded=False)
    assert result.success
    return path, result


@pytest.fixture(scope="module")
def unblinded(demo: DemoWarehouse, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mtb_unblinded") / "warehouse_unblinded.duckdb"
    shutil.copy(demo.warehouse, path)
    randomisation = pd.read_csv(demo.randomisation_list, dtype=str)
    with duckdb.connect(str(path)) as con:
        con.register("rl", randomisation)
        con.execute("update marts.adsl set arm_code = rl.ARM from rl where adsl.randno = rl.RANDNO")
        assert {a for (a,) in con.execute("select distinct arm_code from marts.adsl").fetchall()} == {
            "CAPSULE",
            "PLACEBO",
        }
    assert run_assets(path, unblinded=True).success
    return path


def read(path: Path, table: str) -> pd.DataFrame:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"select * from analysis.{table}").df()


def true_features(demo: DemoWarehouse) -> set[str]:
    truth = pd.read_csv(demo.truth / "metabolite_features.csv")
    hits = truth[truth["true_log2_effect"] != 0]
    return set(hits["matrix"] + ":" + hits["ion_mode"] + ":" + hits["feature_id"])


def auc(scores: pd.Series, positive: pd.Series) -> float:
    """P(a true feature ranks above a null one) from the ranks of -log p (Mann-Whitney AUC)."""
    ranks = scores.rank()
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# ---------------------------------------------------------------------------------------------- tables


def test_every_table_is_written_with_metadata(blinded: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    path, result = blinded
    materialised = {e.asset_key.path[-1]: e for e in result.get_asset_materialization_events()}
    assert set(materialised) == {*TABLES, INTEGRATION_TABLE}
    for name in TABLES:
        frame = read(path, name)
        meta = materialised[name].materialization.metadata
        assert meta["dagster/row_count"].value == len(frame)
        if name != "metabolite_annotation_invalid":
            assert len(frame) > 0, name
    pca_meta = materialised["metabolomics_pca_scores"].materialization.metadata
    assert 0 < pca_meta["FAECES_pc1_variance"].value < 1 and "SERUM_pc2_variance" in pca_meta
    rsd_meta = materialised["metabolomics_qc_rsd"].materialization.metadata
    assert rsd_meta["FAECES_qc_rsd_median_after"].value < rsd_meta["FAECES_qc_rsd_median_before"].value
    diff_meta = materialised["differential_metabolites"].materialization.metadata
    assert "top_metabolites" in diff_meta and diff_meta["responder_source"].value.startswith("analysis.")


def test_step_log_records_the_recipe(blinded: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    steps = read(blinded[0], "metabolomics_steps")
    assert set(steps["matrix"]) == {"FAECES", "SERUM"} and set(steps["purpose"]) == {"pca", "differential"}
    for (_, purpose), log in steps.groupby(["matrix", "purpose"]):
        assert log["step"].tolist() == list(range(1, len(log) + 1))
        assert log["name"].iloc[-1] == "scaling"
        drift = log[log["name"] == "drift_correction"].iloc[0]
        assert drift["applied"] and json.loads(drift["detail"])["median_qc_rsd_after"] > 0
        scaling = json.loads(log["parameters"].iloc[-1])["method"]
        assert scaling == ("pareto" if purpose == "pca" else "none")
        assert json.loads(log["config"].iloc[0])["transform"] == "glog"


def test_pca_tables(blinded: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    importance = read(blinded[0], "metabolomics_pca_importance")
    scores = read(blinded[0], "metabolomics_pca_scores")
    loadings = read(blinded[0], "metabolomics_pca_loadings")
    for (matrix, scope), imp in importance.groupby(["matrix", "scope"]):
        assert imp["cumulative_proportion"].iloc[-1] == pytest.approx(1.0, abs=1e-5)
        assert imp["standard_deviation"].is_monotonic_decreasing
        own = scores[(scores["matrix"] == matrix) & (scores["scope"] == scope)]
        samples, qcs = own[~own["projected"]], own[own["projected"]]
        assert len(samples) == imp["n_samples"].iloc[0]
        assert (qcs["sample_type"] == "QC").all() and (samples["sample_type"] == "SAMPLE").all() and len(qcs) > 0
        # prcomp: centred scores whose variance is sdev^2
        np.testing.assert_allclose(samples["PC1"].mean(), 0, atol=1e-8)
        assert samples["PC1"].var(ddof=1) == pytest.approx(imp["standard_deviation"].iloc[0] ** 2, rel=1e-9)
        load = loadings[(loadings["matrix"] == matrix) & (loadings["scope"] == scope)]
        assert len(load) == imp["n_features"].iloc[0]
        assert np.sum(load["PC1"] ** 2) == pytest.approx(1.0, rel=1e-9)
    scopes = set(importance.loc[importance["matrix"] == "FAECES", "scope"])
    assert "ALL" in scopes and {"BASELINE", "END OF COURSE 1"} <= scopes  # per matrix and per visit
    all_scope = scores[(scores["scope"] == "ALL") & ~scores["projected"]]
    assert all_scope["visit"].notna().all() and all_scope["subject_id"].str.startswith("HCC-GUT-01-").all()


def test_annotation_keeps_every_feature_with_valid_ids(blinded: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    annotation = read(blinded[0], "metabolite_annotation")
    assert annotation.groupby("matrix").size().to_dict() == {"FAECES": 400, "SERUM": 300}  # unannotated kept
    kegg = annotation["kegg_ids"].dropna().str.split(";").explode()
    hmdb = annotation["hmdb_ids"].dropna().str.split(";").explode()
    assert kegg.str.fullmatch(r"C\d{5}").all() and hmdb.str.fullmatch(r"HMDB\d{7}").all()
    isomers = annotation[annotation["name"].fillna("").str.contains("/")]
    assert set(isomers["kegg_ids"]) == {"C04483;C02528"}  # a multi-ID cell split, both kept
    assert annotation["in_analysis"].mean() > 0.9


# ---------------------------------------------------------------------------------------------- truth


def test_qc_rsd_before_correction_matches_the_simulated_drift(
    demo: DemoWarehouse, blinded: tuple[Path, dg.ExecuteInProcessResult]
) -> None:
    drift = pd.read_csv(demo.truth / "metabolite_drift.csv.gz")
    with duckdb.connect(str(blinded[0]), read_only=True) as con:
        qcs = con.execute(
            "select batch_id, run_order from marts.metabolomics_qc_injections where sample_type = 'QC'"
        ).df()
    rows = qcs.merge(drift, left_on="batch_id", right_on="batch")
    x = -1.0 + 2.0 * (rows["run_order"] - 1) / (rows["n_injections"] - 1)  # run order scaled to [-1, 1]
    rows["d"] = rows["batch_offset_log"] + rows["drift_linear"] * x + rows["drift_quadratic"] * (x**2 - 1 / 3)
    rows["e"] = np.exp(rows["d"])
    per_feature = rows.groupby(["matrix", "feature_id"])["e"].agg(lambda e: e.std(ddof=0) / e.mean())
    # log-normal technical noise on top of the drift: (1 + RSD_total^2) = (1 + RSD_drift^2) * exp(s^2)
    predicted = 100 * np.sqrt((1 + per_feature**2) * np.exp(QC_NOISE_LOG_SD**2) - 1)
    rsd = read(blinded[0], "metabolomics_qc_rsd").set_index(["matrix", "feature_id"])
    joined = rsd.join(predicted.rename("predicted"), how="inner")
    assert len(joined) > 600
    ratio = joined["qc_rsd_before"] / joined["predicted"]
    assert 0.9 < ratio.median() < 1.1
    assert joined["qc_rsd_before"].corr(joined["predicted"], method="spearman") > 0.85
    # correction takes the QC RSD down to about the technical noise floor
    floor = 100 * np.sqrt(np.exp(QC_NOISE_LOG_SD**2) - 1)
    assert joined["qc_rsd_after"].median() < 1.1 * floor < joined["qc_rsd_before"].median()


def best_p(diff: pd.DataFrame, matrix: str, contrasts: list[str]) -> pd.Series:
    """Each feature's smallest mixed-model p over ``contrasts`` of one matrix (index: feature key)."""
    rows = diff[(diff["matrix"] == matrix) & diff["contrast"].isin(contrasts)]
    assert rows["contrast"].nunique() == len(contrasts), contrasts
    return rows.groupby("feature")["lmm_p"].min()


def is_true(p: pd.Series, matrix: str, truth: set[str]) -> pd.Series:
    return pd.Series((f"{matrix}:" + p.index.to_series()).isin(truth).to_numpy(), index=p.index)


def test_truly_differential_metabolites_rank_on_top_unblinded(demo: DemoWarehouse, unblinded: Path) -> None:
    diff = read(unblinded, "differential_metabolites")
    assert {"arm_x_visit", "visit_vs_baseline"} <= set(diff["analysis"])
    assert "responder" not in set(diff["analysis"])  # no responder status in this warehouse
    truth = true_features(demo)
    # The simulator's capsule effect is full at the end of courses 3 and 4 (faeces) and at cycle 5 day 1
    # (serum; analysis.simulation.forms: timepoints "3"/"4", ramp 1.0); 30 patients give ~13 per arm there.
    faeces = best_p(diff, "FAECES", [f"CAPSULE vs PLACEBO at END OF COURSE {k}" for k in (3, 4)])
    true_faeces = is_true(faeces, "FAECES", truth)
    assert true_faeces.sum() == 11
    assert auc(-np.log(faeces), true_faeces) > 0.85
    assert true_faeces[faeces.sort_values().index].head(10).sum() >= 5
    serum = best_p(diff, "SERUM", ["CAPSULE vs PLACEBO at CYCLE 5 DAY 1"])
    assert auc(-np.log(serum), is_true(serum, "SERUM", truth)) > 0.75
    # the joint arm x visit test over all faecal visits too
    joint = best_p(diff, "FAECES", ["CAPSULE vs PLACEBO: arm x visit interaction (joint)"])
    assert auc(-np.log(joint), is_true(joint, "FAECES", truth)) > 0.8
    # estimates have the simulated sign, and results carry KEGG IDs for pathway tools
    course3 = diff[(diff["contrast"] == "CAPSULE vs PLACEBO at END OF COURSE 3") & (diff["matrix"] == "FAECES")]
    named = course3.set_index("name")
    assert named.loc["Butyrate", "lmm_log2fc"] > 0 and named.loc["Deoxycholic acid", "lmm_log2fc"] < 0
    assert named.loc["Butyrate", "kegg_ids"] == "C00246"


def test_blinded_visit_effects_rank_on_top(
    demo: DemoWarehouse, blinded: tuple[Path, dg.ExecuteInProcessResult]
) -> None:
    # blinded, the capsule effect shows (diluted by the placebo half) as a change from baseline
    diff = read(blinded[0], "differential_metabolites")
    truth = true_features(demo)
    faeces = best_p(diff, "FAECES", [f"END OF COURSE {k} vs BASELINE" for k in (3, 4)])
    assert auc(-np.log(faeces), is_true(faeces, "FAECES", truth)) > 0.75
    serum = best_p(diff, "SERUM", ["CYCLE 5 DAY 1 vs BASELINE"])
    assert auc(-np.log(serum), is_true(serum, "SERUM", truth)) > 0.85
    joint = best_p(diff, "FAECES", ["any visit vs BASELINE (joint)"])
    assert auc(-np.log(joint), is_true(joint, "FAECES", truth)) > 0.75


def test_genus_metabolite_correlations(blinded: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    path = blinded[0]
    table = read(path, INTEGRATION_TABLE)
    assert len(table) > 0 and set(table["matrix"]) <= {"FAECES", "SERUM"}
    assert table["rho"].between(-1, 1).all() and (table["q"] >= table["p"] * (1 - 1e-12)).all()
    assert not table["genus_differential"].any()  # no microbiome differential table in this warehouse
    # one pair recomputed by hand: genus sums per library, means per (patient, visit), scipy's spearmanr
    row = table[table["matrix"] == "FAECES"].iloc[0]
    with duckdb.connect(str(path), read_only=True) as con:
        genus = con.execute(
            "select c.subject_id, s.nominal_visit as visit, c.batch_id, c.sample_id, sum(c.relative_abundance) as g "
            "from marts.taxa_counts c join marts.taxonomy t using (batch_id, feature_id) "
            "join marts.samples s using (specimen_barcode) where t.genus = ? group by all",
            [row["genus"]],
        ).df()
        libraries = con.execute(
            "select distinct c.subject_id, s.nominal_visit as visit, c.batch_id, c.sample_id from marts.taxa_counts c "
            "join marts.samples s using (specimen_barcode)"
        ).df()
        metab = con.execute(
            "select subject_id, visit, avg(value) as m from analysis.metabolomics_prepared "
            "where matrix = 'FAECES' and feature = ? group by all",
            [row["feature"]],
        ).df()
    per_library = libraries.merge(genus, how="left").fillna({"g": 0.0})
    per_visit = per_library.groupby(["subject_id", "visit"])["g"].mean().reset_index()
    joined = per_visit.merge(metab, on=["subject_id", "visit"])
    expected = stats.spearmanr(joined["g"], joined["m"])
    assert row["n"] == len(joined)
    assert row["rho"] == pytest.approx(expected.statistic, abs=1e-12)
    assert row["p"] == pytest.approx(expected.pvalue, rel=1e-9)


# ---------------------------------------------------------------------------------------------- blinding


def test_blinded_run_carries_no_arm_information(blinded: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    tables = {name: read(blinded[0], name) for name in [*TABLES, INTEGRATION_TABLE]}
    assert arm_leaks(tables) == []
    diff = tables["differential_metabolites"]
    assert set(diff["analysis"]) == {"visit_vs_baseline", "responder"}
    assert not diff["contrast"].str.contains("CAPSULE|PLACEBO|arm", case=False).any()
    materialised = blinded[1].get_asset_materialization_events()
    text = json.dumps([{k: str(v.value) for k, v in e.materialization.metadata.items()} for e in materialised])
    assert "CAPSULE" not in text.upper() and "PLACEBO" not in text.upper() and "arm_source" not in text


def test_arm_leak_guard() -> None:
    assert arm_leaks({"t": pd.DataFrame({"arm": ["X"]})}) == ["t.arm (column name)"]
    assert arm_leaks({"t": pd.DataFrame({"contrast": ["CAPSULE vs PLACEBO"]})}) == ["t.contrast (values)"]
    assert arm_leaks({"t": pd.DataFrame({"param": ["x"], "charm": [1.0]})}) == []


# ---------------------------------------------------------------------------------------------- unit


@pytest.mark.parametrize("scaling", ["pareto", "auto"])
def test_rescale_equals_a_second_prepare(scaling: str) -> None:
    table = simulate(120, 60, seed=3)
    base_cfg = PrepareConfig(drift_correction=True, scaling="none")
    base, base_log = prepare(table, base_cfg)
    expected, expected_log = prepare(table, PrepareConfig(drift_correction=True, scaling=scaling))
    got, got_log = rescale(base, base_log, expected.config)
    np.testing.assert_array_equal(got.values, expected.values)
    np.testing.assert_array_equal(got.qc_values, expected.qc_values)
    pd.testing.assert_frame_equal(got_log, expected_log)
    with pytest.raises(ValueError, match="scaling='none'"):
        rescale(expected, expected_log, expected.config)
