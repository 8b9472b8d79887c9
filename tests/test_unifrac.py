"""UniFrac (analysis.microbiome.beta.unifrac): a hand-computed tiny case, scikit-bio's published docstring values,
the vectorised engine against scikit-bio's on random trees, and the pipeline's choice of samples and features
(analysis.microbiome.pipeline.phylogeny_counts)."""

from __future__ import annotations

import io
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from skbio import TreeNode

from analysis.microbiome import pipeline as mb
from analysis.microbiome.beta import beta_diversity, unifrac
from analysis.readers.tree import newick_sha256, parse_newick

TINY = "((a:1,b:2):0.5,(c:1,d:1):0.5);"
TINY_COUNTS = np.array([[1, 2, 0, 0], [0, 1, 3, 1], [2, 0, 0, 5]])


def tree_of(text: str) -> TreeNode:
    return TreeNode.read(io.StringIO(text), format="newick", convert_underscores=False)


def test_hand_computed_tiny_case() -> None:
    """Branches a:1, b:2, (ab):0.5, c:1, d:1, (cd):0.5; samples x = [1,2,0,0], y = [0,1,3,1], z = [2,0,0,5]."""
    tree = tree_of(TINY)
    ids = ["x", "y", "z"]
    uw = unifrac(TINY_COUNTS, ids, list("abcd"), tree).to_frame()
    # x observes a, b, (ab) = 3.5; y observes b, (ab), c, d, (cd) = 5; both: b, (ab) = 2.5
    # unique = a + c + d + (cd) = 3.5; observed by either = 6
    assert uw.loc["x", "y"] == pytest.approx(3.5 / 6, rel=1e-15)
    # x vs z: z observes a, (ab), d, (cd) = 3; unique = b + d + (cd) = 3.5; either = 1 + 2 + 0.5 + 1 + 0.5 = 5
    assert uw.loc["x", "z"] == pytest.approx(3.5 / 5, rel=1e-15)
    w = unifrac(TINY_COUNTS, ids, list("abcd"), tree, weighted=True).to_frame()
    f = Fraction
    # Σ_b L_b |x_b/3 - y_b/5| over a, b, (ab), c, d, (cd)
    xy = 1 * f(1, 3) + 2 * abs(f(2, 3) - f(1, 5)) + f(1, 2) * abs(1 - f(1, 5)) + f(3, 5) + f(1, 5) + f(1, 2) * f(4, 5)
    assert w.loc["x", "y"] == pytest.approx(float(xy), rel=1e-14) and float(xy) == pytest.approx(2.8666666666666667)
    xz = 1 * abs(f(1, 3) - f(2, 7)) + 2 * f(2, 3) + f(1, 2) * abs(1 - f(2, 7)) + f(5, 7) + f(1, 2) * f(5, 7)
    assert w.loc["x", "z"] == pytest.approx(float(xz), rel=1e-14)
    # normalised by Σ_tips D_t (x_t/N_x + y_t/N_y), root-to-tip D = 1.5, 2.5, 1.5, 1.5
    depth = [f(3, 2), f(5, 2), f(3, 2), f(3, 2)]
    norm_xy = sum(
        d * (f(int(u), 3) + f(int(v), 5)) for d, u, v in zip(depth, TINY_COUNTS[0], TINY_COUNTS[1], strict=True)
    )
    wn = unifrac(TINY_COUNTS, ids, list("abcd"), tree, weighted=True, normalized=True).to_frame()
    assert wn.loc["x", "y"] == pytest.approx(float(xy / norm_xy), rel=1e-14)


def test_scikit_bio_published_example() -> None:
    """The example of scikit-bio 0.7.4's unweighted_unifrac / weighted_unifrac docstrings (printed to 2 decimals):
    unweighted 0.37, weighted 1.54, weighted normalised 0.33. Note the unary node and the named root."""
    tree = tree_of(
        "(((((U1:0.5,U2:0.5):0.5,U3:1.0):1.0):0.0,(U4:0.75,(U5:0.5,((U6:0.33,U7:0.62):0.5,U8:0.5):0.5):0.5):1.25):0.0)root;"
    )
    counts = np.array([[1, 0, 0, 4, 1, 2, 3, 0], [0, 1, 1, 6, 0, 1, 0, 0]])
    taxa = [f"U{i}" for i in range(1, 9)]
    assert round(unifrac(counts, ["u", "v"], taxa, tree).condensed[0], 2) == 0.37
    assert round(unifrac(counts, ["u", "v"], taxa, tree, weighted=True).condensed[0], 2) == 1.54
    assert round(unifrac(counts, ["u", "v"], taxa, tree, weighted=True, normalized=True).condensed[0], 2) == 0.33


