"""Group tests: PERMANOVA / adonis2, PERMDISP / betadisper, ANOSIM against vegan and scikit-bio; alpha tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.microbiome import _oracles
from analysis.microbiome.beta import bray_curtis
from analysis.microbiome.group_tests import (
    _plot_labels,
    _whole_plot_designs,
    adonis2,
    alpha_change_tests,
    alpha_group_tests,
    anosim,
    baseline_distance_tests,
    bh,
    distance_to_baseline,
    permanova,
    permdisp,
    permutation_matrix,
    signed_rank_test,
    whole_plot_permutations,
)


def trial_like(seed: int = 0, patients: int = 20, visits: int = 3) -> tuple[np.ndarray, pd.DataFrame]:
    """Counts for ``patients`` x ``visits`` samples: a patient signature, a visit drift and a weak arm effect."""
    rng = np.random.default_rng(seed)
    m = 50
    base = rng.lognormal(1.0, 1.2, m)
    rows, meta = [], []
    for p in range(patients):
        arm = "capsule" if p % 2 else "placebo"
        signature = rng.lognormal(0.0, 0.7, m)
        for v in range(visits):
            drift = np.exp(0.25 * v * np.sin(np.arange(m)))
            boost = np.where((arm == "capsule") & (np.arange(m) < 8), 1.0 + 0.35 * v, 1.0)
            rows.append(rng.poisson(base * signature * drift * boost * rng.lognormal(0, 0.3, m)))
            meta.append(
                {
                    "sample": f"P{p:02d}V{v}",
                    "patient": f"P{p:02d}",
                    "arm": arm,
                    "visit": f"V{v}",
                    "age": 50 + (p * 7) % 23,
                }
            )
    x = np.array(rows, dtype=float)
    x[x.sum(axis=1) == 0, 0] = 1
    return x, pd.DataFrame(meta).set_index("sample")


def p_close(ours: float, theirs: float, permutations: int = 999) -> bool:
    """Two independent permutation p-values agree within sampling error (omics.md: 3 sqrt(p(1-p)/P), per side)."""
    p = (ours + theirs) / 2
    return abs(ours - theirs) <= 3 * np.sqrt(2 * p * (1 - p) / permutations) + 2 / (permutations + 1)


@pytest.fixture(scope="module")
def data() -> tuple[object, pd.DataFrame]:
    x, meta = trial_like()
    return bray_curtis(x, list(meta.index)), meta


# ------------------------------------------------------------------------------------------- vs skbio


def test_permanova_and_anosim_equal_skbio(data: tuple) -> None:
    from skbio.stats.distance import anosim as skbio_anosim
    from skbio.stats.distance import permanova as skbio_permanova

    dist, meta = data
    grouping = meta["visit"]
    ours = permanova(dist, grouping, permutations=199, seed=3)
    ref = skbio_permanova(dist.to_skbio(), grouping.loc[list(dist.ids)].to_numpy(), permutations=199, seed=3)
    assert ours.statistic == pytest.approx(ref["test statistic"], rel=1e-10)
    f, g, n = ours.statistic, 3, 60
    assert ours.details["R2"] == pytest.approx(1 / (1 + (n - g) / ((g - 1) * f)), rel=1e-12)
    ours_r = anosim(dist, grouping, permutations=0)
    ref_r = skbio_anosim(dist.to_skbio(), grouping.loc[list(dist.ids)].to_numpy(), permutations=0)
    assert ours_r.statistic == pytest.approx(ref_r["test statistic"], rel=1e-12)


def test_permutations_are_seeded_and_respect_blocks() -> None:
    a = permutation_matrix(12, 50, seed=1)
    np.testing.assert_array_equal(a, permutation_matrix(12, 50, seed=1))
    assert np.all(np.sort(a, axis=1) == np.arange(12))
    strata = np.repeat(["p1", "p2", "p3"], 4)
    s = permutation_matrix(12, 50, seed=2, strata=strata)
    assert np.all(strata[s] == strata)  # every sample stays within its block
    labels = np.repeat([0, 1, 0], 4)
    plots = np.repeat(["p1", "p2", "p3"], 4)
    w = _plot_labels(labels, plots, 30, seed=3)
    assert np.all(w.reshape(30, 3, 4).std(axis=2) == 0)  # constant within each patient
    assert set(map(tuple, w[:, ::4])) <= {(0, 1, 0), (1, 0, 0), (0, 0, 1)}
    with pytest.raises(ValueError, match="constant within"):
        _plot_labels(np.array([0, 1, 0, 0]), np.array(["a", "a", "b", "b"]), 5, seed=0)


def test_whole_patient_permutations_keep_each_patient_label_constant() -> None:
    """Exact property: under whole-patient permutation every permuted design gives all visits of a patient the
    same between-patient label, and patients are permuted as units (a bijection of patients)."""
    rng = np.random.default_rng(5)
    sizes = rng.integers(1, 6, size=17)  # unbalanced: 1-5 visits per patient
    patient = np.repeat([f"P{i:02d}" for i in range(17)], sizes)
    order = rng.permutation(patient.size)  # samples in any order, not grouped by patient
    patient = patient[order]
    per_patient = dict(zip([f"P{i:02d}" for i in range(17)], rng.integers(0, 3, 17), strict=True))
    label = np.array([per_patient[p] for p in patient])
    visit = np.array([f"V{k}" for k in rng.integers(0, 5, patient.size)])
    donors = whole_plot_permutations(patient, 400, seed=11)
    design = np.c_[label.astype(float), (visit == "V1").astype(float)]
    designs = _whole_plot_designs(design, np.array([True, False]), donors)
    for b in range(donors.shape[0]):
        permuted = pd.Series(designs[b, :, 0]).groupby(patient).nunique()
        assert (permuted == 1).all()  # one label per patient across all of their visits
        np.testing.assert_array_equal(designs[b, :, 1], design[:, 1])  # the within-patient term is untouched
        source = pd.Series(patient[donors[b]]).groupby(patient).unique()
        assert all(len(s) == 1 for s in source)  # each patient's rows come from one donor patient...
        assert sorted(s[0] for s in source) == sorted(set(patient))  # ...and every patient donates once
    # balanced plots: a row permutation, j-th sample of plot i <- j-th sample of plot pi(i) (permute's shuffleStrata)
    balanced = np.repeat(["a", "b", "c", "d"], 3)
    rows = whole_plot_permutations(balanced, 50, seed=1)
    assert np.all(np.sort(rows, axis=1) == np.arange(12))
    assert np.all(rows.reshape(50, 4, 3) % 3 == np.arange(3)) and np.all(
        np.ptp(rows.reshape(50, 4, 3) // 3, axis=2) == 0
    )
    with pytest.raises(ValueError, match="constant within"):
        adonis2(
            np.abs(np.subtract.outer(np.arange(12.0), np.arange(12.0))),
            pd.DataFrame({"v": np.tile([0, 1, 2], 4), "p": balanced}),
            ["v"],
            plots="p",
            schemes={"v": "whole_plots"},
        )


def test_whole_plot_permanova_for_patient_level_factor(data: tuple) -> None:
    dist, meta = data
    free = permanova(dist, meta["arm"], permutations=499, seed=1)
    plots = permanova(dist, meta["arm"], permutations=499, seed=1, whole_plots=meta["patient"])
    assert plots.statistic == free.statistic and plots.details["scheme"] == "whole_plots"
    # repeated samples of one patient are not exchangeable: the free test is anti-conservative here
    assert plots.p_value >= free.p_value
    within = permanova(dist, meta["visit"], permutations=499, seed=1, strata=meta["patient"])
    assert within.details["scheme"] == "within_strata"


def test_missing_groups_drop_samples(data: tuple) -> None:
    dist, meta = data
    grouping = meta["arm"].copy()
    grouping.iloc[:6] = None
    res = permanova(dist, grouping, permutations=0)
    assert res.sample_size == 54 and np.isnan(res.p_value)


# ------------------------------------------------------------------------------------------- alpha


def test_alpha_group_tests_kruskal_wilcoxon_bh() -> None:
    rng = np.random.default_rng(4)
    groups = pd.Series(np.repeat(["a", "b", "c"], 10), index=[f"s{i}" for i in range(30)])
    alpha = pd.DataFrame(
        {"shannon": rng.normal(3, 0.3, 30) + np.repeat([0, 0.5, 0], 10), "sobs": rng.poisson(100, 30)},
        index=groups.index,
    )
    out = alpha_group_tests(alpha, groups)
    kw = out[out["test"] == "kruskal"].set_index("index")
    h, p = stats.kruskal(*[alpha.loc[groups == g, "shannon"] for g in "abc"])
    assert kw.loc["shannon", "statistic"] == pytest.approx(h) and kw.loc["shannon", "p_value"] == pytest.approx(p)
    from statsmodels.stats.multitest import multipletests

    np.testing.assert_allclose(kw["q_value"], multipletests(kw["p_value"], method="fdr_bh")[1])
    pair = out[(out["test"] == "wilcoxon_ranksum") & (out["index"] == "shannon")].iloc[0]
    _, pu = stats.mannwhitneyu(alpha.loc[groups == "a", "shannon"], alpha.loc[groups == "b", "shannon"])
    assert (pair["group_a"], pair["group_b"]) == ("a", "b") and pair["p_value"] == pytest.approx(pu)
    assert len(out) == 2 * (1 + 3)
    np.testing.assert_allclose(bh([0.01, np.nan, 0.04, 0.03]), [0.03, np.nan, 0.04, 0.04])


def test_signed_rank_test_equals_scipy_including_its_exact_permutation_null() -> None:
    """scipy's wilcoxon(method="auto") runs an exact permutation test for n <= 13 with ties or zeros (2^n Python
    calls); signed_rank_test computes that null in one product and must give scipy's statistic and p exactly."""
    rng = np.random.default_rng(8)
    cases = [
        np.array([1.0, -2, 2, 3, 0, 1]),  # ties and a zero
        np.array([0.5, 0.5, 0.5, -0.5]),
        np.array([3.0, 1, -1, 0, 0, 2, 2, 5, -4, 1]),
        rng.normal(0, 1, 12),  # no ties: scipy's exact distribution, passed through
        np.round(rng.normal(0.4, 1, 30), 1),  # n > 13: normal approximation, passed through
    ]
    cases += [rng.integers(-3, 4, n).astype(float) for n in (5, 7, 9, 10)]
    for d in cases:
        if not np.any(d != 0):
            continue
        ours = signed_rank_test(d)
        theirs = stats.wilcoxon(d)
        assert ours == (float(theirs.statistic), float(theirs.pvalue)), (d, ours, theirs)


