"""mothur-exact alpha diversity (``analysis.microbiome.alpha``).

Expectations come from mothur itself, never from our own code:

* the 9 oracle cases of the omics reference spec (section 1.9, Debian mothur 1.48.0);
* ``fixtures/alpha/mothur148-edge-cases``: mothur 1.48.0 output on 30 synthetic edge cases;
* two published mothur ``ave-std`` files made by other people (``fixtures/alpha/korlevic2021``,
  ``fixtures/alpha/wolfe-guides``), whose smallest group is never resampled and so is exact;
* a live ``mothur`` run when the binary is on PATH (``-m oracle``).

A per-sample transliteration of mothur's C++ (``_mothur_scalar`` below) checks the vectorised code on
random tables without mothur. Values are compared as mothur prints them (``%.6f``), except npshannon,
which mothur accumulates in a C ``float``: it gets 1e-6 relative (the reference spec's tolerance).
"""

from __future__ import annotations

import itertools
import logging
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from analysis.microbiome import (
    DEFAULT_CALCS,
    alpha_columns,
    alpha_diversity,
    format_mothur_ave_std,
    format_mothur_summary,
    subsampled_alpha,
)
from analysis.microbiome import alpha as A

FIXTURES = Path(__file__).parent / "fixtures" / "alpha"
ALL_MOTHUR = "nseqs-sobs-coverage-chao-ace-shannon-npshannon-simpson-invsimpson-shannoneven-simpsoneven"


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def read_shared(path: Path) -> tuple[list[str], sp.csr_array]:
    """A single-label mothur .shared file as (groups, samples x OTUs CSR)."""
    df = pd.read_csv(path, sep="\t", dtype={"label": str, "Group": str})
    assert df["label"].nunique() == 1
    counts = df.drop(columns=["label", "Group", "numOtus"]).to_numpy(np.int64)
    return df["Group"].tolist(), sp.csr_array(counts)


def read_summary(path: Path) -> pd.DataFrame:
    """A mothur .summary file with every cell kept as the printed text."""
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def printed(x: float) -> str:
    return A._fmt(float(x))


def assert_cells_match(ours: pd.DataFrame, theirs: pd.DataFrame, where: str) -> None:
    """Every column of ``theirs`` (printed strings) against ``ours`` (floats), row by row."""
    bad = []
    for col in theirs.columns:
        for g, text in theirs[col].items():
            v = float(ours.at[g, col])
            # npshannon: mothur's float32 sum; 1e-6 relative is the reference spec's tolerance
            ok = abs(v - float(text)) <= 1e-6 * abs(float(text)) + 5e-7 if col == "npshannon" else printed(v) == text
            if not ok:
                bad.append((g, col, printed(v), text))
    assert not bad, f"{where}: {len(bad)} cells differ from mothur, e.g. {bad[:8]}"


# --------------------------------------------------------------------------------------------------
# 1. the 9 oracle cases (reference spec section 1.9, mothur 1.48.0)
# --------------------------------------------------------------------------------------------------
# chao lci hci | ace lci hci | shannon lci hci | npshannon | simpson lci hci | invsimpson lci hci | coverage
ORACLE = {
    "A": (
        [1, 1, 1, 5, 7, 20, 3],
        "10 7.363176 31.781345 | 10.360000 7.471198 30.959366 | 1.403927 1.094558 1.713296 | "
        "1.558039 | 0.318634 0.189606 0.447663 | 3.138393 2.233824 5.274094 | 0.921053",
    ),
    "B": (
        [2, 2, 3, 4, 15, 30],
        "6 6 6.045679 | 6 6 6 | 1.270525 1.028571 1.512480 | "
        "1.316785 | 0.357792 0.257249 0.458335 | 2.794918 2.181809 3.887281 | 1",
    ),
    "C": (
        [12, 12, 13, 14],
        "4 4 4.006690 | 0 0 0 | 1.384200 1.333866 1.434534 | "
        "1.384201 | 0.236078 0.227077 0.245080 | 4.235880 4.080302 4.403793 | 1",
    ),
    "D": (
        [1, 1, 1, 1, 1, 10, 2],
        "12 7.777869 39.139080 | 66.543367 40.334479 113.358719 | 1.397205 0.857364 1.937045 | "
        "1.918818 | 0.338235 0.099062 0.577409 | 2.956522 1.731875 10.094702 | 0.705882",
    ),
    "E": (
        [2, 2, 2, 2, 2, 50],
        "6 6 6.032622 | 6 6 6 | 0.718801 0.410896 1.026706 | "
        "0.804104 | 0.694915 0.544804 0.845026 | 1.439024 1.183395 1.835522 | 1",
    ),
    "F": (
        [1, 2, 2, 5, 40],
        "5 5 0.000000 | 5.650206 5.054937 12.695527 | 0.744524 0.442063 1.046984 | "
        "0.836113 | 0.646531 0.484840 0.808221 | 1.546717 1.237285 2.062536 | 0.98",
    ),
    "G": (
        [1, 1, 1, 43, 42, 43],
        "9 6.365788 30.604402 | 0 0 0 | 1.207676 1.108641 1.306711 | "
        "1.268427 | 0.313212 0.296953 0.329471 | 3.192726 3.035168 3.367537 | 0.977099",
    ),
    "H": (
        [25],
        "1 1 1.000007 | 0 0 0 | -0 -0 0 | -0 | 1 1 1 | 1 1 1 | 1",
    ),
    "I": (
        [1, 1, 1, 1, 2, 2, 3, 4, 6, 9, 10, 11, 11, 25, 80, 300],
        "18 16.249903 32.006186 | 22.063002 17.690717 37.742253 | 1.306741 1.182223 1.431259 | "
        "1.344870 | 0.445975 0.398099 0.493851 | 2.242277 2.024902 2.511937 | 0.991435",
    ),
}
ORACLE_COLS = [
    *("chao", "chao_lci", "chao_hci", "ace", "ace_lci", "ace_hci", "shannon", "shannon_lci", "shannon_hci"),
    *("npshannon", "simpson", "simpson_lci", "simpson_hci", "invsimpson", "invsimpson_lci"),
    *("invsimpson_hci", "coverage"),
]
ORACLE_EVENNESS = {  # shannoneven, simpsoneven from the same run
    "A": ("0.721476", "0.448342"),
    "C": ("0.998489", "1.058970"),
    "D": ("0.718021", "0.422360"),
    "I": ("0.471307", "0.140142"),
}


