"""`guttrial pca` prints summary(prcomp(...)) as R does and writes scores/loadings equal to R prcomp.

Two oracles, both R (skipped without Rscript):

* R prcomp on the command's own ``prepared_matrix.csv`` (the exact PCA input): importance text identical,
  sdev to 1e-10 relative, scores, loadings and projected QCs equal up to sign per PC.
* R doing the whole recipe itself from the raw table (MetaboAnalyst formulas written out in R: LoD
  imputation, glog/log10, Pareto/auto scaling, then prcomp) for option combinations whose other steps are
  no-ops (complete or LoD-imputed data, no QCs or blanks, ``--normalise none``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orchestration import cli

RSCRIPT = shutil.which("Rscript")
needs_r = pytest.mark.skipif(RSCRIPT is None, reason="Rscript not installed (apt-get install r-base-core)")
FIXTURES = Path(__file__).parent / "fixtures" / "metabolomics"

R_ON_PREPARED = r"""
args <- commandArgs(trailingOnly = TRUE)
x <- as.matrix(read.csv(args[1], row.names = 1, check.names = FALSE))
p <- prcomp(x, center = TRUE, scale. = FALSE)
out <- args[3]
options(digits = 17)
write.table(p$sdev, file.path(out, "sdev.csv"), sep = ",", row.names = FALSE, col.names = FALSE)
write.table(p$rotation, file.path(out, "rotation.csv"), sep = ",", row.names = FALSE, col.names = FALSE)
write.table(p$x, file.path(out, "x.csv"), sep = ",", row.names = FALSE, col.names = FALSE)
if (file.exists(args[2])) {
  qc <- as.matrix(read.csv(args[2], row.names = 1, check.names = FALSE))
  write.table(predict(p, qc), file.path(out, "pred.csv"), sep = ",", row.names = FALSE, col.names = FALSE)
}
options(digits = 7)
writeLines(capture.output(print(summary(p))), file.path(out, "summary.txt"))
"""

R_RECIPE = r"""
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], check.names = FALSE)
x <- t(as.matrix(d[, -(1:4)]))            # samples x features
transform <- args[2]; scaling <- args[3]; out <- args[4]
for (j in seq_len(ncol(x))) {              # MetaboAnalyst ReplaceMissingByLoD: min positive / 5
  v <- x[, j]; v[is.na(v)] <- min(v[v > 0], na.rm = TRUE) / 5; x[, j] <- v
}
lam <- min(abs(x[x != 0])) / 10
if (transform == "glog") x <- log10((x + sqrt(x^2 + lam^2)) / 2)
if (transform == "log10") x <- log10(x + lam)
if (scaling == "auto") x <- scale(x, center = TRUE, scale = apply(x, 2, sd))
if (scaling == "pareto") x <- scale(x, center = TRUE, scale = sqrt(apply(x, 2, sd)))
p <- prcomp(x, center = TRUE, scale. = FALSE)
options(digits = 17)
write.table(p$sdev, file.path(out, "sdev.csv"), sep = ",", row.names = FALSE, col.names = FALSE)
write.table(p$x, file.path(out, "x.csv"), sep = ",", row.names = FALSE, col.names = FALSE)
options(digits = 7)
writeLines(capture.output(print(summary(p))), file.path(out, "summary.txt"))
"""


def write_table(path: Path, *, n_samples: int, n_features: int, seed: int, qcs: int = 0, missing: bool = False) -> None:
    """A contract wide table: log-normal intensities, optional pooled QCs (named QC*) and missing cells."""
    rng = np.random.default_rng(seed)
    level = rng.lognormal(10, 1.5, n_features)
    group = np.repeat([0, 1], (n_samples + 1) // 2)[:n_samples]
    values = level[:, None] * rng.lognormal(0, 0.5, (n_features, n_samples))
    values[: n_features // 3, group == 1] *= 2.5  # a group difference for PC1
    columns = [f"S{i:02d}" for i in range(1, n_samples + 1)]
    if qcs:
        qc = level[:, None] * rng.lognormal(0, 0.05, (n_features, qcs))
        values = np.c_[values, qc]
        columns += [f"QC{i:02d}" for i in range(1, qcs + 1)]
    values = np.round(values, 1)
    if missing:
        for j in range(0, n_features, 4):  # one missing sample value in every 4th feature (< 20 % missing)
            values[j, rng.integers(0, n_samples)] = np.nan
    frame = pd.DataFrame(values, columns=columns)
    frame.insert(0, "feature_id", [f"F{i:03d}" for i in range(1, n_features + 1)])
    frame.insert(1, "ion_mode", np.where(np.arange(n_features) % 2, "NEG", "POS"))
    frame.insert(2, "mz", np.round(rng.uniform(70, 900, n_features), 4))
    frame.insert(3, "rt_min", np.round(rng.uniform(0.5, 18, n_features), 2))
    frame.to_csv(path, index=False)


def run_r(script: str, args: list[str], tmp: Path) -> dict[str, object]:
    (tmp / "oracle.R").write_text(script)
    subprocess.run([RSCRIPT, "--vanilla", str(tmp / "oracle.R"), *args], check=True, capture_output=True, timeout=120)
    read = lambda name: np.loadtxt(tmp / name, delimiter=",", ndmin=2)  # noqa: E731
    out: dict[str, object] = {"sdev": read("sdev.csv").ravel(), "x": read("x.csv")}
    for name in ("rotation", "pred"):
        if (tmp / f"{name}.csv").exists():
            out[name] = read(f"{name}.csv")
    out["summary"] = (tmp / "summary.txt").read_text().rstrip("\n")
    return out


def assert_equal_up_to_sign(ours: np.ndarray, theirs: np.ndarray, atol: float) -> None:
    signs = np.sign(np.sum(ours * theirs, axis=0))
    signs[signs == 0] = 1
    np.testing.assert_allclose(ours, theirs * signs, atol=atol, rtol=0)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["pca", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@needs_r
@pytest.mark.oracle
def test_equals_r_prcomp_on_the_prepared_matrix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "features.csv"
    write_table(table, n_samples=24, n_features=14, seed=3, qcs=5, missing=True)
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, str(table), "--out", str(out))
    assert code == 0, err
    assert "5 QCs projected" in err
    oracle = tmp_path / "r"
    oracle.mkdir()
    R = run_r(R_ON_PREPARED, [str(out / "prepared_matrix.csv"), str(out / "prepared_qc.csv"), str(oracle)], oracle)
    assert stdout.rstrip("\n") == R["summary"]  # the printed importance table, character for character

    importance = pd.read_csv(out / "importance.csv", index_col=0)
    np.testing.assert_allclose(importance.loc["Standard deviation"].to_numpy(), R["sdev"], rtol=1e-10)
    scores = pd.read_csv(out / "scores.csv")
    samples, qcs = scores[~scores["projected"]], scores[scores["projected"]]
    assert qcs["sample_type"].eq("QC").all() and len(qcs) == 5 and len(samples) == 24
    pcs = [c for c in scores.columns if c.startswith("PC")]
    scale = np.abs(R["x"]).max()
    assert_equal_up_to_sign(samples[pcs].to_numpy(), R["x"], atol=1e-10 * scale)
    assert_equal_up_to_sign(qcs[pcs].to_numpy(), R["pred"], atol=1e-10 * scale)
    loadings = pd.read_csv(out / "loadings.csv")
    assert list(loadings.columns[:4]) == ["feature", "ion_mode", "feature_id", "name"]
    assert_equal_up_to_sign(loadings[pcs].to_numpy(), R["rotation"], atol=1e-10)
    steps = pd.read_csv(out / "steps.csv")
    assert steps["name"].iloc[-1] == "scaling" and "pareto" in steps["parameters"].iloc[-1]


@needs_r
@pytest.mark.oracle
@pytest.mark.parametrize(
    ("transform", "scaling", "impute", "missing"),
    [("none", "none", "none", False), ("glog", "pareto", "lod", True), ("log10", "auto", "lod", True)],
)
def test_whole_recipe_equals_r(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], transform: str, scaling: str, impute: str, missing: bool
) -> None:
    table = tmp_path / "features.csv"
    write_table(table, n_samples=18, n_features=9, seed=7, missing=missing)
    args = ["--transform", transform, "--scaling", scaling, "--impute", impute, "--normalise", "none"]
    code, stdout, err = run_cli(capsys, str(table), *args, "--out", str(tmp_path / "out"))
    assert code == 0, err
    oracle = tmp_path / "r"
    oracle.mkdir()
    R = run_r(R_RECIPE, [str(table), transform, scaling, str(oracle)], oracle)
    assert stdout.rstrip("\n") == R["summary"]
    importance = pd.read_csv(tmp_path / "out" / "importance.csv", index_col=0)
    np.testing.assert_allclose(importance.loc["Standard deviation"].to_numpy(), R["sdev"], rtol=1e-10)
    scores = pd.read_csv(tmp_path / "out" / "scores.csv")
    pcs = [c for c in scores.columns if c.startswith("PC")]
    assert_equal_up_to_sign(scores[pcs].to_numpy(), R["x"], atol=1e-9 * np.abs(R["x"]).max())


def test_vendor_export_and_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the mwTab fixture (2 samples, 1 QC): only complete features pass the 20 % missing rule
    code, stdout, err = run_cli(
        capsys, str(FIXTURES / "mwtab_serum_neg.txt"), "--impute", "lod", "--out", str(tmp_path / "mw")
    )
    assert code == 0, err
    assert stdout.startswith("Importance of components:")
    assert (tmp_path / "mw" / "scores.csv").exists()

    code, _, err = run_cli(capsys, str(FIXTURES / "progenesis_neg.csv").replace("_neg", ""), "--out", str(tmp_path))
    assert code == 2 and "does not exist" in err

    bad = tmp_path / "bad.csv"
    bad.write_text("feature_id,ion_mode,mz,rt_min,S1,S2\nF1,POS,100,1,5,x\n")
    code, _, err = run_cli(capsys, str(bad), "--out", str(tmp_path / "bad"))
    assert code == 2 and "row 2" in err and "S2" in err

    xcms = tmp_path / "xcms.csv"
    xcms.write_text((FIXTURES / "xcms3_pos.csv").read_text())
    code, _, err = run_cli(capsys, str(xcms), "--out", str(tmp_path / "x"))
    assert code == 2 and "does not state its ion mode" in err and "--ion-mode" in err
    # PQN of the one feature complete enough to keep makes it constant: nothing left, and the command says why
    code, _, err = run_cli(capsys, str(xcms), "--ion-mode", "POS", "--out", str(tmp_path / "x"))
    assert code == 2 and "0 features left after preparation" in err and "missing_filter 1" in err
    code, stdout, err = run_cli(capsys, str(xcms), "--ion-mode", "POS", "--normalise", "none", "--out", str(tmp_path))
    assert code == 0, err
    assert stdout.startswith("Importance of components:")
