"""Beta diversity: Bray–Curtis / Jaccard / Aitchison against scipy, scikit-bio, mothur and vegan; file formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.spatial.distance import pdist

from analysis.microbiome import _oracles
from analysis.microbiome.beta import (
    BetaDistances,
    aitchison,
    beta_diversity,
    bray_curtis,
    clr,
    jaccard,
    load_npz,
    read_phylip,
    unifrac,
    write_phylip,
    write_square_csv,
)

FIXTURES = Path(__file__).parent / "fixtures" / "beta"


def heavy_tailed(n: int, m: int, density: float = 0.1, seed: int = 0) -> sp.csr_matrix:
    """Sparse counts with heavy-tailed prevalence and abundance (mostly 1s and 2s, a few thousands)."""
    rng = np.random.default_rng(seed)
    prevalence = np.clip(rng.beta(0.35, 0.35 * (1 - density) / density, size=m), 1.0 / n, 1.0)
    mean = rng.lognormal(0.5, 1.5, size=m)
    present = rng.random((n, m)) < prevalence
    values = 1 + rng.negative_binomial(0.5, 0.5 / (0.5 + mean), size=(n, m))
    dense = np.where(present, values, 0).astype(np.float64)
    dense[dense.sum(axis=1) == 0, 0] = 1.0
    return sp.csr_matrix(dense)


def nine_groups() -> tuple[np.ndarray, list[str]]:
    shared = pd.read_csv(FIXTURES / "nine.shared", sep="\t")
    return shared.iloc[:, 3:].to_numpy(dtype=float), shared["Group"].astype(str).tolist()


# ------------------------------------------------------------------------------------------- Bray–Curtis


@pytest.mark.parametrize("layers", ["auto", 0, 1, 3])
def test_bray_curtis_equals_scipy_bitwise_on_counts(layers: int | str) -> None:
    x = heavy_tailed(120, 400, seed=1)
    result = bray_curtis(x, layers=layers)
    expected = pdist(x.toarray(), "braycurtis")
    np.testing.assert_array_equal(result.condensed, expected)  # identical doubles, not just close
    assert result.metric == "braycurtis" and result.n == 120


def test_bray_curtis_on_relative_abundances_and_dense_input() -> None:
    x = heavy_tailed(60, 200, seed=2).toarray()
    rel = x / x.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(bray_curtis(rel).condensed, pdist(rel, "braycurtis"), rtol=0, atol=1e-12)
    frame = pd.DataFrame(x, index=[f"s{i}" for i in range(60)])
    result = bray_curtis(frame)
    assert result.ids[:2] == ("s0", "s1")
    np.testing.assert_array_equal(result.condensed, pdist(x, "braycurtis"))


def test_bray_curtis_large_counts_use_exact_float64_path() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, size=(20, 30)).astype(float)
    x[:, 0] += 2.0**25  # library sizes beyond float32's exact range
    np.testing.assert_allclose(bray_curtis(x).condensed, pdist(x, "braycurtis"), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="presence layers"):
        bray_curtis(x, layers=1)


def test_bray_curtis_rejects_empty_samples_and_negative_counts() -> None:
    with pytest.raises(ValueError, match=r"no reads.*b"):
        bray_curtis(np.array([[1, 2], [0, 0], [3, 0]]), ids=["a", "b", "c"])
    with pytest.raises(ValueError, match="non-negative"):
        bray_curtis(np.array([[1, -2], [1, 1]]))


def test_identical_samples_have_distance_zero_and_disjoint_one() -> None:
    result = bray_curtis(np.array([[3, 0, 1], [3, 0, 1], [0, 5, 0]]))
    np.testing.assert_array_equal(result.condensed, [0.0, 1.0, 1.0])


# ------------------------------------------------------------------------------------- Jaccard, Aitchison


def test_jaccard_equals_scipy_on_presence_absence() -> None:
    x = heavy_tailed(80, 300, seed=4)
    expected = pdist(x.toarray() > 0, "jaccard")
    np.testing.assert_array_equal(jaccard(x).condensed, expected)
    very_sparse = sp.random(80, 5000, density=0.002, random_state=5, format="csr") * 10
    np.testing.assert_allclose(jaccard(very_sparse).condensed, pdist(very_sparse.toarray() > 0, "jaccard"), atol=1e-12)


def test_jaccard_two_empty_samples_are_identical_like_scipy() -> None:
    x = np.array([[0, 0, 0], [0, 0, 0], [1, 0, 2]])
    np.testing.assert_array_equal(jaccard(x).condensed, pdist(x > 0, "jaccard"))


def test_aitchison_equals_skbio_clr_euclidean() -> None:
    from skbio.stats.composition import clr as skbio_clr

    x = heavy_tailed(50, 120, seed=6).toarray()
    for pseudocount in (1.0, 0.5):
        result = aitchison(x, pseudocount=pseudocount)
        expected = pdist(skbio_clr(x + pseudocount), "euclidean")
        np.testing.assert_allclose(result.condensed, expected, rtol=1e-10, atol=1e-10)
        assert result.params == {"pseudocount": pseudocount}
    with pytest.raises(ValueError, match="positive"):
        clr(x, pseudocount=0.0)


def test_unifrac_is_skbios() -> None:
    from io import StringIO

    from skbio import TreeNode
    from skbio.diversity import beta_diversity as skbio_beta

    tree = TreeNode.read(StringIO("(((O1:0.25,O2:0.5):0.25,(O3:0.5,O4:0.5):0.5):0.5,O5:1.0)root;"))
    x = np.array([[1, 0, 3, 0, 2], [0, 4, 1, 1, 0], [2, 2, 0, 0, 5], [0, 0, 1, 6, 1]])
    otus = ["O1", "O2", "O3", "O4", "O5"]
    cases = (
        (False, False, "unweighted_unifrac"),
        (True, False, "weighted_unifrac"),
        (True, True, "weighted_unifrac"),
    )
    for weighted, normalized, name in cases:
        ours = unifrac(x, ["a", "b", "c", "d"], otus, tree, weighted=weighted, normalized=normalized)
        kwargs = {"normalized": True} if normalized else {}
        ref = skbio_beta(name, x, ids=["a", "b", "c", "d"], taxa=otus, tree=tree, **kwargs)
        np.testing.assert_allclose(ours.condensed, ref.condensed_form(), atol=1e-12)


def test_dispatch_by_name() -> None:
    x = heavy_tailed(10, 20, seed=7)
    assert beta_diversity("bray-curtis", x).metric == "braycurtis"
    assert beta_diversity("jclass", x).metric == "jaccard"
    assert beta_diversity("aitchison", x, pseudocount=0.5).params["pseudocount"] == 0.5
    with pytest.raises(ValueError, match="unknown metric"):
        beta_diversity("canberra", x)


# ------------------------------------------------------------------------------------- mothur dist.shared

# real mothur output (MIT): the repo's reader fixture, else the team's shared data folder
WOLFE_SHARED = next(
    (
        p
        for p in (
            Path(__file__).parent / "fixtures" / "mothur" / "wolfe-guides" / "final.opti_mcc.shared",
            Path("/work/shared/data/wolfe-guides/final.opti_mcc.shared"),
        )
        if p.exists()
    ),
    Path("final.opti_mcc.shared (not found)"),
)


def test_real_mothur_shared_matches_scipy() -> None:
    """41 real stool/control samples x 2,719 OTUs (shared/data/wolfe-guides, MIT)."""
    if not WOLFE_SHARED.exists():
        pytest.skip(f"{WOLFE_SHARED} not present")
    shared = pd.read_csv(WOLFE_SHARED, sep="\t")
    x = sp.csr_matrix(shared.iloc[:, 3:].to_numpy(dtype=float))
    ids = shared["Group"].astype(str).tolist()
    dense = x.toarray()
    np.testing.assert_array_equal(bray_curtis(x, ids).condensed, pdist(dense, "braycurtis"))
    np.testing.assert_array_equal(jaccard(x, ids).condensed, pdist(dense > 0, "jaccard"))


def test_nine_groups_match_committed_mothur_output_byte_for_byte(tmp_path: Path) -> None:
    counts, groups = nine_groups()
    bc = bray_curtis(counts, groups)
    jc = jaccard(counts, groups)
    assert (
        write_phylip(bc, tmp_path / "bc.dist").read_bytes() == (FIXTURES / "nine.braycurtis.square.dist").read_bytes()
    )
    lt = write_phylip(bc, tmp_path / "bc.lt.dist", lower_triangle=True)
    assert lt.read_bytes() == (FIXTURES / "nine.braycurtis.lt.dist").read_bytes()
    assert write_phylip(jc, tmp_path / "jc.dist").read_bytes() == (FIXTURES / "nine.jclass.square.dist").read_bytes()
    for path in ("nine.braycurtis.square.dist", "nine.braycurtis.lt.dist"):
        back = read_phylip(FIXTURES / path)
        assert back.ids == bc.ids
        np.testing.assert_allclose(back.condensed, bc.condensed, atol=5e-7)


@pytest.mark.oracle
def test_live_mothur_dist_shared(tmp_path: Path) -> None:
    if reason := _oracles.mothur_missing():
        pytest.skip(reason)
    x = heavy_tailed(25, 60, seed=8).toarray().astype(int)
    groups = [f"G{i:02d}" for i in range(25)]
    header = "label\tGroup\tnumOtus\t" + "\t".join(f"Otu{j + 1:02d}" for j in range(60))
    rows = [f"0.03\t{g}\t60\t" + "\t".join(map(str, r)) for g, r in zip(groups, x, strict=True)]
    (tmp_path / "r.shared").write_text("\n".join([header, *rows]) + "\n")
    _oracles.run_mothur("dist.shared(shared=r.shared, calc=braycurtis-jclass, output=square)", tmp_path)
    for calc, ours in (("braycurtis", bray_curtis(x, groups)), ("jclass", jaccard(x, groups))):
        theirs = tmp_path / f"r.{calc}.0.03.square.dist"
        assert write_phylip(ours, tmp_path / f"ours.{calc}").read_text() == theirs.read_text()


@pytest.mark.oracle
def test_live_mothur_dist_shared_on_real_data(tmp_path: Path) -> None:
    if reason := _oracles.mothur_missing():
        pytest.skip(reason)
    if not WOLFE_SHARED.exists():
        pytest.skip(f"{WOLFE_SHARED} not present")
    (tmp_path / "w.shared").write_bytes(WOLFE_SHARED.read_bytes())
    _oracles.run_mothur("dist.shared(shared=w.shared, calc=braycurtis-jclass, output=square)", tmp_path)
    shared = pd.read_csv(WOLFE_SHARED, sep="\t")
    x, ids = shared.iloc[:, 3:].to_numpy(dtype=float), shared["Group"].astype(str).tolist()
    for calc, ours in (("braycurtis", bray_curtis(x, ids)), ("jclass", jaccard(x, ids))):
        theirs = tmp_path / f"w.{calc}.0.03.square.dist"
        assert write_phylip(ours, tmp_path / f"ours.{calc}").read_text() == theirs.read_text(), calc


# ------------------------------------------------------------------------------------------ vegan vegdist


@pytest.mark.oracle
def test_vegan_vegdist_bray_binary_jaccard_aitchison(tmp_path: Path) -> None:
    if reason := _oracles.vegan_missing():
        pytest.skip(reason)
    x = heavy_tailed(30, 50, seed=9).toarray()
    frame = pd.DataFrame(x, index=[f"s{i}" for i in range(30)])
    code = """
