"""Differential metabolites on simulated data with known effects; BH against statsmodels; R oracle."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from analysis.metabolomics.annotation import annotate
from analysis.metabolomics.differential import (
    attach_annotation,
    bh_qvalues,
    compare_by_stratum,
    compare_groups,
    fold_change,
    mixed_model,
)

RSCRIPT = shutil.which("Rscript")


def test_bh_equals_statsmodels() -> None:
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(size=300), rng.uniform(0, 1e-3, size=20), [0.5, 0.5, 1.0, 0.0]])
    q = bh_qvalues(p)
    np.testing.assert_allclose(q, multipletests(p, method="fdr_bh")[1], rtol=1e-12)
    np.testing.assert_allclose(q, stats.false_discovery_control(p, method="bh"), rtol=1e-12)
    with_nan = p.copy()
    with_nan[[3, 7]] = np.nan
    q_nan = bh_qvalues(with_nan)
    assert np.isnan(q_nan[[3, 7]]).all()
    keep = ~np.isnan(with_nan)
    np.testing.assert_allclose(q_nan[keep], multipletests(with_nan[keep], method="fdr_bh")[1], rtol=1e-12)
    assert np.isnan(bh_qvalues([np.nan])).all()


def test_fold_change_scales() -> None:
    X = np.array([[2.0, 10.0], [4.0, 30.0], [1.0, 10.0], [1.0, 10.0]])
    a, b = np.array([1, 1, 0, 0], bool), np.array([0, 0, 1, 1], bool)
    linear = fold_change(X, a, b)
    np.testing.assert_allclose(linear["fc"], [3, 2])
    np.testing.assert_allclose(linear["log2fc"], np.log2([3, 2]))
    logged = fold_change(np.log10(X), a, b, log_base=10)  # ratio of geometric means
    np.testing.assert_allclose(logged["fc"], [np.sqrt(8) / 1, np.sqrt(300) / 10])


def simulate_groups(seed: int = 1, n_feat: int = 300, n_true: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = np.repeat(["CAPSULE", "PLACEBO"], 25)
    X = rng.normal(size=(50, n_feat))
    true = rng.choice(n_feat, size=n_true, replace=False)
    X[np.ix_(groups == "CAPSULE", true)] += 1.8
    return X, groups, true


def test_true_features_rank_on_top_and_q_is_bh() -> None:
    X, groups, true = simulate_groups()
    keys = [f"POS:{i}" for i in range(X.shape[1])]
    res = compare_groups(X, groups, "CAPSULE", "PLACEBO", feature_ids=keys, log_base=10)
    assert (res["n_test"] == 25).all() and (res["n_reference"] == 25).all()
    top_welch = set(res.nsmallest(len(true), "welch_p")["feature"])
    top_wilcoxon = set(res.nsmallest(len(true), "wilcoxon_p")["feature"])
    truth = {keys[i] for i in true}
    assert top_welch == truth
    assert len(top_wilcoxon & truth) >= len(true) - 1
    np.testing.assert_allclose(res["welch_q"], multipletests(res["welch_p"], method="fdr_bh")[1], rtol=1e-12)
    np.testing.assert_allclose(res["wilcoxon_q"], multipletests(res["wilcoxon_p"], method="fdr_bh")[1], rtol=1e-12)
    assert (res.loc[res["feature"].isin(truth), "welch_q"] < 0.01).all()
    # vectorised results equal the per-feature scipy calls
    for j in (int(true[0]), 0):
        a, b = X[groups == "CAPSULE", j], X[groups == "PLACEBO", j]
        assert res["welch_p"][j] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-12)
        assert res["wilcoxon_p"][j] == pytest.approx(stats.mannwhitneyu(a, b, method="asymptotic").pvalue, rel=1e-12)


def test_compare_by_stratum_and_annotation() -> None:
    X, groups, _ = simulate_groups(n_feat=5, n_true=1)
    design = pd.DataFrame({"arm": groups, "visit": np.tile(["V1", "V2"], 25)})
    res = compare_by_stratum(
        X, design, "arm", "CAPSULE", "PLACEBO", "visit", feature_ids=[f"POS:{i}" for i in range(5)]
    )
    assert res["visit"].tolist() == ["V1"] * 5 + ["V2"] * 5
    ann = annotate(
        pd.DataFrame(
            {
                "ion_mode": ["POS"] * 5,
                "feature_id": [str(i) for i in range(5)],
                "kegg_id": ["C00031", None, "C00158;C00022", None, "bad"],
            }
        )
    )
    joined = attach_annotation(res, ann.features)
    assert joined.loc[[0, 2], "kegg_ids"].tolist() == ["C00031", "C00158;C00022"]
    assert pd.isna(joined.loc[1, "kegg_ids"])
    assert pd.isna(joined.loc[4, "kegg_ids"])  # "bad" is reported as invalid, not kept
    assert joined["feature_id"].tolist()[:5] == ["0", "1", "2", "3", "4"]
    with pytest.raises(ValueError, match="at least 2"):
        compare_groups(X[:3], groups[:3], "CAPSULE", "PLACEBO")


def simulate_visits(seed: int = 2) -> tuple[np.ndarray, pd.DataFrame, list[int]]:
    """30 patients × 3 visits; random intercept per patient; features 0-2 have an arm × visit effect."""
    rng = np.random.default_rng(seed)
    patients = np.repeat([f"P{i:02d}" for i in range(30)], 3)
    arm = np.repeat(np.where(np.arange(30) < 15, "CAPSULE", "PLACEBO"), 3)
    visit = np.tile(["V0", "V1", "V2"], 30)
    design = pd.DataFrame({"patient": patients, "arm": arm, "visit": visit})
    n_feat = 12
    intercepts = rng.normal(scale=1.0, size=(30, n_feat)).repeat(3, axis=0)
    X = intercepts + rng.normal(scale=0.5, size=(90, n_feat))
    effect = ((arm == "CAPSULE") & (visit != "V0")).astype(float) * 1.5
    true = [0, 1, 2]
    X[:, true] += effect[:, None]
    return X, design, true


def test_mixed_model_finds_interaction() -> None:
    X, design, true = simulate_visits()
    keys = [f"NEG:{i}" for i in range(X.shape[1])]
    res = mixed_model(
        X,
        design,
        "C(arm, Treatment('PLACEBO')) * C(visit)",
        feature_ids=keys,
        joint={"arm:visit": r":"},
    )
    joint = res[res["term"] == "arm:visit"].set_index("feature")
    assert set(joint.nsmallest(3, "p").index) == {keys[i] for i in true}
    assert (joint.loc[[keys[i] for i in true], "q"] < 0.01).all()
    assert (joint["df"] == 2).all()
    np.testing.assert_allclose(joint["q"], multipletests(joint["p"], method="fdr_bh")[1], rtol=1e-12)
    # same numbers as statsmodels' formula interface for one feature
    import statsmodels.formula.api as smf

    frame = design.assign(y=X[:, 0])
    ref = smf.mixedlm("y ~ C(arm, Treatment('PLACEBO')) * C(visit)", frame, groups=frame["patient"]).fit(
        reml=True, method=["lbfgs", "bfgs", "cg"]
    )
    ours = res[(res["feature"] == keys[0]) & (res["term"] != "arm:visit")].set_index("term")
    np.testing.assert_allclose(ours["estimate"], ref.fe_params[ours.index].to_numpy(), rtol=1e-5, atol=1e-6)
    # SE: sigma^2 A^-1 (GLS, as nlme/lme4) vs statsmodels' inverse full Hessian: equal to ~1e-3
    np.testing.assert_allclose(ours["se"], ref.bse_fe[ours.index].to_numpy(), rtol=5e-3)
    assert ours["group_var"].iloc[0] == pytest.approx(float(np.asarray(ref.cov_re)[0, 0]), rel=1e-3)
    assert ours["resid_var"].iloc[0] == pytest.approx(ref.scale, rel=1e-3)
    assert res["converged"].all()


def test_vectorised_engine_equals_statsmodels_mixedlm_with_missing_outcomes() -> None:
    import patsy
    from statsmodels.regression.mixed_linear_model import MixedLM, MixedLMParams

    X, design, _ = simulate_visits(5)
    X = X[:, :6]
    X[::7, 4] = np.nan  # rows dropped per feature
    X[:, 5] = X[:, 5] - np.repeat(X[:, 5].reshape(30, 3).mean(axis=1), 3) * 1.0  # no patient variance
    formula = "C(arm) * C(visit)"
    fast = mixed_model(X, design, formula, joint={"interaction": ":"})
    slow = mixed_model(X, design, formula, joint={"interaction": ":"}, engine="statsmodels")
    assert fast["estimate"].notna().sum() == 36  # statsmodels may fail on the boundary feature 5 (gamma = 0)
    both = fast["feature"].isin(range(5)).to_numpy()
    np.testing.assert_allclose(fast["estimate"][both], slow["estimate"][both], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fast["se"][both], slow["se"][both], rtol=5e-3)
    np.testing.assert_allclose(fast["p"][both], slow["p"][both], rtol=2e-2, atol=1e-6)
    # our REML optimum is at least as high as statsmodels' (its optimiser stops earlier)
    exog = patsy.dmatrix(formula, design, return_type="dataframe").to_numpy()
    per_feature = fast.groupby("feature", sort=True).first()
    for f in range(5):
        ok = np.isfinite(X[:, f])
        model = MixedLM(X[ok, f], exog[ok], groups=design["patient"].to_numpy()[ok])
        gamma = per_feature.loc[f, "group_var"] / per_feature.loc[f, "resid_var"]
        theirs = model.fit(reml=True, method=["lbfgs", "bfgs", "cg"]).llf
        ours = model.loglike(
            MixedLMParams.from_components(np.zeros(exog.shape[1]), cov_re=np.array([[gamma]])), profile_fe=True
        )
        assert ours >= theirs - 1e-9
    assert per_feature.loc[5, "group_var"] < 1e-6  # boundary fit: gamma = 0


@pytest.mark.skipif(RSCRIPT is None, reason="Rscript not installed (apt-get install r-base-core)")
@pytest.mark.oracle
def test_welch_and_wilcoxon_equal_r(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    X = np.round(rng.lognormal(size=(14, 6)), 3)
    X[:, 5] = np.round(X[:, 5], 0)  # ties
    groups = np.array(["A"] * 6 + ["B"] * 8)
    np.savetxt(tmp_path / "x.csv", X, delimiter=",", fmt="%.17g")
    script = (
        'x <- as.matrix(read.csv(commandArgs(TRUE)[1], header=FALSE)); g <- c(rep("A",6), rep("B",8));'
        "out <- t(apply(x, 2, function(v) c(t.test(v[g=='A'], v[g=='B'])$p.value,"
        " suppressWarnings(wilcox.test(v[g=='A'], v[g=='B'], exact=FALSE, correct=TRUE)$p.value))));"
        "write.table(out, commandArgs(TRUE)[2], sep=',', row.names=FALSE, col.names=FALSE)"
    )
    subprocess.run(
        [RSCRIPT, "--vanilla", "-e", script, str(tmp_path / "x.csv"), str(tmp_path / "p.csv")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    r = np.loadtxt(tmp_path / "p.csv", delimiter=",")
    res = compare_groups(X, groups, "A", "B")
    np.testing.assert_allclose(res["welch_p"], r[:, 0], rtol=1e-9)
    np.testing.assert_allclose(res["wilcoxon_p"], r[:, 1], rtol=1e-9)
