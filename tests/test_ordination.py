"""Ordination: PCoA vs scikit-bio, Lingoes PCoA vs mothur and vegan, NMDS vs vegan metaMDS, PCA on CLR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import pdist, squareform

from analysis.microbiome import _oracles
from analysis.microbiome.beta import aitchison, bray_curtis, read_phylip, write_phylip
from analysis.microbiome.ordination import (
    kruskal_stress,
    mothur_loadings,
    nmds,
    pca_clr,
    pcoa,
    procrustes,
    write_mothur_pcoa,
)

FIXTURES = Path(__file__).parent / "fixtures" / "beta"


def clustered_counts(n_per: int = 10, groups: int = 3, m: int = 60, seed: int = 0) -> pd.DataFrame:
    """Counts with ``groups`` distinct community types (so ordinations have structure to find)."""
    rng = np.random.default_rng(seed)
    rows, names = [], []
    for g in range(groups):
        centre = rng.lognormal(0.0, 1.5, m)
        centre[rng.random(m) < 0.4] = 0.0
        for i in range(n_per):
            lam = centre * rng.lognormal(0.0, 0.5, m)
            rows.append(rng.poisson(lam * 20))
            names.append(f"g{g}s{i:02d}")
    x = np.array(rows, dtype=float)
    x[x.sum(axis=1) == 0, 0] = 1
    return pd.DataFrame(x, index=names)


def gradient_counts(n: int = 30, m: int = 40, seed: int = 0) -> pd.DataFrame:
    """Counts along two environmental gradients with unimodal species responses (classic NMDS test data)."""
    rng = np.random.default_rng(seed)
    site = rng.uniform(0, 10, size=(n, 2))
    optimum = rng.uniform(-2, 12, size=(m, 2))
    width = rng.uniform(2, 4, size=m)
    height = rng.lognormal(2.0, 1.0, size=m)
    dist2 = ((site[:, None, :] - optimum[None, :, :]) ** 2).sum(axis=2)
    x = rng.poisson(height * np.exp(-dist2 / (2 * width**2))).astype(float)
    x[x.sum(axis=1) == 0, 0] = 1
    return pd.DataFrame(x, index=[f"site{i:02d}" for i in range(n)])


def same_up_to_sign(a: np.ndarray, b: np.ndarray, atol: float) -> None:
    for k in range(a.shape[1]):
        sign = 1.0 if np.dot(a[:, k], b[:, k]) >= 0 else -1.0
        np.testing.assert_allclose(a[:, k], sign * b[:, k], atol=atol, err_msg=f"axis {k + 1}")


# ----------------------------------------------------------------------------------------- PCoA vs skbio


def test_pcoa_equals_skbio_eigh() -> None:
    from skbio.stats.ordination import pcoa as skbio_pcoa

    d = bray_curtis(clustered_counts(seed=1))
    ours = pcoa(d)
    with pytest.warns(RuntimeWarning):  # skbio warns about the negative eigenvalues of Bray–Curtis
        ref = skbio_pcoa(d.to_skbio())
    k = ours.coordinates.shape[1]
    ref_eig = ref.eigvals.to_numpy()
    np.testing.assert_allclose(ours.eigenvalues, ref_eig[:k], rtol=1e-9)
    assert np.all(ref_eig[k:] == 0)  # skbio zeroes the negative ones; we return only positive axes
    np.testing.assert_allclose(ours.proportion_explained, ref.proportion_explained.to_numpy()[:k], rtol=1e-9)
    same_up_to_sign(ours.coordinates, ref.samples.to_numpy()[:, :k], atol=1e-9)
    assert ours.details["proportion_basis"] == "sum_positive"
    assert ours.details["negative_sum"] < 0
    assert ours.to_frame().shape == (30, k) and list(ours.to_long().columns) == ["sample_id", "axis", "value"]


def test_partial_pcoa_matches_full() -> None:
    d = bray_curtis(clustered_counts(seed=2))
    full = pcoa(d)
    part = pcoa(d, dimensions=4, exact_proportions=True)
    np.testing.assert_allclose(part.eigenvalues, full.eigenvalues[:4], rtol=1e-9)
    np.testing.assert_allclose(part.proportion_explained, full.proportion_explained[:4], rtol=1e-9)
    same_up_to_sign(part.coordinates, full.coordinates[:, :4], atol=1e-8)
    trace_based = pcoa(d, dimensions=4)
    assert trace_based.details["proportion_basis"] == "trace"
    np.testing.assert_allclose(
        trace_based.proportion_explained, full.eigenvalues[:4] / full.details["trace"], rtol=1e-9
    )
    lingoes_full = pcoa(d, correction="lingoes")
    lingoes_part = pcoa(d, correction="lingoes", dimensions=4)
    np.testing.assert_allclose(lingoes_part.proportion_explained, lingoes_full.proportion_explained[:4], rtol=1e-8)


def test_pcoa_is_deterministic_and_euclidean_input_has_no_correction() -> None:
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(15, 3))
    d = squareform(pdist(pts))
    a, b = pcoa(d), pcoa(d)
    np.testing.assert_array_equal(a.coordinates, b.coordinates)
    assert a.coordinates.shape[1] == 3  # Euclidean distances in 3-D: three positive axes
    np.testing.assert_allclose(squareform(pdist(a.coordinates)), d, atol=1e-10)
    lingoes = pcoa(d, correction="lingoes")
    assert lingoes.details["lingoes_constant"] == pytest.approx(0.0, abs=1e-10)


# --------------------------------------------------------------------------------------- Lingoes / mothur


def test_lingoes_reproduces_committed_mothur_pcoa(tmp_path: Path) -> None:
    d = read_phylip(FIXTURES / "nine.braycurtis.square.dist")
    ours = pcoa(d, correction="lingoes")
    ours_loadings = mothur_loadings(ours)
    mothur = pd.read_csv(FIXTURES / "nine.braycurtis.pcoa.loadings", sep="\t")["loading"].to_numpy()
    assert mothur[0] == pytest.approx(34.801272, abs=1e-6)
    # mothur's tqli eigen-solver converges loosely: axes 1 and 2 trade ~6e-5 percentage points (their sum and
    # all other axes agree to the printed precision). omics.md §1.8 reports the same 34.80133 vs 34.801272.
    np.testing.assert_allclose(ours_loadings[:2], mothur[:2], atol=1e-4)
    assert ours_loadings[:2].sum() == pytest.approx(mothur[:2].sum(), abs=2e-6)
    np.testing.assert_allclose(ours_loadings[2:], mothur[2:], atol=1e-6)
    assert ours_loadings[0] == pytest.approx(34.80133, abs=1e-5)
    axes = pd.read_csv(FIXTURES / "nine.braycurtis.pcoa.axes", sep="\t", index_col=0)
    k = ours.coordinates.shape[1]
    same_up_to_sign(ours.coordinates, axes.to_numpy()[:, :k], atol=1e-2)
    assert np.all(axes.to_numpy()[:, k:] == 0)
    # skbio's convention on the same matrix: 36.274633 % (omics.md §1.8)
    assert pcoa(d).proportion_explained[0] * 100 == pytest.approx(36.274633, abs=1e-6)
    axes_path, load_path = write_mothur_pcoa(ours, tmp_path / "nine")
    assert axes_path.read_text().splitlines()[0] == (FIXTURES / "nine.braycurtis.pcoa.axes").read_text().splitlines()[0]
    written = pd.read_csv(load_path, sep="\t")["loading"].to_numpy()
    np.testing.assert_allclose(written[2:], mothur[2:], atol=1e-6)


@pytest.mark.oracle
def test_live_mothur_pcoa(tmp_path: Path) -> None:
    if reason := _oracles.mothur_missing():
        pytest.skip(reason)
    d = bray_curtis(clustered_counts(n_per=5, seed=4))
    write_phylip(d, tmp_path / "x.dist")
    _oracles.run_mothur("pcoa(phylip=x.dist)", tmp_path)
    theirs = pd.read_csv(tmp_path / "x.pcoa.loadings", sep="\t")["loading"].to_numpy()
    ours = mothur_loadings(pcoa(read_phylip(tmp_path / "x.dist"), correction="lingoes"))
    np.testing.assert_allclose(ours, theirs, atol=2e-4)  # tqli tolerance, see the committed case
    axes = pd.read_csv(tmp_path / "x.pcoa.axes", sep="\t", index_col=0).to_numpy()
    ours_axes = pcoa(read_phylip(tmp_path / "x.dist"), correction="lingoes").coordinates
    same_up_to_sign(ours_axes[:, :3], axes[:, :3], atol=1e-2)


# ----------------------------------------------------------------------------------------- NMDS and PCA


def test_kruskal_stress_zero_for_monotone_configuration_and_deterministic_nmds() -> None:
    rng = np.random.default_rng(5)
    pts = rng.normal(size=(12, 2))
    d = pdist(pts) ** 2  # monotone transform of the configuration distances
    assert kruskal_stress(d, pts) == pytest.approx(0.0, abs=1e-12)
    assert kruskal_stress(squareform(d), pts * 3.0 + 1.0) == pytest.approx(0.0, abs=1e-12)
    dist = bray_curtis(clustered_counts(n_per=6, seed=6))
    a = nmds(dist, n_starts=3, seed=11)
    b = nmds(dist, n_starts=3, seed=11)
    np.testing.assert_array_equal(a.coordinates, b.coordinates)
    assert a.stress == min(a.details["stresses"]) < 0.2
    np.testing.assert_allclose(a.coordinates.mean(axis=0), 0.0, atol=1e-12)


def test_smacof_engine_matches_sklearn_engine() -> None:
    dist = bray_curtis(gradient_counts(n=40, m=60, seed=9))
    fast = nmds(dist, n_starts=3, seed=2)
    ref = nmds(dist, n_starts=3, seed=2, engine="sklearn")
    assert fast.details["engine"] == "smacof" and ref.details["engine"] == "sklearn"
    _, correlation = procrustes(ref.coordinates, fast.coordinates)
    assert correlation > 0.99
    assert fast.stress <= ref.stress + 1e-3  # SMACOF converges at least as far as sklearn
    assert abs(fast.stress - ref.stress) < 5e-3
    with pytest.raises(ValueError, match="engine"):
        nmds(dist, engine="nope")  # type: ignore[arg-type]


def test_smacof_with_many_ties_and_random_starts_converge_to_one_solution() -> None:
    # small Poisson counts: ~75% of the Bray-Curtis values are tied (primary ties exercised on every iteration)
    dist = bray_curtis(gradient_counts(n=150, m=200, seed=3))
    res = nmds(dist, n_starts=4, seed=0)
    stresses = np.array(res.details["stresses"])
    assert np.ptp(stresses) < 1e-4, stresses  # the metric warm-up keeps random starts out of degenerate plateaus
    assert res.stress == pytest.approx(kruskal_stress(dist.condensed, res.coordinates), abs=1e-12)
    again = nmds(dist, n_starts=4, seed=0)
    np.testing.assert_array_equal(res.coordinates, again.coordinates)


def test_pca_clr_is_prcomp_and_pcoa_on_aitchison() -> None:
    x = clustered_counts(seed=7)
    res = pca_clr(x, feature_ids=[f"f{j}" for j in range(x.shape[1])])
    from skbio.stats.composition import clr as skbio_clr

    z = skbio_clr(x.to_numpy() + 1.0)
    zc = z - z.mean(axis=0)
    sdev = np.linalg.svd(zc, compute_uv=False) / np.sqrt(len(z) - 1)
    np.testing.assert_allclose(np.sqrt(res.eigenvalues), sdev, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.coordinates @ res.details["loadings"].to_numpy().T, zc, atol=1e-9)
    loadings = res.details["loadings"].to_numpy()
    assert np.all(loadings[np.argmax(np.abs(loadings), axis=0), np.arange(loadings.shape[1])] > 0)
    pc = pcoa(aitchison(x))
    k = 5
    np.testing.assert_allclose(pc.eigenvalues[:k] / (len(z) - 1), res.eigenvalues[:k], rtol=1e-8)
    same_up_to_sign(pc.coordinates[:, :k], res.coordinates[:, :k], atol=1e-8)


# ------------------------------------------------------------------------------------------- vegan oracle


@pytest.fixture(scope="module")
def vegan_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    if reason := _oracles.vegan_missing():
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("vegan_ord")
    x = gradient_counts(seed=8)
    bc = bray_curtis(x)
    bc2 = bray_curtis(gradient_counts(n=60, m=80, seed=2))
    code = """
