"""Formula injection: delivered text is stored verbatim in the warehouse but neutralised in every CSV written
for people (``analysis.safe_csv``; the CLI's ``--csv``/``--out`` outputs)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import safe_csv
from analysis.ingest import load_family
from orchestration import cli

FORMULA = "=cmd|' /C calc'!A0"
HOSTILE = [FORMULA, "+SUM(1+1)", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)", "\t=1+1", "\r=1+1", "-inf", "-", "=", "+nan"]
NUMBERS = ["-1.5", "+3", "-2.5e-07", "1e10", ".5", "-0", "12", "3.", "-.25E+3"]


@pytest.mark.parametrize("value", HOSTILE)
def test_formula_text_gets_a_leading_quote(value: str) -> None:
    assert safe_csv.neutralise(value) == "'" + value
    assert not safe_csv.is_formula(safe_csv.neutralise(value))


@pytest.mark.parametrize("value", [*NUMBERS, "S1", "'=already", "", "a=b", "μ-value", 3, -1.5, None])
def test_numbers_and_plain_text_are_unchanged(value: object) -> None:
    assert safe_csv.neutralise(value) == value


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_neutralise_is_minimal_and_idempotent(value: str) -> None:
    out = safe_csv.neutralise(value)
    assert out in (value, "'" + value)
    assert safe_csv.neutralise(out) == out
    assert not safe_csv.is_formula(out)
    if out != value:
        assert value[:1] in safe_csv.FORMULA_PREFIXES


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers()))
def test_numbers_written_as_text_stay_numbers(number: float) -> None:
    for text in (repr(number), str(number), f"{number:+}" if isinstance(number, int) else f"{number:.6e}"):
        assert safe_csv.neutralise(text) == text


def cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_to_csv_neutralises_cells_labels_and_index_but_not_numbers() -> None:
    frame = pd.DataFrame(
        {"name": [FORMULA, "ok"], "=col": ["-1.5", "@x"], "value": [-1.5, 2.0]},
        index=pd.Index(["+S1", "S2"], name="sample"),
    )
    rows = cells(safe_csv.to_csv(frame, float_format="%.3f"))
    assert rows[0] == ["sample", "name", "'=col", "value"]
    assert rows[1] == ["'+S1", "'" + FORMULA, "-1.5", "-1.500"]
    assert rows[2] == ["S2", "ok", "'@x", "2.000"]
    assert frame.loc["+S1", "name"] == FORMULA  # the caller's frame is not altered


def test_safe_writer() -> None:
    out = io.StringIO()
    safe_csv.SafeWriter(out, lineterminator="\n").writerows([["id", "value"], [FORMULA, -1.5], ["-3", "-x"]])
    assert cells(out.getvalue()) == [["id", "value"], ["'" + FORMULA, "-1.5"], ["-3", "'-x"]]


# ---------------------------------------------------------------------------------------------- end to end


@pytest.fixture
def table(tmp_path: Path) -> Path:
    """A classic TSV whose first sample id is a formula-injection payload."""
    path = tmp_path / "feature-table.tsv"
    rows = ["#OTU ID\t" + "\t".join([FORMULA, "S2", "S3", "S4"])]
    for i, counts in enumerate([[10, 0, 3, 5], [2, 8, 1, 0], [0, 4, 9, 2], [7, 1, 0, 3]]):
        rows.append(f"F{i}\t" + "\t".join(map(str, counts)))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def assert_neutralised(text: str) -> None:
    found = [c for row in cells(text) for c in row if FORMULA in c]
    assert found, text
    assert all(c == "'" + FORMULA for c in found), found


def test_the_warehouse_stores_the_sample_id_verbatim(table: Path, tmp_path: Path) -> None:
    batch = tmp_path / "landing" / "sequencing" / "SEQ01"
    batch.mkdir(parents=True)
    (batch / "feature-table.tsv").write_bytes(table.read_bytes())
    manifest = io.StringIO()
    csv.writer(manifest, lineterminator="\n").writerows(
        [["sample_id", "specimen_barcode", "sample_role"], [FORMULA, "FC-1", "SAMPLE"], ["S2", "FC-2", "SAMPLE"]]
    )
    (batch / "manifest.csv").write_text(manifest.getvalue(), encoding="utf-8")
    con = duckdb.connect()
    report = load_family(con, tmp_path / "landing", "sequencing")
    assert report.count("rejected") == 0, [o.reason for o in report.rejected]
    assert con.execute("select count(*) from raw.seq_manifest where sample_id = ?", [FORMULA]).fetchone()[0] == 1
    stored = {r[0] for r in con.execute("select distinct sample_id from raw.seq_counts").fetchall()}
    assert FORMULA in stored


def test_alpha_csv_neutralises(table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["alpha", str(table), "--csv"]) == 0
    assert_neutralised(capsys.readouterr().out)


def test_beta_csv_neutralises(table: Path, tmp_path: Path) -> None:
    out = tmp_path / "beta.csv"
    assert cli.main(["beta", str(table), "--csv", "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert_neutralised(text)
    frame = pd.read_csv(out, index_col=0)
    assert frame.shape == (4, 4) and frame.to_numpy().diagonal().sum() == 0  # still a numeric square matrix


def test_ordinate_csv_neutralises(table: Path, tmp_path: Path) -> None:
    out = tmp_path / "pcoa.csv"
    assert cli.main(["ordinate", str(table), "--out", str(out)]) == 0
    assert_neutralised(out.read_text(encoding="utf-8"))


def test_pca_outputs_neutralise_sample_ids_and_metabolite_names(tmp_path: Path) -> None:
    injections = [FORMULA, "INJ2", "INJ3", "INJ4"]
    features = tmp_path / "features.csv"
    rows = [["feature_id", "ion_mode", "mz", "rt_min", "name", *injections]]
    for i, values in enumerate([[100, 200, 150, 120], [50, 40, 80, 60], [10, 30, 20, 25]]):
        rows.append([f"M{i}", "POS", str(100 + i), "1.5", FORMULA if i == 0 else f"met{i}", *map(str, values)])
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    features.write_text(buf.getvalue(), encoding="utf-8")
    listing = tmp_path / "injections.csv"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(
        [["injection_id", "sample_type", "specimen_barcode", "matrix", "run_order"]]
        + [[inj, "SAMPLE", f"FC-{i}", "FAECES", str(i + 1)] for i, inj in enumerate(injections)]
    )
    listing.write_text(buf.getvalue(), encoding="utf-8")
    out = tmp_path / "pca"
    assert cli.main(["pca", str(features), "--injections", str(listing), "--out", str(out)]) == 0
    assert_neutralised((out / "scores.csv").read_text(encoding="utf-8"))
    assert_neutralised((out / "loadings.csv").read_text(encoding="utf-8"))
    assert_neutralised((out / "prepared_matrix.csv").read_text(encoding="utf-8"))