@pytest.fixture(scope="module")
def oracle_frame() -> pd.DataFrame:
    width = max(len(c) for c, _ in ORACLE.values())
    dense = np.array([c + [0] * (width - len(c)) for c, _ in ORACLE.values()])
    return alpha_diversity(dense, list(ORACLE))


@pytest.mark.parametrize("case", list(ORACLE))
def test_oracle_case_every_column(oracle_frame: pd.DataFrame, case: str) -> None:
    counts, table = ORACLE[case]
    expected = dict(zip(ORACLE_COLS, table.replace("|", " ").split(), strict=True))
    expected |= {"nseqs": str(sum(counts)), "sobs": str(len(counts))}
    theirs = pd.DataFrame({k: [printed(float(v))] for k, v in expected.items()}, index=[case])
    assert_cells_match(oracle_frame, theirs, f"oracle case {case}")


@pytest.mark.parametrize("case", list(ORACLE_EVENNESS))
def test_oracle_evenness(oracle_frame: pd.DataFrame, case: str) -> None:
    shannoneven, simpsoneven = ORACLE_EVENNESS[case]
    assert printed(oracle_frame.at[case, "shannoneven"]) == shannoneven
    assert printed(oracle_frame.at[case, "simpsoneven"]) == simpsoneven


def test_mothur148_edge_cases_whole_file_is_reproduced() -> None:
    """30 edge cases (even samples -> inf CIs, int overflow of 2N^2, ACE branches): byte-identical file."""
    folder = FIXTURES / "mothur148-edge-cases"
    groups, counts = read_shared(folder / "edge.shared")
    ours = alpha_diversity(counts, groups, ALL_MOTHUR.split("-"))
    theirs = read_summary(folder / "edge.groups.summary").set_index("group").drop(columns="label")
    assert list(ours.columns) == list(theirs.columns)
    assert_cells_match(ours, theirs, "edge cases")
    # the formatted file, npshannon included, is identical byte for byte
    assert format_mothur_summary(ours) == (folder / "edge.groups.summary").read_text()


# --------------------------------------------------------------------------------------------------
# 2. published mothur outputs (deterministic rows and subsampled means)
# --------------------------------------------------------------------------------------------------
KORLEVIC_47 = (
    "0.03\t47\tave\t8395.000000\t1442.000000\t0.947588\t1674.722892\t1624.062405\t1739.480110\t"
    "1835.365227\t1767.868042\t1916.843133\t6.108435\t6.071574\t6.145296\t6.306624\t0.007120\t0.006690\t"
    "0.007550\t140.447066\t132.444458\t149.478938"
)
WOLFE_NEG = "0.03\tNEG_DNAa\tave\t9391.000000\t0.998722\t13.892660\t13.393468\t14.430503\t0.700575\t0.116745"
#: Iterations we run against the published 1000: enough for the tolerances below, fast enough for CI.
KORLEVIC_ITERS = 300
WOLFE_ITERS = 1000


def _calcs_of(summary: pd.DataFrame) -> list[str]:
    return [c for c in summary.columns[3:] if not c.endswith(("_lci", "_hci"))]


