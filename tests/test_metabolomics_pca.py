"""prcomp equality: a hand-checked matrix, scikit-learn, and R itself (Rscript, when installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.metabolomics.pca import flip_signs, format_column, format_importance, prcomp

RSCRIPT = shutil.which("Rscript")
needs_r = pytest.mark.skipif(RSCRIPT is None, reason="Rscript not installed (apt-get install r-base-core)")


def test_hand_checked_matrix() -> None:
    # centred columns c1 = 3*(1,-1,1,-1) and c2 = (1,1,-1,-1) are orthogonal: d = (6, 2), V = I
    X = np.array([[13.0, 21.0], [7.0, 21.0], [13.0, 19.0], [7.0, 19.0]])
    r = prcomp(X, feature_ids=["a", "b"], sample_ids=list("wxyz"))
    np.testing.assert_allclose(r.center, [10, 20])
    np.testing.assert_allclose(r.sdev, [6 / np.sqrt(3), 2 / np.sqrt(3)], rtol=1e-14)
    np.testing.assert_allclose(r.rotation, np.eye(2), atol=1e-15)
    np.testing.assert_allclose(r.scores, [[3, 1], [-3, 1], [3, -1], [-3, -1]], atol=1e-14)
    imp = r.importance()
    assert imp.index.tolist() == ["Standard deviation", "Proportion of Variance", "Cumulative Proportion"]
    np.testing.assert_allclose(imp.loc["Proportion of Variance"], [0.9, 0.1])
    np.testing.assert_allclose(imp.loc["Cumulative Proportion"], [0.9, 1.0])
    assert format_importance(r) == (
        "Importance of components:\n"
        "                         PC1   PC2\n"
        "Standard deviation     3.464 1.155\n"
        "Proportion of Variance 0.900 0.100\n"
        "Cumulative Proportion  0.900 1.000"
    )
    # a QC at the centre projects to the origin; one at a sample projects onto that sample's scores
    np.testing.assert_allclose(r.project(np.array([[10.0, 20.0], [13.0, 21.0]])), [[0, 0], [3, 1]], atol=1e-14)
    assert r.scores_frame()["sample_id"].tolist() == list("wxyz")
    assert r.loadings_frame()["feature_id"].tolist() == ["a", "b"]


def test_sign_convention_largest_loading_positive() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(15, 6))
    r = prcomp(X)
    idx = np.argmax(np.abs(r.rotation), axis=0)
    assert (r.rotation[idx, np.arange(r.n_components)] > 0).all()
    raw = prcomp(X, sign_convention="none")
    flipped, scores = flip_signs(raw.rotation, raw.scores)
    np.testing.assert_allclose(flipped, r.rotation)
    np.testing.assert_allclose(scores, r.scores)
    np.testing.assert_allclose(r.scores, (X - X.mean(0)) @ r.rotation, atol=1e-12)


def test_rank_deficient_and_truncation() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(4, 9))  # n < p: min(n, p) = 4 components, the last ~0 after centring
    r = prcomp(X)
    assert r.sdev.shape == (4,) and r.rotation.shape == (9, 4)
    assert r.sdev[-1] < 1e-12 * r.sdev[0]
    t = prcomp(X, tol=1e-8)
    assert t.n_components == 3 and t.sdev.shape == (4,)  # R keeps all sdev
    k = prcomp(X, rank=2)
    assert k.rotation.shape == (9, 2)
    assert format_importance(k).startswith("Importance of first k=2 (out of 4) components:")


def test_matches_sklearn_full_svd() -> None:
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(2)
    X = rng.lognormal(size=(30, 12))
    r = prcomp(X)
    sk = PCA(svd_solver="full").fit(X)
    np.testing.assert_allclose(r.sdev**2, sk.explained_variance_, rtol=1e-10)
    comp, _ = flip_signs(sk.components_.T)
    np.testing.assert_allclose(r.rotation, comp, atol=1e-10)


def test_refuses_missing_and_constant_scaled_columns() -> None:
    with pytest.raises(ValueError, match="missing"):
        prcomp(np.array([[1.0, np.nan], [2.0, 3.0]]))
    with pytest.raises(ValueError, match="constant"):
        prcomp(np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]]), scale=True)


def test_format_column_matches_r_rules() -> None:
    # R 4.2.2: print(cbind(c(0.77381923606, 0.4068, 0.4068), c(0.32903086, 0.07354, 0.94489),
    #                      c(123456.7, 0.5, 1.0), c(1e-12, 0.0, 1.0)), digits = 4)
    assert format_column([0.77381923606, 0.4068, 0.4068]) == ["0.7738", "0.4068", "0.4068"]
    assert format_column([0.32903086, 0.07354, 0.94489]) == ["0.32903", "0.07354", "0.94489"]
    assert format_column([123456.7, 0.5, 1.0]) == ["123456.7", "0.5", "1.0"]
    assert format_column([1e-12, 0.0, 1.0]) == ["1e-12", "0e+00", "1e+00"]


# ---------------------------------------------------------------------------------------------- R oracle

R_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
x <- as.matrix(read.csv(args[1], header = FALSE))
scale_ <- as.logical(args[3])
p <- prcomp(x, center = TRUE, scale. = scale_)
newx <- as.matrix(read.csv(args[2], header = FALSE))
out <- args[4]
options(digits = 17)
write.table(p$sdev, file.path(out, "sdev.csv"), sep = ",", row.names = FALSE, col.names = FALSE)
write.table(p$rotation, file.path(out, "rotation.csv"), sep = ",", row.names = FALSE, col.names = FALSE)
write.table(p$x, file.path(out, "x.csv"), sep = ",", row.names = FALSE, col.names = FALSE)
write.table(predict(p, newx), file.path(out, "pred.csv"), sep = ",", row.names = FALSE, col.names = FALSE)
write.table(summary(p)$importance, file.path(out, "importance.csv"), sep = ",", col.names = FALSE)
options(digits = 7)
writeLines(capture.output(print(summary(p))), file.path(out, "summary.txt"))
"""