def random_tree(tips: list[str], rng: np.random.Generator) -> str:
    """A random rooted Newick tree by random joins, with zero-length branches and a unary node."""
    nodes = [f"{t}:{rng.uniform(0, 0.3):.4f}" for t in tips]
    while len(nodes) > 2:
        i, j = sorted(rng.choice(len(nodes), 2, replace=False))
        length = 0.0 if rng.random() < 0.15 else rng.uniform(0, 0.5)
        joined = f"({nodes[i]},{nodes[j]}):{length:.4f}"
        if rng.random() < 0.05:
            joined = f"({joined}):{rng.uniform(0, 0.2):.4f}"  # unary node
        nodes = [n for k, n in enumerate(nodes) if k not in (i, j)] + [joined]
    return f"({nodes[0]},{nodes[1]}):0.3;"  # the root has a length: scikit-bio counts it (with 0 weight)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_vectorised_engine_equals_scikit_bio(seed: int) -> None:
    rng = np.random.default_rng(seed)
    tips = [f"t{i}" for i in range(60)]
    tree, _ = parse_newick(random_tree(tips, rng))
    features = list(rng.permutation(tips)[:45])  # table columns in another order; 15 tips not in the table
    counts = (rng.random((25, 45)) < 0.3) * rng.negative_binomial(1, 0.05, (25, 45))
    counts[counts.sum(axis=1) == 0, 0] = 1
    ids = [f"s{i}" for i in range(25)]
    for kwargs in ({}, {"weighted": True}, {"weighted": True, "normalized": True}):
        ours = unifrac(counts, ids, features, tree, **kwargs)
        theirs = unifrac(counts, ids, features, tree, engine="skbio", **kwargs)
        np.testing.assert_allclose(ours.condensed, theirs.condensed, rtol=1e-12, atol=1e-14, err_msg=str(kwargs))
        assert ours.metric == theirs.metric and ours.params == theirs.params
    dispatched = beta_diversity("weighted_unifrac", counts, ids, feature_ids=features, tree=tree)
    np.testing.assert_array_equal(dispatched.condensed, unifrac(counts, ids, features, tree, weighted=True).condensed)
    with pytest.raises(ValueError, match="not tips"):
        unifrac(counts[:, :2], ids, ["t0", "nope"], tree)


# ------------------------------------------------------------------------------------------------ pipeline


def inputs_with_trees(trees: pd.DataFrame) -> mb.MicrobiomeInputs:
    """Two ASV batches sharing features a..d, one mothur-like batch with its own OTU ids."""
    rows = [
        ("B1", "L1", "S1", "P1", "a", 5),
        ("B1", "L1", "S1", "P1", "b", 3),
        ("B1", "L2", "S2", "P2", "c", 4),
        ("B2", "L3", "S3", "P3", "a", 2),
        ("B2", "L3", "S3", "P3", "d", 6),
        ("B2", "L4", "S4", "P4", "b", 1),
        ("B3", "L5", "S5", "P5", "Otu1", 7),
        ("B3", "L6", "S6", "P6", "Otu2", 7),
    ]
    long = pd.DataFrame(
        rows, columns=["batch_id", "sample_id", "specimen_barcode", "subject_id", "feature_id", "read_count"]
    )
    matrix, libs = mb.feature_matrix(long)
    empty = pd.DataFrame()
    return mb.MicrobiomeInputs(matrix, libs, long, empty, empty, empty, empty, False, None, trees)


def test_phylogeny_counts_merge_batches_sharing_a_tree() -> None:
    study = "((a:1,b:1):1,(c:1,(d:1,e:1):1):1);"
    otus = "(Otu1:1,Otu2:1);"
    trees = pd.DataFrame(
        {
            "batch_id": ["B1", "B2", "B3"],
            "newick_sha256": [newick_sha256(study), newick_sha256(study), newick_sha256(otus)],
            "newick": [study, study, otus],
            "rooted": ["Y", "Y", "Y"],
        }
    )
    phylo = mb.phylogeny_counts(inputs_with_trees(trees))
    assert phylo is not None and phylo.batches == ("B1", "B2")  # 4 samples beat the mothur batch's 2
    assert phylo.ids == ("S1", "S2", "S3", "S4") and phylo.features == ("a", "b", "c", "d")
    np.testing.assert_array_equal(phylo.counts.toarray(), [[5, 3, 0, 0], [0, 0, 4, 0], [2, 0, 0, 6], [0, 1, 0, 0]])
    assert phylo.reads_off_tree == 0 and phylo.newick_sha256 == newick_sha256(study)
    # a tree delivered with one batch only: that batch's samples
    only = mb.phylogeny_counts(inputs_with_trees(trees.iloc[[2]]))
    assert only is not None and only.ids == ("S5", "S6") and only.features == ("Otu1", "Otu2")
    assert mb.phylogeny_counts(inputs_with_trees(trees.iloc[0:0])) is None
    # features missing from the tree (a tree not re-checked after a new table version) are left out and counted
    partial = "((a:1,b:1):1,c:2);"
    short = trees.iloc[[0, 1]].assign(newick=partial, newick_sha256=newick_sha256(partial))
    phylo = mb.phylogeny_counts(inputs_with_trees(short))
    assert phylo.features == ("a", "b", "c") and phylo.reads_off_tree == 6 and phylo.ids == ("S1", "S2", "S3", "S4")