@pytest.fixture(scope="module")
def korlevic() -> dict:
    folder = FIXTURES / "korlevic2021"
    groups, counts = read_shared(folder / "opti_mcc.shared.gz")
    summary = read_summary(folder / "opti_mcc.groups.ave-std.summary")
    ave, std = subsampled_alpha(counts, groups, iters=KORLEVIC_ITERS, seed=2021, calcs=_calcs_of(summary))
    return {"groups": groups, "counts": counts, "summary": summary, "ave": ave, "std": std, "folder": folder}


@pytest.fixture(scope="module")
def wolfe() -> dict:
    folder = FIXTURES / "wolfe-guides"
    groups, counts = read_shared(folder / "final.opti_mcc.shared")
    summary = read_summary(folder / "final.opti_mcc.groups.ave-std.summary")
    ave, std = subsampled_alpha(counts, groups, iters=WOLFE_ITERS, seed=2024, calcs=_calcs_of(summary))
    return {"groups": groups, "counts": counts, "summary": summary, "ave": ave, "std": std, "folder": folder}


@pytest.mark.parametrize(("data", "group", "size"), [("korlevic", "47", 8395), ("wolfe", "NEG_DNAa", 9391)])
def test_published_deterministic_row(data: str, group: str, size: int, request: pytest.FixtureRequest) -> None:
    d = request.getfixturevalue(data)
    s = d["summary"].set_index(["group", "method"]).drop(columns="label")
    assert d["ave"].attrs["subsample_size"] == size
    assert_cells_match(d["ave"], s.xs("ave", level="method").loc[[group]], f"{data} ave {group}")
    assert (d["std"].loc[group] == 0).all()
    # Without subsampling the same group gives the same row (its subsample is the whole group).
    i = d["groups"].index(group)
    direct = alpha_diversity(d["counts"][[i]], [group], _calcs_of(d["summary"]))
    pd.testing.assert_frame_equal(direct, d["ave"].loc[[group]])


@pytest.mark.parametrize(("data", "iters"), [("korlevic", KORLEVIC_ITERS), ("wolfe", WOLFE_ITERS)])
def test_published_subsampled_means_and_sds(data: str, iters: int, request: pytest.FixtureRequest) -> None:
    """Our mean over ``iters`` subsamples vs mothur's mean over 1000 (different RNGs, so statistically).

    Per cell: z = (ours - mothur) / (sd_mothur * sqrt(1/iters + 1/1000)), both means being noisy, and
    |z| <= 5 (cells with sd 0 must match exactly). Per column, a bias check: the mean z over groups
    (independent samples) within 0.75, i.e. about 5 standard errors. SDs: every cell within [0.6, 1.6]
    of mothur's and the per-column median ratio within [0.9, 1.1]. The per-cell SD band is wide because
    ACE's per-subsample distribution is heavy-tailed: for korlevic group 74 two mothur runs of 1000
    iterations give SDs 49.8 and 55.8, and 300 of ours 59-68 depending on the seed (53 with 3000).
    """
    d = request.getfixturevalue(data)
    s = d["summary"].set_index(["group", "method"]).drop(columns="label")
    m_ave = s.xs("ave", level="method").astype(float)
    m_std = s.xs("std", level="method").astype(float)
    ave, std = d["ave"].loc[m_ave.index], d["std"].loc[m_ave.index]
    assert (ave["nseqs"] == ave.attrs["subsample_size"]).all() and (std["nseqs"] == 0).all()
    varying = m_std > 0
    assert ((ave.round(6) - m_ave.round(6)).abs()[~varying].fillna(0) == 0).all().all()
    z = ((ave - m_ave) / (m_std * math.sqrt(1 / iters + 1 / 1000)))[varying]
    assert z.abs().max().max() <= 5, z.abs().max().sort_values().tail()
    cols = varying.any()[lambda x: x].index  # nseqs never varies
    assert (z[cols].mean().abs() <= 0.75).all(), z[cols].mean()
    ratio = (std / m_std)[varying][cols]
    assert ((ratio >= 0.6) & (ratio <= 1.6))[varying[cols]].all().all(), (ratio.min(), ratio.max())
    assert ratio.median().between(0.9, 1.1).all(), ratio.median()


# --------------------------------------------------------------------------------------------------
# 3. output layout
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("data", "file", "line"), [
    ("korlevic", "opti_mcc.groups.ave-std.summary", KORLEVIC_47),
    ("wolfe", "final.opti_mcc.groups.ave-std.summary", WOLFE_NEG),
])  # fmt: skip
def test_ave_std_layout(data: str, file: str, line: str, request: pytest.FixtureRequest) -> None:
    d = request.getfixturevalue(data)
    ours = format_mothur_ave_std(d["ave"], d["std"]).split("\n")
    theirs = (d["folder"] / file).read_text().split("\n")
    assert ours[0] == theirs[0]  # header
    assert ours[-1] == theirs[-1] == ""  # LF-terminated
    assert [x.split("\t")[1:3] for x in ours[1:-1]] == [x.split("\t")[1:3] for x in theirs[1:-1]]  # order
    assert line in ours
    group = line.split("\t")[1]
    std_line = "\t".join(["0.03", group, "std", *["0.000000"] * (len(line.split("\t")) - 3)])
    assert std_line in ours and std_line in theirs