def test_change_from_baseline(data: tuple) -> None:
    dist, meta = data
    changes = distance_to_baseline(dist, meta, patient="patient", visit="visit", baseline="V0")
    assert len(changes) == 40 and set(changes["visit"]) == {"V1", "V2"}
    row = changes.iloc[0]
    sq = dist.to_frame()
    assert row["distance"] == sq.loc[row["sample_id"], row["baseline_sample_id"]]
    assert row["baseline_sample_id"].endswith("V0") and row["baseline_sample_id"][:3] == row["sample_id"][:3]
    tests = baseline_distance_tests(changes, visit="visit", group="arm")
    assert list(tests["visit"]) == ["V1", "V2"] and tests["test"].eq("wilcoxon_ranksum").all()
    lone = meta.drop(index="P03V0")
    partial = distance_to_baseline(dist, lone, patient="patient", visit="visit", baseline="V0")
    assert partial.attrs["patients_without_baseline"] == ["P03"] and len(partial) == 38
    alpha = pd.DataFrame({"shannon": np.linspace(1, 2, 60)}, index=meta.index)
    ch = alpha_change_tests(alpha, meta, patient="patient", visit="visit", baseline="V0", group="arm")
    assert set(ch["test"]) == {"wilcoxon_signedrank", "wilcoxon_ranksum"}
    assert (ch.loc[ch["test"] == "wilcoxon_signedrank", "median_change_a"] > 0).all()