d <- as.dist(as.matrix(read.csv("d.csv", row.names = 1)))
m <- metaMDS(d, k = 2, trymax = 20, trace = 0)
write.csv(scores(m, display = "sites"), "nmds.csv")
writeLines(format(m$stress, digits = 17), "stress.txt")
d2 <- as.dist(as.matrix(read.csv("d2.csv", row.names = 1)))
m2 <- metaMDS(d2, k = 2, trymax = 50, trace = 0)
write.csv(scores(m2, display = "sites"), "nmds2.csv")
writeLines(format(m2$stress, digits = 17), "stress2.txt")
w <- wcmdscale(d, eig = TRUE, add = "lingoes")
writeLines(format(c(w$ac, w$eig), digits = 17), "lingoes.txt")
c0 <- cmdscale(d, k = 2, eig = TRUE)
writeLines(format(c0$eig, digits = 17), "cmdscale.txt")
z <- as.matrix(read.csv("clr.csv", row.names = 1))
writeLines(format(prcomp(z)$sdev, digits = 17), "sdev.txt")
"""
    from skbio.stats.composition import clr as skbio_clr

    clr_frame = pd.DataFrame(skbio_clr(x.to_numpy() + 1.0), index=x.index)
    _oracles.run_r(code, work, {"d": bc.to_frame(), "d2": bc2.to_frame(), "clr": clr_frame})
    return {
        "x": x,
        "bc": bc,
        "bc2": bc2,
        "nmds": pd.read_csv(work / "nmds.csv", index_col=0),
        "stress": float((work / "stress.txt").read_text()),
        "nmds2": pd.read_csv(work / "nmds2.csv", index_col=0),
        "stress2": float((work / "stress2.txt").read_text()),
        "lingoes": np.array((work / "lingoes.txt").read_text().split(), dtype=float),
        "cmdscale": np.array((work / "cmdscale.txt").read_text().split(), dtype=float),
        "sdev": np.array((work / "sdev.txt").read_text().split(), dtype=float),
    }


@pytest.mark.oracle
@pytest.mark.parametrize("case", ["", "2"])
def test_nmds_matches_vegan_metamds(vegan_results: dict, case: str) -> None:
    bc = vegan_results[f"bc{case}"]
    theirs = vegan_results[f"nmds{case}"].loc[list(bc.ids)].to_numpy()
    vegan_stress = vegan_results[f"stress{case}"]
    # our stress formula on vegan's own configuration gives vegan's stress
    assert kruskal_stress(bc.condensed, theirs) == pytest.approx(vegan_stress, abs=1e-4)
    ours = nmds(bc, n_starts=4, seed=1)  # default engine: numpy SMACOF
    assert ours.details["engine"] == "smacof" and ours.details["converged"][ours.details["best_start"]]
    disparity, correlation = procrustes(theirs, ours.coordinates)
    assert correlation > 0.99 and disparity < 0.02, (correlation, disparity)
    assert abs(ours.stress - vegan_stress) < 2e-3, (ours.stress, vegan_stress)
    assert ours.stress == pytest.approx(kruskal_stress(bc.condensed, ours.coordinates), abs=1e-12)


@pytest.mark.oracle
def test_pcoa_and_lingoes_match_vegan(vegan_results: dict) -> None:
    bc = vegan_results["bc"]
    ours = pcoa(bc)
    theirs = vegan_results["cmdscale"]
    theirs = np.delete(theirs, np.argmin(np.abs(theirs)))  # the constant axis, which we split off exactly
    np.testing.assert_allclose(ours.details["all_eigenvalues"], theirs, rtol=1e-8, atol=1e-12)
    lingoes = pcoa(bc, correction="lingoes")
    ac, eig = vegan_results["lingoes"][0], vegan_results["lingoes"][1:]
    assert lingoes.details["lingoes_constant"] == pytest.approx(ac, rel=1e-9)
    k = min(len(eig), lingoes.eigenvalues.size)
    np.testing.assert_allclose(lingoes.eigenvalues[:k], eig[:k], rtol=1e-8)


@pytest.mark.oracle
def test_pca_sdev_matches_prcomp(vegan_results: dict) -> None:
    res = pca_clr(vegan_results["x"])
    sdev = vegan_results["sdev"]
    np.testing.assert_allclose(np.sqrt(res.eigenvalues[: sdev.size - 1]), sdev[:-1], rtol=1e-10)
