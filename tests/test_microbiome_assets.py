"""The microbiome assets end to end.

* Blinded: the assets on a copy of the shared demo warehouse (``_warehouse.py``: 30 patients, raw + dbt marts of a
  blinded build) write every table, sane against the marts and the simulator's truth (mock community, kit
  contaminants), and carry no arm anywhere (tables, distance files, materialisation metadata).
* Unblinded: a 40-patient demo trial built with ``guttrial build --unblinded``: the simulator's truly differential
  genera come out on top of the arm analyses, responder genera on top of the responder analysis.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from _warehouse import UNBLINDED_TRIAL_ITERATIONS, DemoWarehouse, shared_demo_warehouse, subject_id, unblinded_trial

from analysis.microbiome import pipeline as mb
from analysis.microbiome import qc
from analysis.microbiome.beta import bray_curtis, load_npz, unifrac
from analysis.microbiome.ordination import kruskal_stress
from orchestration.assets.microbiome import ASSET_TABLES, ENV_ITERATIONS, microbiome_assets
from orchestration.resources import TrialSettings

pytestmark = pytest.mark.slow

ALL_TABLES = [t for tables in ASSET_TABLES.values() for t in tables]
UP_GENERA = {"Bifidobacterium", "Lactobacillus", "Akkermansia"}
DOWN_GENERA = {"Escherichia-Shigella"}
SEED = 20240501
ITERATIONS = 100  # subsampling iterations in these tests (the default of real runs is 1,000)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoWarehouse:
    return shared_demo_warehouse(tmp_path_factory)


def read(path: Path, table: str) -> pd.DataFrame:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"select * from analysis.{table}").df()


@pytest.fixture(scope="module")
def blinded_run(
    demo: DemoWarehouse, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dg.ExecuteInProcessResult]:
    """The assets on a copy of the shared (marts-only) warehouse, with the ``analysis.best_overall_response`` the
    endpoint assets would write made from the simulator's responders, so the responder analyses run too."""
    path = tmp_path_factory.mktemp("mb_blinded") / "warehouse.duckdb"
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
    config = {"ops": {"microbiome_alpha": {"config": {"iterations": ITERATIONS}}}}
    result = dg.materialize(
        microbiome_assets,
        resources={"settings": TrialSettings(warehouse_path=str(path), unblinded="false")},
        run_config=config,
    )
    assert result.success
    return path, result


@pytest.fixture(scope="module")
def tables(blinded_run: tuple[Path, dg.ExecuteInProcessResult]) -> dict[str, pd.DataFrame]:
    return {t: read(blinded_run[0], t) for t in ALL_TABLES}


@pytest.fixture(scope="module")
def inputs(blinded_run: tuple[Path, dg.ExecuteInProcessResult]) -> mb.MicrobiomeInputs:
    with duckdb.connect(str(blinded_run[0]), read_only=True) as con:
        return mb.read_inputs(con, unblinded=False)