def run_r_prcomp(tmp: Path, X: np.ndarray, new: np.ndarray, scale: bool) -> dict[str, np.ndarray | str]:
    np.savetxt(tmp / "x.csv", X, delimiter=",", fmt="%.17g")
    np.savetxt(tmp / "new.csv", new, delimiter=",", fmt="%.17g")
    (tmp / "prcomp.R").write_text(R_SCRIPT)
    subprocess.run(
        [
            RSCRIPT,
            "--vanilla",
            str(tmp / "prcomp.R"),
            str(tmp / "x.csv"),
            str(tmp / "new.csv"),
            "TRUE" if scale else "FALSE",
            str(tmp),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    read = lambda name: np.loadtxt(tmp / name, delimiter=",", ndmin=2)  # noqa: E731
    return {
        "sdev": read("sdev.csv").ravel(),
        "rotation": read("rotation.csv"),
        "x": read("x.csv"),
        "pred": read("pred.csv"),
        "importance": pd.read_csv(tmp / "importance.csv", header=None, index_col=0).to_numpy(),
        "summary": (tmp / "summary.txt").read_text(),
    }


def assert_equal_up_to_sign(ours: np.ndarray, theirs: np.ndarray, atol: float) -> None:
    signs = np.sign(np.sum(ours * theirs, axis=0))
    signs[signs == 0] = 1
    np.testing.assert_allclose(ours, theirs * signs, atol=atol, rtol=0)


@needs_r
@pytest.mark.oracle
@pytest.mark.parametrize(
    ("shape", "scale", "seed"),
    [((25, 8), False, 10), ((6, 15), False, 11), ((40, 40), False, 12), ((25, 8), True, 13)],
)
def test_equals_r_prcomp(tmp_path: Path, shape: tuple[int, int], scale: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = shape[1]
    X = np.log10(rng.lognormal(mean=8, sigma=1.5, size=shape)) * rng.uniform(0.5, 3, size=p)
    new = X[:3] + rng.normal(scale=0.1, size=(3, p))
    R = run_r_prcomp(tmp_path, X, new, scale)
    ours = prcomp(X, scale=scale)
    # sdev: relative 1e-10 (omics.md tolerances); components with sdev ~ 0 (n <= p) carry no direction
    np.testing.assert_allclose(ours.sdev, R["sdev"], rtol=1e-10, atol=1e-12 * R["sdev"][0])
    real = R["sdev"] > 1e-8 * R["sdev"][0]
    k = int(real.sum())
    assert_equal_up_to_sign(ours.rotation[:, :k], R["rotation"][:, :k], atol=1e-10)
    assert_equal_up_to_sign(ours.scores[:, :k], R["x"][:, :k], atol=1e-10 * np.abs(R["x"]).max())
    assert_equal_up_to_sign(ours.project(new)[:, :k], R["pred"][:, :k], atol=1e-10 * np.abs(R["pred"]).max())
    np.testing.assert_allclose(ours.importance().to_numpy(), R["importance"], rtol=1e-10, atol=1e-12)
    if real.all():  # with n <= p the last sdev is rounding noise (~1e-16), printed differently by each build
        assert format_importance(ours) == R["summary"].rstrip("\n")
    # R's own rotation, flipped by our convention, equals ours exactly (not only up to sign)
    r_flipped, _ = flip_signs(R["rotation"][:, :k])
    np.testing.assert_allclose(ours.rotation[:, :k], r_flipped, atol=1e-10)