# ------------------------------------------------------------------------------------------- vegan oracle


@pytest.fixture(scope="module")
def vegan(data: tuple, tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    if reason := _oracles.vegan_missing():
        pytest.skip(reason)
    dist, meta = data
    work = tmp_path_factory.mktemp("vegan_groups")
    code = """
d <- as.dist(as.matrix(read.csv("d.csv", row.names = 1)))
m <- read.csv("meta.csv", row.names = 1, stringsAsFactors = TRUE)
tab <- function(a) data.frame(term = rownames(a), Df = a$Df, SS = a$SumOfSqs, R2 = a$R2, F = a$F, p = a[["Pr(>F)"]])
write.csv(tab(adonis2(d ~ arm, data = m, permutations = 999)), "adonis_arm.csv", row.names = FALSE)
write.csv(tab(adonis2(d ~ visit + age, data = m, permutations = 999)), "adonis_terms.csv", row.names = FALSE)
write.csv(tab(adonis2(d ~ visit, data = m, permutations = 999, strata = m$patient)), "adonis_strata.csv",
          row.names = FALSE)
# repeated measures: whole patients permuted for the between-patient terms, visits within patients
hp <- how(plots = Plots(strata = m$patient, type = "free"), within = Within(type = "none"), nperm = 999)
plots <- adonis2(d ~ visit + arm + age, data = m, permutations = hp)
within <- adonis2(d ~ visit + arm + age, data = m, permutations = 999, strata = m$patient)
write.csv(tab(plots), "adonis_plots.csv", row.names = FALSE)
write.csv(tab(within), "adonis_within.csv", row.names = FALSE)
write.csv(attr(plots, "F.perm"), "fperm_plots.csv", row.names = FALSE)
write.csv(attr(within, "F.perm"), "fperm_within.csv", row.names = FALSE)
for (type in c("centroid", "median")) {
  b <- betadisper(d, m$visit, type = type)
  pt <- permutest(b, permutations = 999)
  write.csv(data.frame(sample = names(b$distances), z = b$distances), paste0("bd_", type, ".csv"), row.names = FALSE)
  writeLines(format(c(pt$tab$F[1], pt$tab[["Pr(>F)"]][1]), digits = 17), paste0("bd_", type, ".txt"))
}
a <- anosim(d, m$visit, permutations = 999)
writeLines(format(c(a$statistic, a$signif), digits = 17), "anosim.txt")
"""
    _oracles.run_r(code, work, {"d": dist.to_frame(), "meta": meta})
    names = ("adonis_arm", "adonis_terms", "adonis_strata", "adonis_plots", "adonis_within")
    read = {name: pd.read_csv(work / f"{name}.csv") for name in (*names, "fperm_plots", "fperm_within")}
    out: dict[str, object] = dict(read)
    for type_ in ("centroid", "median"):
        out[f"bd_{type_}"] = pd.read_csv(work / f"bd_{type_}.csv").set_index("sample")["z"]
        out[f"bd_{type_}_stat"] = np.array((work / f"bd_{type_}.txt").read_text().split(), dtype=float)
    out["anosim"] = np.array((work / "anosim.txt").read_text().split(), dtype=float)
    return out


def check_table(ours: pd.DataFrame, theirs: pd.DataFrame) -> None:
    np.testing.assert_array_equal(ours["Df"].to_numpy(), theirs["Df"].to_numpy())
    np.testing.assert_allclose(ours["SumOfSqs"].to_numpy(), theirs["SS"].to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(ours["R2"].to_numpy(), theirs["R2"].to_numpy(), rtol=1e-10)
    k = len(ours) - 2
    np.testing.assert_allclose(ours["F"].to_numpy()[:k], theirs["F"].to_numpy()[:k], rtol=1e-10)
    for a, b in zip(ours["Pr(>F)"].to_numpy()[:k], theirs["p"].to_numpy()[:k], strict=True):
        assert p_close(a, b), (a, b)


@pytest.mark.oracle
def test_permanova_equals_adonis2_single_factor(data: tuple, vegan: dict) -> None:
    dist, meta = data
    ours = permanova(dist, meta["arm"], permutations=999, seed=7)
    theirs = vegan["adonis_arm"]
    assert ours.statistic == pytest.approx(theirs["F"][0], rel=1e-10)
    assert ours.details["R2"] == pytest.approx(theirs["R2"][0], rel=1e-10)
    assert p_close(ours.p_value, theirs["p"][0]), (ours.p_value, theirs["p"][0])
    check_table(adonis2(dist, meta, ["arm"], seed=7), theirs)


@pytest.mark.oracle
def test_adonis2_sequential_terms_and_strata(data: tuple, vegan: dict) -> None:
    dist, meta = data
    check_table(adonis2(dist, meta, ["visit", "age"], seed=8), vegan["adonis_terms"])
    check_table(adonis2(dist, meta, ["visit"], strata="patient", seed=9), vegan["adonis_strata"])


@pytest.mark.oracle
def test_permdisp_equals_betadisper(data: tuple, vegan: dict) -> None:
    dist, meta = data
    # median type: vegan's BFGS spatial median is approximate (see group_tests docstring), ours is exact
    for type_, tol, f_tol in (("centroid", 1e-10, 1e-9), ("median", 2e-3, 2e-2)):
        ours = permdisp(dist, meta["visit"], type=type_, permutations=999, seed=5)
        theirs = vegan[f"bd_{type_}"].loc[list(dist.ids)].to_numpy()
        np.testing.assert_allclose(ours.details["distances"].to_numpy(), theirs, rtol=tol, atol=tol)
        f, p = vegan[f"bd_{type_}_stat"]
        assert ours.statistic == pytest.approx(f, rel=f_tol)
        assert p_close(ours.p_value, p), (type_, ours.p_value, p)


@pytest.mark.oracle
def test_anosim_equals_vegan(data: tuple, vegan: dict) -> None:
    dist, meta = data
    ours = anosim(dist, meta["visit"], permutations=999, seed=6)
    r, p = vegan["anosim"]
    assert ours.statistic == pytest.approx(r, rel=1e-12)
    assert p_close(ours.p_value, p), (ours.p_value, p)


def p_within_error(ours: float, theirs: float, permutations: int = 999) -> bool:
    """The brief's tolerance: |p - p_R| < 3 sqrt(p_R (1 - p_R) / P) + 1/1000 (P = 999 permutations)."""
    return abs(ours - theirs) < 3 * np.sqrt(theirs * (1 - theirs) / permutations) + 1 / 1000


@pytest.mark.oracle
def test_adonis2_repeated_measures_schemes_equal_vegan(data: tuple, vegan: dict) -> None:
    """visit + arm + age, 20 patients x 3 visits (balanced, sorted by patient): arm and age (constant within a
    patient) by whole-patient permutations = vegan how(plots = Plots(strata = patient), within = Within("none")),
    visit by permutations within patients = vegan strata = patient."""
    dist, meta = data
    ours = adonis2(dist, meta, ["visit", "arm", "age"], plots="patient", permutations=999, seed=12)
    assert ours.attrs["schemes"] == {"visit": "within", "arm": "whole_plots", "age": "whole_plots"}
    plots, within = vegan["adonis_plots"], vegan["adonis_within"]
    for theirs in (plots, within):  # F, R2 and SS do not depend on the permutations
        np.testing.assert_allclose(ours["SumOfSqs"].to_numpy(), theirs["SS"].to_numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ours["R2"].to_numpy(), theirs["R2"].to_numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ours["F"].to_numpy()[:3], theirs["F"].to_numpy()[:3], rtol=1e-10)
    p_r = {"visit": within["p"][0], "arm": plots["p"][1], "age": plots["p"][2]}
    for term, theirs in p_r.items():
        assert p_within_error(ours.loc[term, "Pr(>F)"], theirs), (term, ours.loc[term, "Pr(>F)"], theirs)
    # the whole null distributions agree (two-sample Kolmogorov-Smirnov, 999 permutations each)
    null = {"visit": vegan["fperm_within"].iloc[:, 0], "arm": vegan["fperm_plots"].iloc[:, 1]}
    null["age"] = vegan["fperm_plots"].iloc[:, 2]
    for k, term in enumerate(("visit", "arm", "age")):
        ks = stats.ks_2samp(ours.attrs["F_perm"][:, k], null[term].to_numpy())
        assert ks.pvalue > 1e-3, (term, ks)
    # without plots, vegan's single scheme for every term
    strat = adonis2(dist, meta, ["visit", "arm", "age"], strata="patient", permutations=999, seed=13)
    for k, term in enumerate(("visit", "arm", "age")):
        assert p_within_error(strat.loc[term, "Pr(>F)"], within["p"][k]), term
    # whole-patient permutations for every between-patient term, as vegan: visit keeps its F when visits are
    # aligned across patients, so under vegan's whole-plot scheme visit is not tested (p near 1)
    whole = adonis2(dist, meta, ["arm", "age"], plots="patient", permutations=999, seed=14)
    assert set(whole["scheme"].dropna()) == {"whole_plots"}
    assert plots["p"][0] > 0.5