@pytest.fixture(scope="module")
def unblinded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The session's unblinded 120-patient trial (``_warehouse.unblinded_trial``: clinical path and microbiome
    assets in-process, GUTTRIAL_MICROBIOME_ITERATIONS=50; shared with test_endpoints_e2e.py)."""
    trial = unblinded_trial(tmp_path_factory)
    return trial.out_dir, trial.warehouse


# ------------------------------------------------------------------------------------------------ blinded build


def test_every_table_is_written_and_alpha_is_sane(
    demo: DemoWarehouse, tables: dict[str, pd.DataFrame], inputs: mb.MicrobiomeInputs
) -> None:
    for name in ALL_TABLES:
        assert not tables[name].empty or name == "beta_baseline_tests", name
    alpha = tables["alpha_diversity"].set_index("sample_id")
    sizes = inputs.matrix.library_sizes
    assert set(alpha.index) == set(sizes.index)  # one row per sequenced specimen
    assert (alpha["nseqs"] == sizes.reindex(alpha.index)).all()
    depth = tables["rarefaction_depth"].iloc[0]
    assert depth["iterations"] == ITERATIONS  # run config (the default, 1,000, is tested below)
    rarefied = tables["alpha_diversity_rarefied"].set_index("sample_id")
    below = set(tables["rarefaction_below_depth"]["sample_id"])
    assert set(rarefied.index) == set(sizes.index[sizes >= depth["depth"]])
    assert below == set(sizes.index[sizes < depth["depth"]]) and len(below) == depth["n_below_depth"]
    assert depth["n_kept"] >= 0.9 * depth["n_samples"] and depth["depth"] >= depth["floor"]
    assert (rarefied["nseqs"] == depth["depth"]).all() and (rarefied["nseqs_sd"] == 0).all()
    assert (rarefied["sobs"] <= alpha.loc[rarefied.index, "sobs"] + 1e-9).all()
    assert (rarefied["sobs_sd"] >= 0).all() and (rarefied["shannon_sd"] > 0).any()
    assert alpha["visit"].notna().all() and "arm" not in alpha.columns
    curves = tables["rarefaction_curves"].sort_values(["sample_id", "depth"])
    assert (curves.groupby("sample_id")["expected_sobs"].diff().dropna() >= -1e-9).all()
    groups = tables["alpha_group_tests"]
    assert {"visit", "responder"} == set(groups["factor"]) and groups["q_value"].between(0, 1).all()
    changes = tables["alpha_change_tests"]
    assert {"all", "responder"} == set(changes["factor"])


def test_distances_live_in_files_and_equal_a_recomputation(
    tables: dict[str, pd.DataFrame], inputs: mb.MicrobiomeInputs
) -> None:
    files = tables["beta_distance_files"].set_index("metric")
    assert set(files.index) == {"braycurtis", "jaccard", "aitchison", "weighted_unifrac", "unweighted_unifrac"}
    assert (files.loc[["braycurtis", "jaccard", "aitchison"], "feature_level"] == "genus").all()
    bc = load_npz(files.loc["braycurtis", "path"])
    assert bc.n == files.loc["braycurtis", "n_samples"] == inputs.matrix.counts.shape[0]
    counts, _, _ = mb.collapsed_counts(inputs, "genus")
    rel = sp.csr_matrix(counts.multiply(1.0 / counts.sum(axis=1)))
    again = bray_curtis(rel, list(inputs.matrix.sample_ids))
    assert again.ids == bc.ids
    np.testing.assert_allclose(bc.condensed, again.condensed, rtol=0, atol=1e-12)
    jac = load_npz(files.loc["jaccard", "path"])
    assert jac.n == len(tables["alpha_diversity_rarefied"])  # rarefied once to the depth first
    biggest = max(len(t) for t in tables.values())
    assert biggest < bc.n * (bc.n - 1) / 2  # nothing n² went into DuckDB


def test_ordinations_and_group_tests(tables: dict[str, pd.DataFrame], inputs: mb.MicrobiomeInputs) -> None:
    coords = tables["ordination_coordinates"]
    n = inputs.matrix.counts.shape[0]
    genus = coords[coords["feature_level"] == "genus"]
    assert genus.groupby("method").size().to_dict() == {"pcoa": n, "nmds": n, "pca": n}
    assert coords["visit"].notna().all() and coords["responder"].notna().any()
    axes = tables["ordination_axes"]
    stress = axes.loc[axes["method"] == "nmds", "stress"].iloc[0]
    nmds = coords[coords["method"] == "nmds"].set_index("sample_id")
    bc = load_npz(tables["beta_distance_files"].set_index("metric").loc["braycurtis", "path"])
    assert stress == pytest.approx(kruskal_stress(bc.condensed, nmds.loc[list(bc.ids), ["axis1", "axis2"]]), abs=1e-9)
    assert 0 < stress < 0.3
    for _, prop in axes[axes["method"] == "pcoa"].groupby("metric")["proportion_explained"]:
        assert np.all(np.diff(prop.to_numpy()) <= 0) and 0 < prop.sum() <= 1
    tests = tables["beta_group_tests"]
    visit = tests[(tests["factor"] == "visit") & (tests["test"] == "PERMANOVA")]
    assert set(visit["metric"]) == {"braycurtis", "jaccard", "aitchison", "weighted_unifrac", "unweighted_unifrac"}
    assert (visit["scheme"] == "within patient").all() and visit["r2"].between(0, 1).all()
    assert tests["p_value"].between(0, 1).all() and (tests["permutations"] == 999).all()
    responder = tests[tests["factor"] == "responder"]
    assert {"PERMANOVA", "ANOSIM", "PERMDISP"} <= set(responder["test"])
    assert set(tests["factor"]) == {"visit", "responder"}
    dtb = tables["beta_distance_to_baseline"]
    assert dtb["distance"].between(0, 1).all() and (dtb["visit"] != "BASELINE").all()


def test_unifrac_on_the_delivered_tree(
    demo: DemoWarehouse, tables: dict[str, pd.DataFrame], inputs: mb.MicrobiomeInputs
) -> None:
    """The ASV batches deliver the simulator's study tree (the mothur batch none): UniFrac on their features, equal
    to scikit-bio's on the same counts and tree; PCoA and PERMANOVA alongside the other metrics."""
    from analysis.readers.tree import parse_newick

    assert set(inputs.trees["batch_id"]) == {"SEQ01", "SEQ03", "SEQ04", "SEQ05"}  # SEQ02 is mothur
    assert inputs.trees["newick_sha256"].nunique() == 1
    tree, rooted = parse_newick(inputs.trees["newick"].iloc[0])
    taxa = pd.read_csv(demo.truth / "taxa.csv")
    assert rooted and {t.name for t in tree.tips()} == set(taxa["asv_id"])
    files = tables["beta_distance_files"].set_index("metric")
    phylo = mb.phylogeny_counts(inputs)
    assert phylo is not None and phylo.batches == ("SEQ01", "SEQ03", "SEQ04", "SEQ05") and phylo.reads_off_tree == 0
    for metric in ("weighted_unifrac", "unweighted_unifrac"):
        assert files.loc[metric, "feature_level"] == "feature" and "SEQ02" not in files.loc[metric, "transform"]
        assert files.loc[metric, "n_features"] == len(phylo.features)
    weighted = load_npz(files.loc["weighted_unifrac", "path"])
    libraries = inputs.matrix.libraries.set_index("sample_id")
    assert set(weighted.ids) == set(libraries.index[libraries["batch_id"] != "SEQ02"])
    again = unifrac(phylo.counts, phylo.ids, phylo.features, tree, weighted=True, engine="skbio")
    assert again.ids == weighted.ids
    np.testing.assert_allclose(weighted.condensed, again.condensed, rtol=1e-12, atol=1e-14)
    depth = int(tables["rarefaction_depth"]["depth"].iloc[0])
    rare, kept = mb.rarefy_once(phylo.counts, depth, mb.MicrobiomeConfig().seed)
    unweighted = load_npz(files.loc["unweighted_unifrac", "path"])
    again = unifrac(rare, [phylo.ids[i] for i in kept], phylo.features, tree, engine="skbio")
    assert again.ids == unweighted.ids
    np.testing.assert_allclose(unweighted.condensed, again.condensed, rtol=1e-12, atol=1e-14)
    coords = tables["ordination_coordinates"]
    for metric, dist in (("weighted_unifrac", weighted), ("unweighted_unifrac", unweighted)):
        rows = coords[(coords["metric"] == metric) & (coords["method"] == "pcoa")]
        assert set(rows["sample_id"]) == set(dist.ids) and (rows["feature_level"] == "feature").all()
    tests = tables["beta_group_tests"]
    unifrac_tests = tests[tests["metric"].str.endswith("unifrac")]
    assert set(unifrac_tests["test"]) == {"PERMANOVA"} and (unifrac_tests["feature_level"] == "feature").all()
    assert set(unifrac_tests["factor"]) == {"visit", "responder"}