def test_group_order_is_mothurs_file_name_order() -> None:
    # Observed with mothur 1.48: groups come out in the byte order of "<group>.summary".
    names = ["A", "A-B", "A.B", "a", "B_1", "10", "9", "A_", "A0", "Z~", "é1", "AB"]
    df = alpha_diversity(np.ones((len(names), 2), dtype=int), names, ["nseqs"])
    text = format_mothur_summary(df)
    assert [x.split("\t")[1] for x in text.splitlines()[1:]] == [
        "10", "9", "A-B", "A.B", "A", "A0", "AB", "A_", "B_1", "Z~", "a", "é1",
    ]  # fmt: skip


def test_number_formatting() -> None:
    assert [A._fmt(x) for x in (-0.0, 0.0, 1.0, 2.5e-7, -1e-9, np.inf, -np.inf)] == [
        "-0.000000", "0.000000", "1.000000", "0.000000", "-0.000000", "inf", "-inf",
    ]  # fmt: skip
    assert A._fmt(float("nan")) == "nan" and A._fmt(-float("nan")) == "-nan"


def test_summary_header_without_and_with_method() -> None:
    df = alpha_diversity(np.array([[3, 1, 0], [2, 2, 2]]), ["x", "y"], ["sobs", "chao"])
    assert format_mothur_summary(df).splitlines()[0] == "label\tgroup\tsobs\tchao\tchao_lci\tchao_hci"
    block = format_mothur_summary(df, label="unique", method="ave")
    assert block.splitlines()[:2] == [
        "label\tgroup\tmethod\tsobs\tchao\tchao_lci\tchao_hci",
        "unique\tx\tave\t2.000000\t2.000000\t2.000000\t0.000000",  # F1 = 1: chao_hci is 0/0 -> 0
    ]