x <- as.matrix(read.csv("x.csv", row.names = 1))
write.csv(as.matrix(vegdist(x, "bray")), "bray.csv")
write.csv(as.matrix(vegdist(x, "jaccard", binary = TRUE)), "jaccard.csv")
write.csv(as.matrix(vegdist(x, "aitchison", pseudocount = 1)), "aitchison.csv")
"""
    _oracles.run_r(code, tmp_path, {"x": frame})
    for name, ours in (("bray", bray_curtis(frame)), ("jaccard", jaccard(frame)), ("aitchison", aitchison(frame))):
        theirs = pd.read_csv(tmp_path / f"{name}.csv", index_col=0).to_numpy()
        np.testing.assert_allclose(ours.square(), theirs, rtol=1e-12, atol=1e-12, err_msg=name)


# ------------------------------------------------------------------------------------------ files, storage


def test_square_csv_and_npz_round_trip(tmp_path: Path) -> None:
    x = heavy_tailed(12, 30, seed=10)
    result = bray_curtis(x, [f"S-{i}" for i in range(12)])
    csv = pd.read_csv(write_square_csv(result, tmp_path / "d.csv"), index_col=0)
    assert list(csv.index) == list(result.ids) == list(csv.columns)
    np.testing.assert_array_equal(csv.to_numpy(), result.square())
    back = load_npz(result.save_npz(tmp_path / "d.npz"))
    assert back.ids == result.ids and back.metric == "braycurtis"
    np.testing.assert_array_equal(back.condensed, result.condensed)
    sub = result.subset(["S-3", "S-0"])
    assert sub.condensed[0] == result.square()[3, 0]


def test_phylip_rejects_whitespace_names(tmp_path: Path) -> None:
    result = BetaDistances(("a b", "c"), np.array([0.5]), "braycurtis")
    with pytest.raises(ValueError, match="whitespace"):
        write_phylip(result, tmp_path / "x.dist")