def test_mixed_models_and_ancombc_in_the_differential_table(tables: dict[str, pd.DataFrame]) -> None:
    diff = tables["differential_abundance"]
    methods = diff.groupby("analysis")["method"].unique().map(tuple).to_dict()
    assert methods["visit_lmm"] == ("clr_lmm",) and methods["responder_lmm"] == ("clr_lmm",)
    assert methods["responder_by_visit_ancombc"] == ("ancombc",)
    ancombc = diff[diff["method"] == "ancombc"]
    assert set(ancombc["rank"]) == {"genus"}  # ANCOM-BC at genus rank only (its cost)
    visits = diff[diff["analysis"] == "visit_lmm"]
    assert "BASELINE" not in set(visits["visit"]) and visits["contrast"].str.contains("mixed model").all()
    for rank in ("phylum", "genus"):
        taxa = diff[(diff["analysis"] == "change_from_baseline") & (diff["rank"] == rank)]["taxon"].nunique()
        one_visit = visits[(visits["rank"] == rank) & (visits["visit"] == visits["visit"].iloc[0])]
        assert len(one_visit) == taxa  # every kept taxon, one model each
    responder = diff[diff["analysis"] == "responder_lmm"]
    assert (responder["visit"] == "ALL").all() and (responder["n_ref"] > 0).all() and (responder["n_other"] > 0).all()
    assert diff["p_value"].between(0, 1).all() and (diff["q_value"] >= diff["p_value"] - 1e-12).all()