# --------------------------------------------------------------------------------------------------
# 4. live mothur (optional)
# --------------------------------------------------------------------------------------------------
def random_table(rng: np.random.Generator, n_groups: int, n_otus: int) -> np.ndarray:
    """Heterogeneous OTU tables: heavy tails, sparse, even, tiny, and one group with N > 32,768."""
    rows = []
    for g in range(n_groups):
        kind = g % 6
        if kind == 0:
            x = rng.negative_binomial(0.3, 0.05, n_otus)
        elif kind == 1:
            x = np.floor(rng.pareto(1.2, n_otus) * rng.integers(1, 5)).astype(int) * (rng.random(n_otus) < 0.3)
        elif kind == 2:
            x = rng.poisson(rng.gamma(0.5, 3.0, n_otus)) * (rng.random(n_otus) < rng.random())
        elif kind == 3:
            x = rng.geometric(0.5, n_otus) * (rng.random(n_otus) < 0.05)
        elif kind == 4:
            x = rng.lognormal(2, 2.5, n_otus).astype(int) * (rng.random(n_otus) < 0.5)
        else:
            x = rng.integers(0, 4, n_otus) * (rng.random(n_otus) < 0.02)
        if x.sum() == 0:
            x[0] = 1
        rows.append(x)
    table = np.array(rows, dtype=np.int64)
    table[0, 0] += 40_000  # mothur's shannon CI wraps 2*N*N in 32 bits above N = 32,768
    table[1] = 0
    table[1, : n_otus // 10] = 3  # a perfectly even sample (simpson CI -> 0, invsimpson CI -> inf)
    return table


def write_shared(path: Path, groups: list[str], table: np.ndarray) -> None:
    width = len(str(table.shape[1]))
    otus = [f"Otu{i + 1:0{width}d}" for i in range(table.shape[1])]
    lines = ["\t".join(["label", "Group", "numOtus", *otus])]
    lines += ["\t".join(["0.03", g, str(table.shape[1]), *map(str, row)]) for g, row in zip(groups, table, strict=True)]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.oracle
@pytest.mark.skipif(shutil.which("mothur") is None, reason="mothur not on PATH (apt-get install mothur)")
def test_live_mothur_every_cell(tmp_path: Path) -> None:
    table = random_table(np.random.default_rng(30), 30, 500)
    groups = [f"G{i:02d}" for i in range(len(table))]
    write_shared(tmp_path / "r.shared", groups, table)
    cmd = f"#summary.single(shared=r.shared, calc={ALL_MOTHUR}, groupmode=t)"
    done = subprocess.run(["mothur", cmd], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = tmp_path / "r.groups.summary"
    assert out.exists(), done.stdout[-2000:]
    theirs = read_summary(out).set_index("group").drop(columns="label")
    ours = alpha_diversity(sp.csr_array(table), groups)
    assert list(theirs.index) == sorted(groups) and list(theirs.columns) == list(ours.columns)
    assert_cells_match(ours, theirs, "live mothur")


# --------------------------------------------------------------------------------------------------
# 5. vectorised code vs a per-sample transliteration of mothur's C++ (no mothur needed)
# --------------------------------------------------------------------------------------------------
def _mothur_scalar(counts: np.ndarray) -> dict[str, float]:
    """Straight per-sample transliteration of mothur 1.48's calculators (loops as in the C++ sources)."""
    d, f32 = np.float64, np.float32
    c = [int(v) for v in counts if v > 0]
    n_int, s_int = sum(c), len(c)
    maxrank = max(c, default=0)
    F = [0] * (maxrank + 2)
    for v in c:
        F[v] += 1
    classes = sorted(set(c))  # mothur loops i = 1..maxRank; empty classes add exactly 0
    N, S = d(n_int), d(s_int)
    out: dict[str, float] = {"nseqs": N, "sobs": S}
    with np.errstate(all="ignore"):
        out["coverage"] = d(1.0) - d(F[1] if maxrank >= 1 else 0) / N
        f1, f2 = d(F[1] if maxrank >= 1 else 0), d(F[2] if maxrank >= 2 else 0)
        chao = S + f1 * (f1 - 1) / (2 * (f2 + 1))
        var = d(0.0)
        if f1 > 0 and f2 > 0:
            var = (
                f1 * (f1 - 1) / (2 * (f2 + 1))
                + f1 * (2 * f1 - 1) ** 2 / (4 * (f2 + 1) ** 2)
                + f1**2 * f2 * (f1 - 1) ** 2 / (4 * (f2 + 1) ** 4)
            )
        elif f1 > 0:
            var = f1 * (f1 - 1) / 2 + f1 * (2 * f1 - 1) ** 2 / 4 - f1**4 / (4 * chao)
        if f1 > 0:
            cc = np.exp(1.96 * np.power(np.log(1 + var / (chao - S) ** 2), 0.5))
            lci, hci = S + (chao - S) / cc, S + (chao - S) * cc
        else:
            p = np.exp(-N / S)
            lci = S / (1 - p) - 1.96 * np.power(S * p / (1 - p), 0.5)
            hci = S / (1 - p) + 1.96 * np.power(S * p / (1 - p), 0.5)
            lci = S if lci < S else lci
        san = lambda x: d(x) if np.isfinite(x) else d(0.0)  # noqa: E731
        out |= {"chao": san(chao), "chao_lci": san(lci), "chao_hci": san(hci)}
        # ace
        nrare = srare = sab = numsum = d(0.0)
        for i in classes:
            if i <= 10:
                srare += F[i]
                nrare += i * F[i]
                numsum += (i - 1) * i * F[i]
            else:
                sab += F[i]
        cace = d(0.0) if nrare == 0 else 1.0 - f1 / nrare
        denom = cace * (nrare * (nrare - 1))
        term1 = d(0.0) if denom <= 0 else (srare * numsum) / denom - 1.0
        gam = term1 if term1 >= 0 else d(0.0)
        if gam >= 0.64:
            gam = gam * (1 + (nrare * (1 - cace) * numsum) / denom)
            gam = d(0.0) if gam < 0 else gam
        ace = d(0.0) if cace == 0 else sab + (srare + f1 * gam) / cace
        ds, nn, ww = srare, nrare, numsum
        mi = maxrank + 1
        P = [d(0.0)] * (mi + 1)
        gamma = (ds * ww) / ((1.0 - f1 / nn) * nn * (nn - 1.0)) - 1.0
        t1, t2 = nn - f1, nn - 1.0
        if gamma > 0:
            P[1] = (
                (ds + nn) * (1.0 + f1 * ww / t1 / t2) / t1
                + nn * ds * ww * (t1 - 1.0) / (t1 * t1 * t2 * t2)
                - (nn + f1) / t1
            )
            for j in range(2, min(mi, 10) + 1):
                P[j] = (
                    (nn * t1 - j * f1 * ds) / t1 / t1 * (1.0 + f1 * ww / t1 / t2)
                    + j * f1 * ds * nn * ((j - 1.0) * t1 * t2 - ww * (t1 + t2)) / t1 / t1 / t1 / t2 / t2
                    + j * f1 * f1 / t1 / t1
                )
        else:
            P[1] = (nn + ds) / t1
            for j in range(2, min(mi, 10) + 1):
                P[j - 1] = (nn * t1 - j * f1 * ds) / t1 / t1
        for j in range(11, mi + 1):
            P[j - 1] = d(1.0)
        s1 = s2 = d(0.0)
        for j in [0, *classes]:  # j < Max_Index
            s1 += P[j] * F[j]
            s2 += P[j] * P[j] * F[j]
        se = s2 - s1 * s1 / ace
        if ace == 0 or np.isnan(se):
            alci = ahci = ace
        elif abs(ace - S) <= abs(ace * 0.001):
            alci, ahci = ace - 1.96 * np.power(se, 0.5), ace + 1.96 * np.power(se, 0.5)
        else:
            cc = np.exp(1.96 * np.power(np.log(1 + se / (ace - S) ** 2), 0.5))
            alci, ahci = S + (ace - S) / cc, S + (ace - S) * cc
        out |= {"ace": san(ace), "ace_lci": san(alci), "ace_hci": san(ahci)}
        # shannon, npshannon
        h = hv = d(0.0)
        for i in classes:
            p = d(i) / N
            h += d(F[i]) * p * np.log(p)
            hv += d(F[i]) * p * np.log(p) ** 2
        h = -h
        two_n2 = (2 * n_int * n_int + 2**31) % 2**32 - 2**31  # C int
        hvar = (hv - h * h) / N + d(s_int - 1) / d(two_n2)
        ci = 1.96 * np.power(hvar, 0.5) if hvar > 0 else d(0.0)
        out |= {"shannon": san(h), "shannon_lci": san(h - ci), "shannon_hci": san(h + ci)}
        acc = f32(0.0)
        chat = 1.0 - f1 / N
        if chat > 0:
            for i in classes:
                cp = chat * (d(i) / N)
                if cp > 0:
                    acc = f32(d(acc) + F[i] * cp * np.log(cp) / (1 - np.power(1 - cp, N)))
            acc = -acc
        else:
            acc = f32(0.0)
        out["npshannon"] = san(d(acc))
        # simpson family
        simp = ci = d(0.0)
        if S != 0:
            simp = sum(d(F[i] * i * (i - 1)) for i in classes) / (N * (N - 1))
            ft = st = d(0.0)
            for i in classes:
                ft += F[i] * np.power(d(i) / N, 3.0)
                st += F[i] * np.power(d(i) / N, 2.0)
            ci = 1.95 * np.power((4.0 / N) * (ft - st * st), 0.5)
        s0, lo, hi = san(simp), san(simp - ci), san(simp + ci)
        inv = (1 / s0, 1 / hi, 1 / lo) if s0 != 0 else (d(1.0),) * 3
        out |= {"simpson": s0, "simpson_lci": lo, "simpson_hci": hi}
        out |= {"invsimpson": inv[0], "invsimpson_lci": inv[1], "invsimpson_hci": inv[2]}
        out["shannoneven"] = out["shannon"] / np.log(S) if s_int > 1 else d(1.0)
        out["simpsoneven"] = inv[0] / S
    return out


def _assert_bitwise_like_scalar(table: np.ndarray, ours: pd.DataFrame) -> None:
    bad = []
    for i, g in enumerate(ours.index):
        for k, v in _mothur_scalar(table[i]).items():
            w = float(ours.at[g, k])
            if k == "coverage" and table[i].sum() == 0:
                continue  # undefined in mothur (reads past an empty vector); we return NaN
            same = (v == w and np.signbit(v) == np.signbit(w)) or (np.isnan(v) and np.isnan(w))
            if not same:
                bad.append((g, k, v, w))
    assert not bad, bad[:10]


def test_vectorised_equals_scalar_transliteration_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    table = random_table(rng, 180, 300)
    table[5] = 0  # an empty sample
    table[6, :] = 0
    table[6, 3] = 1  # a single read
    ids = [f"S{i}" for i in range(len(table))]
    _assert_bitwise_like_scalar(table, alpha_diversity(sp.csr_array(table), ids))


def test_sorted_path_for_large_abundances_gives_identical_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """Abundances above the dense grid are sorted and merged: force that path everywhere."""
    table = random_table(np.random.default_rng(11), 60, 200)
    ids = [f"S{i}" for i in range(len(table))]
    grid = alpha_diversity(table, ids)
    monkeypatch.setattr(A, "_DENSE_CELLS", 1)
    merged = alpha_diversity(table, ids)
    pd.testing.assert_frame_equal(grid, merged, check_exact=True)


def test_empty_sample_behaviour() -> None:
    df = alpha_diversity(np.array([[0, 0], [3, 1]]), ["empty", "x"], [*DEFAULT_CALCS, "shannon_bits", "gini_simpson"])
    row = df.loc["empty"]
    assert np.isnan(row["coverage"]) and np.isinf(row["simpsoneven"])  # mothur: -inf (UB) and inf
    assert row[["nseqs", "sobs", "chao", "ace", "ace_lci", "simpson", "npshannon"]].eq(0).all()
    assert row[["invsimpson", "invsimpson_lci", "invsimpson_hci", "shannoneven"]].eq(1).all()
    assert np.isnan(row["shannon_bits"]) and np.isnan(row["gini_simpson"])


# --------------------------------------------------------------------------------------------------
# 6. scikit-bio agrees where the definitions coincide (and differs where they do not)
# --------------------------------------------------------------------------------------------------
def test_scikit_bio_cross_check() -> None:
    from skbio.diversity import alpha as sk

    table = random_table(np.random.default_rng(3), 24, 150)
    ids = [f"S{i}" for i in range(len(table))]
    calcs = ["coverage", "chao", "shannon", "simpson", "invsimpson", "shannoneven", "shannon_bits", "gini_simpson"]
    ours = alpha_diversity(table, ids, calcs)
    for i, g in enumerate(ids):
        x = table[i]
        checks = {
            "coverage": sk.goods_coverage(x),
            "chao": sk.chao1(x, bias_corrected=True),
            "shannon": sk.shannon(x),
            "simpson": sk.dominance(x, finite=True),
            "invsimpson": sk.inv_simpson(x, finite=True),
            "shannoneven": sk.pielou_e(x),
            "shannon_bits": sk.shannon(x, base=2),
            "gini_simpson": sk.simpson(x),
        }
        for k, v in checks.items():
            assert ours.at[g, k] == pytest.approx(v, rel=1e-12, abs=1e-12), (g, k)
    # ACE is not scikit-bio's: mothur's high-CV correction (case D) and its C = 0 rule (case C).
    d = alpha_diversity(np.array([[1, 1, 1, 1, 1, 10, 2], [12, 12, 13, 14, 0, 0, 0]]), ["D", "C"], ["ace"])
    assert printed(d.at["D", "ace"]) == "66.543367"
    assert sk.ace([1, 1, 1, 1, 1, 10, 2]) == pytest.approx(26.592, abs=1e-3)
    assert d.at["C", "ace"] == 0 and sk.ace([12, 12, 13, 14]) == 4.0


# --------------------------------------------------------------------------------------------------
# 7. subsampling: exact without-replacement law, and command semantics
# --------------------------------------------------------------------------------------------------
def _exact_sabund_law(counts: list[int], size: int) -> dict[tuple[int, ...], float]:
    """P(sabund of a uniform ``size``-subset of the reads), by enumerating kept counts per OTU."""
    total = math.comb(sum(counts), size)
    law: dict[tuple[int, ...], float] = {}
    for x in itertools.product(*(range(n + 1) for n in counts)):
        if sum(x) != size:
            continue
        weight = math.prod(math.comb(n, k) for n, k in zip(counts, x, strict=True))
        key = tuple(np.bincount([k for k in x if k], minlength=size + 1)[1:])
        law[key] = law.get(key, 0.0) + weight / total
    return law


def test_subsampler_draws_exactly_without_replacement() -> None:
    """Chi-square of the sabund of 40,000 subsamples against the exact hypergeometric law.

    Row 0 uses per-OTU binomials; row 1 (8 singletons, 4 doubletons) the per-class multinomial. The
    seed is fixed, so this is deterministic; p > 1e-3 leaves a wide margin.
    """
    from scipy import stats  # slow to import; only this test needs it

    rows = [[4, 3, 2, 1, 1, 1], [1] * 8 + [2] * 4 + [3]]
    size, b = 5, 40_000
    table = np.zeros((2, max(map(len, rows))), np.int64)
    for i, r in enumerate(rows):
        table[i, : len(r)] = r
    csr = sp.csr_array(table)
    entry_rows = np.repeat(np.arange(2), np.diff(csr.indptr))
    th = A._thinning(A._sabund(entry_rows, csr.data, 2), size)
    assert th.multi_n.size > 0 and th.single_n.size > 0  # both paths are exercised
    rng = np.random.default_rng(12345)
    r, x, m = A._fix_size(rng, A._thin(rng, th, b), np.tile(th.row_n, b), size)
    hist = np.bincount(r * (size + 1) + x, weights=m, minlength=2 * b * (size + 1)).reshape(2 * b, size + 1)
    assert (hist @ np.arange(size + 1) == size).all()  # every subsample has exactly `size` reads
    for i, counts in enumerate(rows):
        law = _exact_sabund_law(counts, size)
        keys, obs = np.unique(hist[i::2, 1:].astype(int), axis=0, return_counts=True)
        observed = {tuple(k): o for k, o in zip(keys.tolist(), obs, strict=True)}
        assert set(observed) <= set(law)
        exp = np.array([law[k] * b for k in law])
        got = np.array([observed.get(k, 0) for k in law])
        big = exp >= 5
        f_obs = np.append(got[big], got[~big].sum())
        f_exp = np.append(exp[big], exp[~big].sum())
        keep = f_exp > 0
        p = stats.chisquare(f_obs[keep], f_exp[keep] * f_obs.sum() / f_exp[keep].sum()).pvalue
        assert p > 1e-3, (i, p)


def test_subsampled_means_match_exact_rarefaction_expectations(korlevic: dict) -> None:
    """At scale (real groups, thousands of OTUs): E[sobs] and E[F1] of a uniform subsample are known.

    E[sobs] = sum_j 1 - C(N - n_j, size)/C(N, size); E[F1] = sum_j n_j C(N - n_j, size - 1)/C(N, size);
    coverage = 1 - F1/size. Our means over 3000 subsamples must be within 4 standard errors.
    """
    from scipy.special import gammaln

    def lcomb(a: np.ndarray, b: int) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.where(a >= b, gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1), -np.inf)

    size, iters = 8395, 3000
    picks = [0, 10, 30]
    ave, std = subsampled_alpha(
        korlevic["counts"][picks], [korlevic["groups"][i] for i in picks], size, iters, 4, ["sobs", "coverage"]
    )
    for i, g in zip(picks, ave.index, strict=True):
        x = korlevic["counts"][[i]].toarray().ravel()
        x = x[x > 0]
        n = x.sum()
        e_sobs = np.sum(1 - np.exp(lcomb(n - x, size) - lcomb(np.array(n), size)))
        e_cov = 1 - np.sum(np.exp(np.log(x) + lcomb(n - x, size - 1) - lcomb(np.array(n), size))) / size
        se = std.loc[g] / math.sqrt(iters)
        assert abs(ave.at[g, "sobs"] - e_sobs) <= 4 * se["sobs"], (g, ave.at[g, "sobs"], e_sobs)
        assert abs(ave.at[g, "coverage"] - e_cov) <= 4 * se["coverage"], (g, ave.at[g, "coverage"], e_cov)


def test_distinct_positions() -> None:
    rng = np.random.default_rng(0)
    pool = np.array([5, 1000, 7, 3])
    k = np.array([5, 30, 0, 2])
    rr, pos = A._distinct_positions(rng, pool, k)
    assert np.bincount(rr, minlength=4).tolist() == k.tolist()
    assert (pos >= 0).all() and (pos < pool[rr]).all()
    assert len(set(zip(rr.tolist(), pos.tolist(), strict=True))) == rr.size


def test_subsample_semantics(caplog: pytest.LogCaptureFixture) -> None:
    table = np.array([[5, 3, 2, 0], [1, 1, 1, 1], [10, 0, 0, 2], [2, 2, 0, 1]])
    ids = ["big", "small", "other", "exact"]
    with caplog.at_level(logging.WARNING, logger="analysis.microbiome.alpha"):
        ave, std = subsampled_alpha(table, ids, size=5, iters=50, seed=1)
    assert list(ave.index) == ["big", "other", "exact"] and ave.attrs["dropped_samples"] == ("small",)
    assert std.attrs == ave.attrs and ave.attrs["subsample_size"] == 5 and ave.attrs["iters"] == 50
    assert "small" in caplog.text
    pd.testing.assert_frame_equal(ave.loc[["exact"]], alpha_diversity(table[[3]], ["exact"]))
    assert (std.loc["exact"] == 0).all() and (std["nseqs"] == 0).all() and (ave["nseqs"] == 5).all()
    assert (std.loc["big"] > 0).any()
    # default size = smallest sample, nothing dropped; same seed, same numbers
    ave2, _ = subsampled_alpha(table, ids, iters=20, seed=9)
    ave3, _ = subsampled_alpha(table, ids, iters=20, seed=9)
    assert ave2.attrs["subsample_size"] == 4 and ave2.attrs["dropped_samples"] == ()
    pd.testing.assert_frame_equal(ave2, ave3)
    with pytest.raises(ValueError, match="size"):
        subsampled_alpha(np.array([[0, 0], [1, 1]]), ["e", "x"])  # smallest sample is empty
    with pytest.raises(ValueError, match="no sample"):
        subsampled_alpha(table, ids, size=100)


# --------------------------------------------------------------------------------------------------
# 8. API contract
# --------------------------------------------------------------------------------------------------
def test_columns_inputs_and_validation() -> None:
    table = np.array([[5, 0, 1], [0, 2, 2]])
    assert alpha_columns(["sobs", "ace", "npshannon"]) == ["sobs", "ace", "ace_lci", "ace_hci", "npshannon"]
    dense = alpha_diversity(table, ["a", "b"])
    assert list(dense.columns) == alpha_columns(DEFAULT_CALCS) and dense.index.name == "sample_id"
    for other in (sp.csr_matrix(table), sp.coo_array(table), sp.csc_array(table.astype(float))):
        pd.testing.assert_frame_equal(alpha_diversity(other, ["a", "b"]), dense)
    assert alpha_diversity(table, ["a", "b"], ["goodscoverage"])["goodscoverage"].equals(dense["coverage"])
    with pytest.raises(ValueError, match="negative"):
        alpha_diversity(np.array([[1, -1]]), ["a"])
    with pytest.raises(ValueError, match="whole numbers"):
        alpha_diversity(np.array([[1.5, 1]]), ["a"])
    with pytest.raises(ValueError, match="duplicate"):
        alpha_diversity(table, ["a", "a"])
    with pytest.raises(ValueError, match="2 rows"):
        alpha_diversity(table, ["a"])
    with pytest.raises(ValueError, match="unknown calculator"):
        alpha_diversity(table, ["a", "b"], ["sobs", "jack"])
