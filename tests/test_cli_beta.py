"""`guttrial beta` writes mothur's dist.shared output byte for byte; `guttrial ordinate` writes coordinates."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.microbiome import _oracles
from analysis.microbiome.beta import aitchison, bray_curtis, read_phylip
from analysis.microbiome.ordination import kruskal_stress, mothur_loadings, pcoa
from orchestration import cli

FIXTURES = Path(__file__).parent / "fixtures" / "beta"
SHARED = FIXTURES / "nine.shared"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "nine.braycurtis.square.dist"),
        (["--metric", "braycurtis", "--lt"], "nine.braycurtis.lt.dist"),
        (["--metric", "jaccard"], "nine.jclass.square.dist"),
    ],
)
def test_beta_phylip_equals_mothur_dist_shared(
    args: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.dist"
    assert cli.main(["beta", str(SHARED), *args, "--out", str(out)]) == 0
    assert out.read_bytes() == (FIXTURES / expected).read_bytes()
    # the same text on standard output without --out
    assert cli.main(["beta", str(SHARED), *args]) == 0
    assert capsys.readouterr().out.encode() == (FIXTURES / expected).read_bytes()


def test_beta_csv_is_the_full_precision_square_matrix(tmp_path: Path) -> None:
    out = tmp_path / "d.csv"
    assert cli.main(["beta", str(SHARED), "--metric", "aitchison", "--csv", "--out", str(out)]) == 0
    frame = pd.read_csv(out, index_col=0)
    shared = pd.read_csv(SHARED, sep="\t")
    counts = shared.iloc[:, 3:].to_numpy(dtype=float)
    ref = aitchison(counts, shared["Group"].astype(str).tolist())
    assert list(frame.index) == list(ref.ids) == list(frame.columns)
    np.testing.assert_allclose(frame.to_numpy(), ref.square(), rtol=0, atol=1e-15)


def test_beta_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.shared"
    bad.write_text("label\tGroup\tnumOtus\tOtu1\tOtu2\n0.03\tA\t2\t5\tx\n")
    assert cli.main(["beta", str(bad)]) == 2
    assert "bad.shared" in capsys.readouterr().err


@pytest.mark.oracle
def test_beta_matches_live_mothur(tmp_path: Path) -> None:
    if reason := _oracles.mothur_missing():
        pytest.skip(reason)
    rng = np.random.default_rng(4)
    x = rng.poisson(rng.lognormal(1.0, 1.5, size=(12, 40))).astype(int)
    x[:, 0] += 1
    header = "label\tGroup\tnumOtus\t" + "\t".join(f"Otu{j + 1:02d}" for j in range(40))
    rows = [f"0.03\tS{i:02d}\t40\t" + "\t".join(map(str, r)) for i, r in enumerate(x)]
    (tmp_path / "r.shared").write_text("\n".join([header, *rows]) + "\n")
    _oracles.run_mothur("dist.shared(shared=r.shared, calc=braycurtis-jclass, output=square)", tmp_path)
    for metric, calc in (("braycurtis", "braycurtis"), ("jaccard", "jclass")):
        out = tmp_path / f"ours.{metric}.dist"
        assert cli.main(["beta", str(tmp_path / "r.shared"), "--metric", metric, "--out", str(out)]) == 0
        assert out.read_bytes() == (tmp_path / f"r.{calc}.0.03.square.dist").read_bytes()


def test_ordinate_pcoa_of_a_phylip_file_gives_mothur_loadings(tmp_path: Path) -> None:
    out = tmp_path / "coords.csv"
    phylip = FIXTURES / "nine.braycurtis.square.dist"
    assert cli.main(["ordinate", str(phylip), "--method", "pcoa", "--lingoes", "--out", str(out)]) == 0
    coords = pd.read_csv(out, index_col=0)
    axes = pd.read_csv(tmp_path / "coords.axes.csv")
    reference = pcoa(read_phylip(phylip), correction="lingoes")
    np.testing.assert_allclose(coords.to_numpy(), reference.coordinates, atol=1e-9)
    np.testing.assert_allclose(axes["proportion_explained"] * 100, mothur_loadings(reference)[: len(axes)], atol=1e-7)
    mothur = pd.read_csv(FIXTURES / "nine.braycurtis.pcoa.loadings", sep="\t")["loading"].to_numpy()
    assert axes["proportion_explained"].iloc[0] * 100 == pytest.approx(mothur[0], abs=1e-4)  # tqli tolerance


def test_ordinate_nmds_and_pca_from_a_feature_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nmds.csv"
    assert cli.main(["ordinate", str(SHARED), "--method", "nmds", "--seed", "3", "--out", str(out)]) == 0
    coords = pd.read_csv(out, index_col=0)
    stress = pd.read_csv(tmp_path / "nmds.axes.csv")["stress"].iloc[0]
    shared = pd.read_csv(SHARED, sep="\t")
    bc = bray_curtis(shared.iloc[:, 3:].to_numpy(dtype=float), shared["Group"].astype(str).tolist())
    assert list(coords.columns) == ["NMDS1", "NMDS2"] and list(coords.index) == list(bc.ids)
    assert stress == pytest.approx(kruskal_stress(bc.condensed, coords.to_numpy()), abs=1e-8)
    assert cli.main(["ordinate", str(SHARED), "--method", "pca", "--axes", "3"]) == 0
    captured = capsys.readouterr()
    pcs = pd.read_csv(io.StringIO(captured.out), index_col=0)
    assert list(pcs.columns) == ["PC1", "PC2", "PC3"] and len(pcs) == 9
    assert "# axis,name,eigenvalue,proportion_explained" in captured.err
    assert cli.main(["ordinate", str(FIXTURES / "nine.braycurtis.square.dist"), "--method", "pca"]) == 2