def test_querying_guide_microbiome_examples_run(blinded_run: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    """The SQL and the Python loader of docs/querying.md's microbiome section, on this run's warehouse."""
    import re

    text = (Path(__file__).resolve().parents[1] / "docs" / "querying.md").read_text()
    section = text.split("### Analysis: microbiome", 1)[1].split("\n## ", 1)[0]
    queries = [q for q in re.findall(r"```sql\n(.*?)```", text, re.S) if "analysis." in q]
    assert len(queries) >= 3
    with duckdb.connect(str(blinded_run[0]), read_only=True) as con:
        for query in queries:
            assert con.execute(query).fetchall(), query
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    namespace: dict = {}
    exec(code.replace("data/warehouse_published.duckdb", str(blinded_run[0])), namespace)
    assert namespace["bc"].metric == "braycurtis" and namespace["bc"].n > 10


def test_qc_against_the_simulators_truth(demo: DemoWarehouse, tables: dict[str, pd.DataFrame]) -> None:
    mock = tables["microbiome_qc_mock_community"]
    assert len(mock) == 5  # one mock library per batch
    assert (mock["n_recovered"] == 8).all() and (mock["braycurtis_to_expected"] < 0.03).all()
    truth = pd.read_csv(demo.truth / "mock_community.csv").groupby("genus")["expected_fraction"].sum()
    per_genus = tables["microbiome_qc_mock_taxa"]
    expected = per_genus[per_genus["expected"]]
    assert set(expected["genus"]) == set(truth.index)
    np.testing.assert_allclose(expected["expected_fraction"], truth.reindex(expected["genus"]), atol=1e-12)
    np.testing.assert_allclose(expected["observed_fraction"], truth.reindex(expected["genus"]), atol=0.03)
    negatives = tables["microbiome_qc_negative_controls"]
    assert len(negatives) == 10 and not negatives["flag_contamination"].any()
    assert (negatives["reads"] < negatives["batch_sample_min"]).all()
    taxa = pd.read_csv(demo.truth / "taxa.csv")
    kitome = set(taxa.loc[taxa["role"] == "contaminant", "true_genus"])
    candidates = tables["microbiome_qc_negative_taxa"]
    assert kitome <= set(candidates.loc[candidates["contaminant_candidate"], "genus"])
    flags = tables["microbiome_qc_sample_flags"]
    assert int(flags["below_rarefaction_depth"].sum()) == tables["rarefaction_depth"]["n_below_depth"].iloc[0]
    assert (flags["flags"].str.len() > 0).sum() == int(flags["flagged"].sum())
    sizes = tables["microbiome_qc_library_sizes"]
    assert set(sizes["role"]) == {"SAMPLE", "NEGATIVE_CONTROL", "MOCK"}


def test_blinded_run_carries_no_arm_information(blinded_run: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    path, result = blinded_run
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("select count(*) from marts.adsl where arm_code <> 'BLINDED'").fetchone()[0] == 0
        for name in ALL_TABLES:
            frame = con.execute(f"select * from analysis.{name}").df()
            assert not [c for c in frame.columns if "arm" in c.lower().split("_")], name
            text = frame.select_dtypes(include=["object", "string"]).astype(str)
            assert not text.apply(lambda s: s.str.contains("CAPSULE|PLACEBO", case=False)).any().any(), name
    diff = read(path, "differential_abundance")
    assert set(diff["analysis"]) == {
        "responder_by_visit",
        "responder_pooled",
        "change_from_baseline",
        "visit_lmm",
        "responder_lmm",
        "responder_by_visit_ancombc",
    }
    for file in read(path, "beta_distance_files")["path"]:
        with np.load(file) as z:
            assert set(z.files) == {"ids", "condensed", "metric", "params"}
    metadata = [
        {k: str(v.value) for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    ]
    text = json.dumps(metadata).upper()
    assert "CAPSULE" not in text and "PLACEBO" not in text


def test_assets_drop_their_tables_without_sequencing_data(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        con.execute("create table marts.taxa_counts (batch_id varchar, sample_id varchar, read_count int)")
        con.execute("create schema analysis")
        con.execute("create table analysis.alpha_diversity as select 1 as stale")
    result = dg.materialize(
        microbiome_assets, resources={"settings": TrialSettings(warehouse_path=str(path), unblinded="false")}
    )
    assert result.success
    with duckdb.connect(str(path), read_only=True) as con:
        left = con.execute(
            "select table_name from information_schema.tables where table_schema = 'analysis'"
        ).fetchall()
    assert left == []


# ------------------------------------------------------------------------------------------------ unblinded build


def test_truly_differential_genera_come_out_on_top_unblinded(unblinded: tuple[Path, Path]) -> None:
    out_dir, warehouse = unblinded
    truth = pd.read_csv(out_dir / "truth" / "differential_taxa.csv")
    arm_truth = truth[(truth["contrast"] == "capsule_vs_placebo") & (truth["rank"] == "genus")]
    assert set(arm_truth["taxon"]) == UP_GENERA | DOWN_GENERA
    diff = read(warehouse, "differential_abundance")
    genus = diff[diff["rank"] == "genus"]
    # arm over the on-treatment visits (per-patient mean CLR): the three capsule genera are the top three
    on_treatment = genus[genus["analysis"] == "arm_on_treatment"].sort_values("rank_in_test").set_index("taxon")
    assert set(on_treatment.index[:3]) == UP_GENERA
    assert (on_treatment.loc[list(UP_GENERA), "effect"] > 0).all()
    assert (on_treatment.loc[list(DOWN_GENERA), "effect"] < 0).all()
    assert (on_treatment.loc[list(UP_GENERA), "q_value"] < 0.1).all()
    # arm x visit pooled (per-patient mean CLR change from baseline): Bifidobacterium first, the others near the top
    pooled = genus[genus["analysis"] == "arm_x_visit_pooled"].sort_values("rank_in_test").set_index("taxon")
    assert pooled.index[0] == "Bifidobacterium"
    assert (pooled.loc[list(UP_GENERA), "rank_in_test"] <= 10).all()
    assert (pooled.loc[list(UP_GENERA), "effect"] > 0).all() and (pooled.loc[list(DOWN_GENERA), "effect"] < 0).all()
    # per visit: at the end of course 4 (full effect) truly differential genera lead the arm comparison
    visit4 = genus[(genus["analysis"] == "arm_by_visit") & (genus["visit"] == "END OF COURSE 4")]
    assert set(visit4.nsmallest(3, "p_value")["taxon"]) <= UP_GENERA | DOWN_GENERA
    # the CLR mixed model's arm x visit interaction (patient random intercept): same genera, same direction
    lmm = genus[(genus["analysis"] == "arm_x_visit_lmm") & (genus["visit"] == "END OF COURSE 4")].set_index("taxon")
    assert set(lmm["method"]) == {"clr_lmm"} and len(UP_GENERA & set(lmm.nsmallest(5, "p_value").index)) >= 2
    assert (lmm.loc[list(UP_GENERA), "effect"] > 0).all()
    assert {"arm_by_visit_ancombc", "arm_x_visit_lmm"} <= set(diff["analysis"])
    # responder genera (truth: higher in responders at every time point)
    responders = set(truth.loc[truth["contrast"] == "responder_vs_nonresponder", "taxon"])
    pooled_resp = genus[genus["analysis"] == "responder_pooled"].sort_values("rank_in_test")
    assert responders <= set(pooled_resp["taxon"].head(5))


def test_unblinded_tables_carry_the_arm(unblinded: tuple[Path, Path]) -> None:
    _, warehouse = unblinded
    coords = read(warehouse, "ordination_coordinates")
    assert set(coords["arm"]) == {"CAPSULE", "PLACEBO"}
    tests = read(warehouse, "beta_group_tests")
    arm = tests[(tests["factor"] == "arm") & (tests["visit"] == "ALL")]
    assert set(arm["test"]) >= {"PERMANOVA", "ANOSIM", "PERMDISP"} and (arm["scheme"] != "within patient").all()
    assert {"arm", "responder"} <= set(read(warehouse, "alpha_group_tests")["factor"])
    assert "arm" in set(read(warehouse, "beta_baseline_tests")["factor"])
    assert read(warehouse, "rarefaction_depth")["iterations"].iloc[0] == UNBLINDED_TRIAL_ITERATIONS  # from the env


# ------------------------------------------------------------------------------------------------ units


def test_feature_matrix_is_a_pivot_and_keeps_the_deepest_library() -> None:
    long = pd.DataFrame(
        {
            "batch_id": ["B1", "B1", "B1", "B2", "B2", "B2", "B2"],
            "sample_id": ["s1", "s1", "s2", "s1", "s9", "s9", "s9"],
            "specimen_barcode": ["X", "X", "Y", "Z", "X", "X", "X"],
            "subject_id": ["P1", "P1", "P2", "P3", "P1", "P1", "P1"],
            "feature_id": ["Otu1", "Otu2", "Otu1", "Otu1", "Otu1", "Otu2", "Otu3"],
            "read_count": [5, 1, 7, 2, 1, 1, 1],
        }
    )
    fm, libs = mb.feature_matrix(long)
    assert fm.sample_ids == ("X", "Y", "Z")
    # Otu1 of B1 and Otu1 of B2 are different columns (mothur numbers OTUs per batch)
    assert list(map(tuple, fm.features.to_numpy())) == [
        ("B1", "Otu1"),
        ("B1", "Otu2"),
        ("B2", "Otu1"),
        ("B2", "Otu2"),
        ("B2", "Otu3"),
    ]
    dense = fm.counts.toarray()
    np.testing.assert_array_equal(dense, [[5, 1, 0, 0, 0], [7, 0, 0, 0, 0], [0, 0, 2, 0, 0]])
    dup = libs[libs["sample_id"] == "X"].set_index("batch_id")
    assert bool(dup.loc["B1", "kept"]) and not bool(dup.loc["B2", "kept"]) and dup["duplicate_library"].all()


def test_mock_and_negative_control_qc_by_hand() -> None:
    controls = pd.DataFrame(
        {
            "batch_id": ["B", "B"],
            "sample_id": ["M", "N"],
            "sample_role": ["MOCK", "NEGATIVE_CONTROL"],
            "library_size": [100, 30],
        }
    )
    counts = pd.DataFrame(
        {
            "batch_id": ["B"] * 4,
            "sample_id": ["M", "M", "M", "N"],
            "feature_id": ["f1", "f2", "f3", "f3"],
            "read_count": [60, 30, 10, 30],
        }
    )
    taxonomy = pd.DataFrame({"batch_id": ["B"] * 3, "feature_id": ["f1", "f2", "f3"], "genus": ["Ga", "Gb", "Gc"]})
    summary, per_genus = qc.mock_community_comparison(controls, counts, taxonomy, {"Ga": 0.5, "Gb": 0.5})
    row = summary.iloc[0]
    # observed (0.6, 0.3, 0.1) vs expected (0.5, 0.5, 0): 1 - (0.5 + 0.3 + 0) = 0.2
    assert row["braycurtis_to_expected"] == pytest.approx(0.2)
    assert row["n_recovered"] == 2 and row["unexpected_read_share"] == pytest.approx(0.1)
    assert per_genus.set_index("genus").loc["Ga", "log2_ratio"] == pytest.approx(np.log2(0.6 / 0.5))
    sizes = pd.DataFrame({"batch_id": ["B", "B", "B"], "library_size": [100, 200, 300]})
    neg = qc.negative_control_summary(controls, counts, taxonomy, sizes, max_ratio=0.1)
    assert neg.iloc[0]["ratio_to_median"] == pytest.approx(0.15) and bool(neg.iloc[0]["flag_contamination"])
    assert neg.iloc[0]["top_genera"] == "Gc (100%)"


def test_iterations_come_from_run_config_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestration.assets.microbiome import MicrobiomeRunConfig, microbiome_config

    monkeypatch.delenv(ENV_ITERATIONS, raising=False)
    assert microbiome_config(MicrobiomeRunConfig()).iterations == 1000
    monkeypatch.setenv(ENV_ITERATIONS, "25")
    assert microbiome_config(MicrobiomeRunConfig()).iterations == 25
    assert microbiome_config(MicrobiomeRunConfig(iterations=7)).iterations == 7
    assert os.environ[ENV_ITERATIONS] == "25"
