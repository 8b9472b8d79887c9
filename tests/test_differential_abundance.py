"""Taxonomy parsing and collapsing; differential abundance recovers the simulated truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import patsy
import pytest
import scipy.sparse as sp

from analysis.microbiome.beta import clr
from analysis.microbiome.differential import (
    by_visit,
    clr_lmm,
    clr_wilcoxon,
    differential_abundance,
    prevalence_filter,
)
from analysis.microbiome.taxa import RANKS, collapse, parse_taxonomy, taxonomy_table, unassigned_label

# real mothur classify.otu output (MIT): the repo's reader fixture, else the team's shared data folder
WOLFE_TAXONOMY = next(
    (
        p
        for p in (
            Path(__file__).parent / "fixtures" / "mothur" / "wolfe-guides" / "final.opti_mcc.0.03.cons.taxonomy",
            Path("/work/shared/data/wolfe-guides/final.opti_mcc.0.03.cons.taxonomy"),
        )
        if p.exists()
    ),
    Path("final.opti_mcc.0.03.cons.taxonomy (not found)"),
)

# ------------------------------------------------------------------------------------------- taxonomy

FULL = ["Bacteria", "Bacillota", "Clostridia", "Lachnospirales", "Lachnospiraceae", "Blautia"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # SILVA 138 / QIIME 2
        (
            "d__Bacteria; p__Bacillota; c__Clostridia; o__Lachnospirales; f__Lachnospiraceae; g__Blautia; s__",
            [*FULL, None],
        ),
        # Greengenes: k__ is the domain; a bare epithet becomes the binomial
        (
            "k__Bacteria; p__Bacteroidetes; c__Bacteroidia; o__Bacteroidales; f__Bacteroidaceae; g__Bacteroides; "
            "s__fragilis",
            [
                "Bacteria",
                "Bacteroidetes",
                "Bacteroidia",
                "Bacteroidales",
                "Bacteroidaceae",
                "Bacteroides",
                "Bacteroides fragilis",
            ],
        ),
        # mothur classify.otu with confidences and a trailing ';'
        (
            "Bacteria(100);Bacillota(100);Clostridia(100);Lachnospirales(99);Lachnospiraceae(98);Blautia(97);",
            [*FULL, None],
        ),
        # mothur unresolved level
        (
            "Bacteria(100);Bacillota(100);Clostridia(100);Lachnospirales(99);Lachnospiraceae(98);"
            "Lachnospiraceae_unclassified(98);",
            [*FULL[:5], None, None],
        ),
        # Majorbio: k__ below d__ is a kingdom filler, norank/unclassified fillers are unassigned
        (
            "d__Bacteria;k__norank_d__Bacteria;p__Bacillota;c__Clostridia;o__Lachnospirales;f__Lachnospiraceae;"
            "g__unclassified_f__Lachnospiraceae;s__uncultured_bacterium_g__unclassified_f__Lachnospiraceae",
            [*FULL[:5], None, None],
        ),
        # SILVA placeholders
        (
            "d__Bacteria; p__Bacillota; c__Clostridia; o__Oscillospirales; f__Ruminococcaceae; g__uncultured; "
            "s__gut_metagenome",
            ["Bacteria", "Bacillota", "Clostridia", "Oscillospirales", "Ruminococcaceae", None, None],
        ),
        # RDP quoted names and a leading Root
        ('Root;"Bacteria"(100);"Bacteroidetes"(100);', ["Bacteria", "Bacteroidetes", None, None, None, None, None]),
        ("Unassigned", [None] * 7),
        ("", [None] * 7),
        (None, [None] * 7),
    ],
)
def test_parse_taxonomy(text: str | None, expected: list[str | None]) -> None:
    assert [parse_taxonomy(text)[r] for r in RANKS] == expected


def test_taxonomy_table_and_collapse_on_real_mothur_taxonomy() -> None:
    if not WOLFE_TAXONOMY.exists():
        pytest.skip(f"{WOLFE_TAXONOMY} not present")
    raw = pd.read_csv(WOLFE_TAXONOMY, sep="\t", index_col=0)["Taxonomy"]
    table = taxonomy_table(raw)
    assert table.shape == (2719, 8) and table.loc["Otu0001", "genus"] == "Phocaeicola"
    rng = np.random.default_rng(0)
    counts = sp.random(
        6, len(table), density=0.3, random_state=1, format="csr", data_rvs=lambda k: rng.integers(1, 9, k)
    )
    genus = collapse(counts, table, "genus", feature_ids=table.index)
    assert genus.counts.sum() == counts.sum()  # nothing lost: unassigned features are bucketed
    assert unassigned_label("genus") in genus.taxa
    assert len(set(genus.taxa)) == len(genus.taxa)
    phocaeicola = genus.taxa.index("Phocaeicola")
    members = np.flatnonzero(table["genus"].to_numpy() == "Phocaeicola")
    np.testing.assert_array_equal(genus.counts[:, phocaeicola].toarray().ravel(), counts[:, members].sum(axis=1).A1)
    assert genus.lineage.loc["Phocaeicola", "family"] == "Bacteroidaceae"


def test_collapse_modes_and_homonyms() -> None:
    tax = taxonomy_table(
        {
            "a": "d__Bacteria;p__P1;c__C1;o__O1;f__F1;g__Clostridium",
            "b": "d__Bacteria;p__P1;c__C1;o__O1;f__F2;g__Clostridium",  # same genus name, other family
            "c": "d__Bacteria;p__P1;c__C1;o__O1;f__F1;g__",
            "d": "d__Bacteria;p__P1;c__C1;o__O1;f__F1;g__Clostridium",
            "e": "Unassigned",
        }
    )
    x = np.array([[1, 2, 3, 4, 5], [10, 20, 30, 40, 50]])
    bucket = collapse(x, tax, "genus")
    assert bucket.taxa == ("Clostridium (F1)", "Clostridium (F2)", "Unassigned genus")
    np.testing.assert_array_equal(bucket.counts.toarray(), [[5, 2, 8], [50, 20, 80]])
    parent = collapse(x, tax, "genus", unassigned="parent")
    assert set(parent.taxa) == {"Clostridium (F1)", "Clostridium (F2)", "F1 (unassigned genus)", "Unassigned genus"}
    drop = collapse(x, tax, "genus", unassigned="drop")
    assert drop.counts.sum() == x[:, [0, 1, 3]].sum() and list(drop.feature_taxon) == [0, 1, -1, 0, -1]
    phylum = collapse(x, tax, "phylum")
    assert phylum.taxa == ("P1", "Unassigned phylum")


# --------------------------------------------------------------------------------- simulated trial (truth)

TRUTH = ("G02", "G05", "G08", "G12", "G17")


def simulate(seed: int = 11, patients: int = 24, genera: int = 40) -> tuple[np.ndarray, list[str], pd.DataFrame]:
    """Dirichlet-multinomial counts: 2 arms x 3 visits; TRUTH genera x4 in the capsule arm after baseline."""
    rng = np.random.default_rng(seed)
    taxa = [f"G{j:02d}" for j in range(genera)]
    mu = np.sort(rng.normal(0.0, 1.0, genera))[::-1]  # G00 most abundant
    truth = np.isin(taxa, TRUTH)
    rows, meta = [], []
    for p in range(patients):
        arm = "capsule" if p % 2 else "placebo"
        patient_effect = rng.normal(0.0, 0.4, genera)
        for v in range(3):
            eta = mu + patient_effect + rng.normal(0.0, 0.25, genera)
            if arm == "capsule" and v > 0:
                eta = eta + np.log(4.0) * truth
            prop = np.exp(eta) / np.exp(eta).sum()
            rows.append(rng.multinomial(int(rng.integers(8_000, 20_000)), rng.dirichlet(prop * 3000)))
            meta.append(
                {
                    "sample": f"P{p:02d}V{v}",
                    "patient": f"P{p:02d}",
                    "arm": arm,
                    "visit": v,
                    "response": "responder" if (p // 2) % 3 == 0 else "non-responder",
                }
            )
    return np.array(rows), taxa, pd.DataFrame(meta).set_index("sample")


@pytest.fixture(scope="module")
def trial() -> tuple[np.ndarray, list[str], pd.DataFrame]:
    return simulate()


def test_prevalence_filter() -> None:
    x = np.array([[5, 0, 0, 1], [3, 0, 0, 0], [4, 1, 0, 0], [6, 0, 9, 0]])
    assert prevalence_filter(x, min_prevalence=0.5).tolist() == [True, False, False, False]
    assert prevalence_filter(x, min_prevalence=0.5, groups=["a", "a", "b", "b"]).tolist() == [True, True, True, True]
    assert prevalence_filter(x, min_prevalence=0.0, min_mean_abundance=0.1).tolist() == [True, False, True, False]


def test_clr_wilcoxon_by_visit_recovers_truth(trial: tuple) -> None:
    x, taxa, meta = trial
    res = by_visit(x, taxa, meta, group="arm", visit="visit", reference="placebo")
    for v in (1, 2):
        top = res[res["visit"] == v].nsmallest(len(TRUTH), "p_value")
        assert set(top["taxon"]) == set(TRUTH), top
        assert (top["effect"] > 0.8).all() and (top["q_value"] < 0.05).all()
        assert set(top["contrast"]) == {"arm: capsule vs placebo"}
    baseline = res[res["visit"] == 0]
    assert (baseline["q_value"] > 0.05).all()  # no arm difference before the capsules


def test_clr_lmm_arm_by_visit_interaction_recovers_truth(trial: tuple) -> None:
    x, taxa, meta = trial
    md = meta.assign(arm=pd.Categorical(meta["arm"], categories=["placebo", "capsule"]))
    res = clr_lmm(x, taxa, md, formula="arm * C(visit)", patient="patient")
    assert res["converged"].all() and res["error"].isna().all()
    for term in ("arm[T.capsule]:C(visit)[T.1]", "arm[T.capsule]:C(visit)[T.2]"):
        top = res[res["term"] == term].nsmallest(len(TRUTH), "p_value")
        assert set(top["taxon"]) == set(TRUTH), (term, top)
        assert (top["effect"] > 0.8).all() and (top["q_value"] < 0.01).all()


def test_ancombc_recovers_truth_at_last_visit(trial: tuple) -> None:
    x, taxa, meta = trial
    last = (meta["visit"] == 2).to_numpy()
    res = differential_abundance(x[last], taxa, meta[last], group="arm", method="ancombc", reference="placebo")
    top = res.nsmallest(len(TRUTH), "p_value")
    assert set(top["taxon"]) == set(TRUTH), top
    assert (top["effect"] > 0.8).all() and (top["q_value"] < 0.05).all()
    assert set(res["contrast"]) == {"arm: capsule vs placebo"}


def test_responder_status_has_no_false_discoveries(trial: tuple) -> None:
    x, taxa, meta = trial
    res = differential_abundance(
        x,
        taxa,
        meta,
        group="response",
        method="clr_lmm",
        patient="patient",
        covariates=["C(visit)"],
        reference="non-responder",
    )
    assert len(res) == len(taxa) and set(res["contrast"]) == {"response: responder vs non-responder"}
    assert (res["q_value"] > 0.05).mean() > 0.9  # response is unrelated to the simulated abundances
    at_baseline = clr_wilcoxon(
        x[(meta["visit"] == 0).to_numpy()], taxa, meta[meta["visit"] == 0], group="response", reference="non-responder"
    )
    assert (at_baseline["q_value"] > 0.05).all()


def test_clr_lmm_vectorised_equals_statsmodels_mixedlm(trial: tuple) -> None:
    """All taxa at once (analysis.stats_mixed, REML, statsmodels' observed-information covariance) vs statsmodels
    MixedLM fitted taxon by taxon: coefficients, SEs and p-values within 1e-5."""
    x, taxa, meta = trial
    md = meta.assign(arm=pd.Categorical(meta["arm"], categories=["placebo", "capsule"]))
    keep = [0, 2, 5, 8, 12, 17, 23, 31]  # truly differential and null taxa, abundant and rare
    sub = [taxa[j] for j in keep]
    formula = "arm * C(visit) + response"
    fast = clr_lmm(x, taxa, md, formula=formula, patient="patient")
    slow = clr_lmm(x, taxa, md, formula=formula, patient="patient", engine="statsmodels")
    assert slow["converged"].all() and fast["converged"].all()
    a = fast[fast["taxon"].isin(sub)].set_index(["taxon", "term"]).sort_index()
    b = slow[slow["taxon"].isin(sub)].set_index(["taxon", "term"]).sort_index()
    assert len(a) == len(sub) * 6 and a.index.equals(b.index)
    for column in ("effect", "p_value"):
        np.testing.assert_allclose(a[column], b[column], rtol=0, atol=1e-5, err_msg=column)
    # statsmodels' BFGS stops at ~1e-5 relative in the patient variance (ours: golden section to 1e-10 in log
    # gamma), which moves SE and z in the 5th digit; the coefficients agree to ~1e-12
    for column in ("se", "statistic"):
        np.testing.assert_allclose(a[column], b[column], rtol=1e-4, err_msg=column)
    np.testing.assert_allclose(a["effect"], b["effect"], rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(a["group_var"], b["group_var"], rtol=1e-3, atol=1e-6)
    # the GLS covariance (R nlme/lme4's) differs from statsmodels' in the 3rd-4th digit: the choice matters
    from analysis.stats_mixed import random_intercept_reml

    z = clr(x, 0.5)
    exog = patsy.dmatrix(formula, md, return_type="dataframe")
    gls = random_intercept_reml(z[:, keep], exog.to_numpy(), md["patient"].to_numpy(), covariance="gls")
    observed = random_intercept_reml(z[:, keep], exog.to_numpy(), md["patient"].to_numpy(), covariance="observed")
    np.testing.assert_allclose(gls["beta"], observed["beta"], rtol=0, atol=0)
    assert not np.allclose(gls["cov"], observed["cov"], rtol=1e-6, atol=0)


def test_by_visit_leaves_out_a_visit_with_one_group_level(trial: tuple) -> None:
    # early cut-off: at visit 2 every sampled patient is still in one group (e.g. no responder yet)
    x, taxa, meta = trial
    one_level = meta.copy()
    one_level.loc[one_level["visit"] == 2, "arm"] = "placebo"
    res = by_visit(x, taxa, one_level, group="arm", visit="visit", reference="placebo")
    assert set(res["visit"]) == {0, 1}
    full = by_visit(x, taxa, meta, group="arm", visit="visit", reference="placebo")
    pd.testing.assert_frame_equal(res, full[full["visit"] != 2].reset_index(drop=True))
    nobody = meta.assign(arm="placebo")
    assert by_visit(x, taxa, nobody, group="arm", visit="visit", reference="placebo").empty
