"""Rarefaction depth rule and exact rarefaction curves (hand-computed and vegan::rarefy)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.microbiome.rarefaction import choose_depth, rarefaction_curves


def test_depth_keeps_ninety_percent_and_lists_the_rest() -> None:
    sizes = pd.Series([500, 8000, 9000, 10000, 12000, 15000, 20000, 30000, 40000, 50000], index=list("abcdefghij"))
    choice = choose_depth(sizes, keep_fraction=0.9, floor=1000)
    assert choice.depth == 8000  # 9 of 10 samples have >= 8000 reads
    assert choice.below_depth == ("a",) and choice.n_kept == 9
    floored = choose_depth(sizes, keep_fraction=1.0, floor=1000)
    assert floored.depth == 1000 and floored.below_depth == ("a",) and "floor" in floored.reason


def test_curve_hand_computed() -> None:
    # N=3 reads, OTUs with 2 and 1 reads. d=2: P(OTU2 absent) = C(2,2)/C(3,2) = 1/3, OTU1 always present.
    curve = rarefaction_curves(np.array([[2, 1]]), ["s"], np.array([1, 2, 3, 4]))
    assert curve["depth"].tolist() == [1, 2, 3]  # depth 4 exceeds the library
    assert curve["expected_sobs"].to_numpy() == pytest.approx([1.0, 1 + 2 / 3, 2.0])


@pytest.mark.oracle
@pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript not installed (apt-get install r-cran-vegan)")
def test_curve_matches_vegan_rarefy(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    counts = rng.negative_binomial(0.3, 0.01, size=(6, 80))
    np.savetxt(tmp_path / "x.csv", counts, delimiter=",", fmt="%d")
    depths = [10, 100, int(counts.sum(axis=1).min())]
    script = (
        "suppressMessages(library(vegan)); x <- as.matrix(read.csv('x.csv', header=FALSE));"
        f"r <- sapply(c({','.join(map(str, depths))}), function(d) rarefy(x, d));"
        "write.table(r, 'r.csv', sep=',', row.names=FALSE, col.names=FALSE)"
    )
    try:
        subprocess.run(["Rscript", "-e", script], cwd=tmp_path, check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"vegan not available: {exc.stderr.decode()[:200]}")
    expected = np.loadtxt(tmp_path / "r.csv", delimiter=",")
    curve = rarefaction_curves(counts, [f"s{i}" for i in range(6)], np.array(depths))
    ours = curve.pivot(index="sample_id", columns="depth", values="expected_sobs").to_numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-10)
