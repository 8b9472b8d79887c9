"""Tests for ``analysis.readers``: every format, every rejection, and real mothur data.

Hand-made fixtures live in ``tests/fixtures/readers/`` (one 3-sample x 4-OTU table in every text format;
see the README there). Binary and broken variants (gzip, BIOM HDF5 written by biom-format, .qza zips,
corrupt files) are built in ``tmp_path`` next to the assertion that uses them. Real data: the Wolfe
"R-Studio-Guides" mothur outputs copied into ``tests/fixtures/mothur/wolfe-guides/`` (MIT, see README).
"""

from __future__ import annotations

import gzip
import json
import re
import uuid
import zipfile
from pathlib import Path

import biom
import h5py
import numpy as np
import pandas as pd
import pytest

from analysis.errors import ContractViolation
from analysis.readers import (
    RANKS,
    FeatureTable,
    detect_format,
    lineage_table,
    parse_lineage,
    read_feature_table,
    read_injection_list,
    read_metabolomics_table,
    read_seq_manifest,
    read_shared_labels,
    read_taxonomy,
    read_taxonomy_table,
)

FIX = Path(__file__).parent / "fixtures" / "readers"
WOLFE = Path(__file__).parent / "fixtures" / "mothur" / "wolfe-guides"

# The table every tiny fixture holds: samples x features.
TINY = np.array([[10, 0, 3, 1], [0, 5, 0, 2], [7, 1, 0, 0]])
SAMPLES = ["S1", "S2", "S3"]
OTUS = ["Otu1", "Otu2", "Otu3", "Otu4"]
GG = [
    ["k__Bacteria", "p__Bacteroidetes", "c__Bacteroidia", "o__Bacteroidales", "f__Bacteroidaceae", "g__Bacteroides"],
    ["k__Bacteria", "p__Firmicutes", "c__Clostridia", "o__Clostridiales", "f__Lachnospiraceae", "g__", "s__"],
    ["k__Bacteria", "p__Firmicutes", "c__Clostridia", "o__Clostridiales", "f__Ruminococcaceae"],
    ["Unassigned"],
]


def write(tmp_path: Path, name: str, content: str | bytes, gz: bool = False) -> Path:
    data = content.encode() if isinstance(content, str) else content
    path = tmp_path / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def rejects(call, path, *, row, column, match: str, **kwargs) -> ContractViolation:
    """Assert ``call(path)`` raises a ContractViolation naming this file, row and column."""
    with pytest.raises(ContractViolation) as info:
        call(path, **kwargs)
    err = info.value
    assert Path(err.file) == Path(path)
    assert err.row == row, str(err)
    assert err.column == column, str(err)
    assert re.search(match, str(err)), str(err)
    return err


def assert_tiny(ft: FeatureTable, fmt: str) -> None:
    assert ft.format == fmt
    assert ft.sample_ids == SAMPLES
    assert ft.feature_ids == OTUS
    assert ft.counts.shape == (3, 4)
    assert ft.counts.dtype == np.int64
    assert not ft.relative
    np.testing.assert_array_equal(ft.counts.toarray(), TINY)


def biom_table(counts=TINY, samples=SAMPLES, otus=OTUS, taxonomy=GG) -> biom.Table:
    md = [{"taxonomy": t} for t in taxonomy] if taxonomy is not None else None
    return biom.Table(np.asarray(counts, dtype=float).T, list(otus), list(samples), observation_metadata=md)


def write_h5(table: biom.Table, path: Path) -> Path:
    with h5py.File(path, "w") as fh:
        table.to_hdf5(fh, "guttrial tests")
    return path


def make_qza(path: Path, type_: str, payload: dict[str, bytes], roots: int = 1) -> Path:
    """A QIIME 2 artifact as q2 lays it out: one root directory named by the UUID (omics.md section 6)."""
    with zipfile.ZipFile(path, "w") as zf:
        for _ in range(roots):
            root = str(uuid.uuid4())
            zf.writestr(f"{root}/VERSION", "QIIME 2\narchive: 5\nframework: 2024.10.1\n")
            zf.writestr(f"{root}/metadata.yaml", f"uuid: {root}\ntype: {type_}\nformat: BIOMV210DirFmt\n")
            zf.writestr(f"{root}/provenance/action/action.yaml", "action:\n  type: import\n")
            for name, data in payload.items():
                zf.writestr(f"{root}/{name}", data)
    return path


# ---------------------------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("tiny.shared", "shared"),
        ("headerless.shared", "shared"),
        ("qiime1_otu_table.tsv", "tsv"),
        ("majorbio_otu_table.xls", "tsv"),  # tab-separated text despite .xls, CRLF line ends
        ("tiny_sparse.biom", "biom-json"),
        ("tiny_dense.biom", "biom-json"),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_text_formats_read_the_same_table(tmp_path, name, fmt, gz):
    path = FIX / name
    if gz:
        path = write(tmp_path, name, path.read_bytes(), gz=True)
    assert detect_format(path) == fmt
    ft = read_feature_table(path)
    assert_tiny(ft, fmt)
    assert ft.source == str(path)


def test_shared_lineage_rows_and_label():
    ft = read_feature_table(FIX / "tiny.shared")
    assert ft.label == "0.03"
    assert ft.rows_are == "samples"
    assert ft.source_rows.tolist() == [2, 3, 4]  # header is line 1
    assert ft.taxonomy is None
    headerless = read_feature_table(FIX / "headerless.shared")
    assert headerless.source_rows.tolist() == [1, 2, 3]


def test_classic_tsv_taxonomy_and_rows():
    ft = read_feature_table(FIX / "qiime1_otu_table.tsv")
    assert ft.source_rows.tolist() == [3, 4, 5, 6]  # '# Constructed from biom file' + '#OTU ID' header
    assert ft.taxonomy["Otu3"].endswith("g__Faecalibacterium; s__prausnitzii")
    assert ft.taxonomy["Otu4"] == "Unassigned"
    mb = read_feature_table(FIX / "majorbio_otu_table.xls")
    assert mb.taxonomy["Otu1"].startswith("d__Bacteria;k__norank_d__Bacteria;p__Bacteroidota")
    assert not mb.taxonomy["Otu1"].endswith("\r")


def test_classic_tsv_last_column_is_taxonomy_only_when_not_numeric(tmp_path):
    # an unnamed trailing column of lineages is metadata; a numeric last column is a sample
    p = write(tmp_path, "t.txt", "#OTU ID\tS1\tS2\tConsensus\nO1\t1\t2\tk__A; p__B\nO2\t0\t4\tk__A\n")
    ft = read_feature_table(p)
    assert ft.sample_ids == ["S1", "S2"]
    assert ft.taxonomy == {"O1": "k__A; p__B", "O2": "k__A"}
    p = write(tmp_path, "n.txt", "OTU_ID\tS1\tS2\tS3\nO1\t1\t2\t3\n")
    assert read_feature_table(p).sample_ids == ["S1", "S2", "S3"]


def test_biom_json_taxonomy_list_is_joined():
    ft = read_feature_table(FIX / "tiny_sparse.biom")
    assert (
        ft.taxonomy["Otu1"] == "k__Bacteria; p__Bacteroidetes; c__Bacteroidia; o__Bacteroidales; "
        "f__Bacteroidaceae; g__Bacteroides; s__"
    )
    assert "Otu4" not in ft.taxonomy  # metadata null
    assert ft.source_rows.tolist() == [1, 2, 3, 4]


def test_biom_hdf5_and_json_written_by_biom_format(tmp_path):
    table = biom_table()
    h5 = write_h5(table, tmp_path / "t.biom")
    ft = read_feature_table(h5)
    assert detect_format(h5) == "biom-hdf5"
    assert_tiny(ft, "biom-hdf5")
    assert (
        ft.taxonomy["Otu2"] == "k__Bacteria; p__Firmicutes; c__Clostridia; o__Clostridiales; "
        "f__Lachnospiraceae; g__; s__"
    )
    assert ft.taxonomy["Otu3"] == "k__Bacteria; p__Firmicutes; c__Clostridia; o__Clostridiales; f__Ruminococcaceae"
    assert ft.taxonomy["Otu4"] == "Unassigned"
    js = write(tmp_path, "t.json.biom", table.to_json("guttrial tests"))
    assert_tiny(read_feature_table(js), "biom-json")
    # gzipped HDF5 is accepted too (decompressed in memory)
    assert_tiny(read_feature_table(write(tmp_path, "t.biom", h5.read_bytes(), gz=True)), "biom-hdf5")
    # no taxonomy metadata -> None
    bare = read_feature_table(write_h5(biom_table(taxonomy=None), tmp_path / "bare.biom"))
    assert bare.taxonomy is None


def test_qza_feature_table_and_relative_frequency(tmp_path):
    payload = write_h5(biom_table(), tmp_path / "payload.biom").read_bytes()
    qza = make_qza(tmp_path / "table.qza", "FeatureTable[Frequency]", {"data/feature-table.biom": payload})
    assert detect_format(qza) == "qza"
    assert_tiny(read_feature_table(qza), "qza")
    rel = biom_table(counts=TINY / TINY.sum(axis=1, keepdims=True))
    rel_qza = make_qza(
        tmp_path / "rel.qza",
        "FeatureTable[RelativeFrequency]",
        {"data/feature-table.biom": write_h5(rel, tmp_path / "rel.biom").read_bytes()},
    )
    ft = read_feature_table(rel_qza)
    assert ft.relative and ft.counts.dtype == np.float64
    np.testing.assert_allclose(ft.counts.sum(axis=1).A1, 1.0)


def test_relabund_is_float_and_flagged():
    ft = read_feature_table(FIX / "tiny.relabund")
    assert ft.relative
    assert ft.counts.dtype == np.float64
    np.testing.assert_allclose(ft.counts.toarray()[2], [0.875, 0.125, 0, 0])
    assert read_feature_table(FIX / "tiny.relabund", format="relabund").relative


def test_allow_relative_accepts_fractions_in_a_tsv(tmp_path):
    p = write(tmp_path, "rel.tsv", "#OTU ID\tS1\tS2\nO1\t0.25\t1\nO2\t0.75\t0\n")
    ft = read_feature_table(p, allow_relative=True)
    assert ft.relative
    np.testing.assert_allclose(ft.counts.toarray(), [[0.25, 0.75], [1.0, 0.0]])
    rejects(read_feature_table, p, row=2, column="S1", match=r"non-integer count 0\.25 \(row 'O1'\)")


def test_multi_label_shared():
    path = FIX / "multi_label.shared"
    assert read_shared_labels(path) == ["unique", "0.03", "0.10"]
    default = read_feature_table(path)
    assert default.label == "0.03"
    assert default.feature_ids == ["Otu1", "Otu2", "Otu3", "Otu4"]  # first numOtus names of the header
    assert default.counts.toarray().tolist() == [[10, 0, 3, 2], [0, 5, 4, 2]]
    assert default.source_rows.tolist() == [4, 5]
    unique = read_feature_table(path, label="unique")
    assert unique.feature_ids == ["Otu1", "Otu2", "Otu3", "Otu4", "Otu5"]
    last = read_feature_table(path, label="0.10")
    assert last.feature_ids == ["Otu1", "Otu2"]
    assert last.counts.toarray().tolist() == [[13, 2], [9, 2]]


def test_multi_label_defaults_to_first_label_without_003_and_repeated_headers(tmp_path):
    text = (
        "label\tGroup\tnumOtus\tOtu1\tOtu2\tOtu3\nunique\tA\t3\t1\t2\t3\nunique\tB\t3\t0\t1\t0\n"
        "label\tGroup\tnumOtus\tOtu1\tOtu2\n0.05\tA\t2\t3\t3\n0.05\tB\t2\t0\t1\n"
    )
    p = write(tmp_path, "m.shared", text)
    ft = read_feature_table(p)
    assert ft.label == "unique"
    assert ft.counts.toarray().tolist() == [[1, 2, 3], [0, 1, 0]]
    ft = read_feature_table(p, label="0.05")
    assert ft.feature_ids == ["Otu1", "Otu2"]
    assert ft.source_rows.tolist() == [5, 6]


def test_text_quirks_bom_crlf_no_final_newline_blank_lines(tmp_path):
    text = "\ufefflabel\tGroup\tnumOtus\tOtu1\tOtu2\r\n0.03\tA\t2\t1\t0\r\n\r\n0.03\tB\t2\t0\t7"
    ft = read_feature_table(write(tmp_path, "q.shared", text))
    assert ft.counts.toarray().tolist() == [[1, 0], [0, 7]]
    assert ft.source_rows.tolist() == [2, 4]  # the blank line 3 keeps its number


def test_long_text_fields_widen_the_field_windows(tmp_path):
    # ids and lineages longer than the first 64-byte window are found by widening it
    group = "G" * 300
    text = f"label\tGroup\tnumOtus\tOtu1\n0.03\t{group}\t1\t4\n"
    assert read_feature_table(write(tmp_path, "long.shared", text)).sample_ids == [group]
    lineage = "; ".join(f"x__{'n' * 90}{i}" for i in range(7))
    text = f"#OTU ID\tS1\ttaxonomy\n{'O' * 200}\t5\t{lineage}\n"
    ft = read_feature_table(write(tmp_path, "long.tsv", text))
    assert ft.taxonomy == {"O" * 200: lineage}
    assert ft.counts.toarray().tolist() == [[5]]


@pytest.mark.parametrize("name", ["tiny.shared", "qiime1_otu_table.tsv", "tiny.relabund"])
def test_pandas_fallback_without_pyarrow(monkeypatch, tmp_path, name):
    # pyarrow is optional: the same tables (and the same rejections) through pandas' C parser
    import analysis.readers._text as text

    monkeypatch.setattr(text, "HAVE_PYARROW", False)
    ft = read_feature_table(FIX / name)
    if name == "tiny.relabund":
        assert ft.relative
    else:
        assert_tiny(ft, ft.format)
    p = write(tmp_path, "bad.shared", SHARED_HEAD + "0.03\tA\t3\t1\t2\t3\n0.03\tB\t3\t4\tx\t6\n")
    rejects(read_feature_table, p, row=3, column="Otu2", match="non-numeric count 'x'")


def test_label_only_for_shared():
    rejects(
        read_feature_table,
        FIX / "tiny_sparse.biom",
        row=None,
        column="label",
        match="has no mothur labels",
        label="0.03",
    )


def test_random_table_agrees_across_formats_with_biom_format_as_oracle(tmp_path):
    rng = np.random.default_rng(7)
    n_s, n_f = 60, 400
    counts = rng.integers(1, 200, size=(n_s, n_f)) * (rng.random((n_s, n_f)) < 0.15)
    samples = [f"P{i:03d}" for i in range(n_s)]
    feats = [f"ASV{i:04d}" for i in range(n_f)]
    tax = [["d__Bacteria", f"p__P{i % 7}", f"g__G{i % 31}"] for i in range(n_f)]
    table = biom_table(counts, samples, feats, tax)
    width = len(str(n_f))
    shared = "label\tGroup\tnumOtus\t" + "\t".join(f"Otu{i + 1:0{width}d}" for i in range(n_f)) + "\n"
    rows = ("\t".join(map(str, row)) for row in counts)
    shared += "".join(f"0.03\t{s}\t{n_f}\t{r}\n" for s, r in zip(samples, rows, strict=True))
    paths = {
        "biom-hdf5": write_h5(table, tmp_path / "r.biom"),
        "biom-json": write(tmp_path, "r.json", table.to_json("t")),
        "tsv": write(
            tmp_path,
            "r.tsv",
            table.to_tsv(header_key="taxonomy", header_value="taxonomy", metadata_formatter="; ".join),
        ),
        "shared": write(tmp_path, "r.shared", shared, gz=True),
        "qza": make_qza(
            tmp_path / "r.qza",
            "FeatureTable[Frequency]",
            {"data/feature-table.biom": (tmp_path / "r.biom").read_bytes()},
        ),
    }
    for fmt, path in paths.items():
        ft = read_feature_table(path)
        assert ft.format == fmt
        assert ft.sample_ids == samples
        np.testing.assert_array_equal(ft.counts.toarray(), counts, err_msg=fmt)
        assert ft.counts.has_canonical_format
        if fmt != "shared":
            assert ft.feature_ids == feats
            assert ft.taxonomy["ASV0042"] == "d__Bacteria; p__P0; g__G11"


# ---------------------------------------------------------------------------------------------- rejections


SHARED_HEAD = "label\tGroup\tnumOtus\tOtu1\tOtu2\tOtu3\n"


@pytest.mark.parametrize(
    ("body", "row", "column", "match", "kwargs"),
    [
        ("0.03\tA\t3\t1\t2\t3\n0.03\tB\t3\t4\tx\t6\n", 3, "Otu2", r"non-numeric count 'x' \(row 'B'\)", {}),
        ("0.03\tA\t3\t1\t2\t-3\n", 2, "Otu3", r"negative count -3", {}),
        ("0.03\tA\t3\t1\t2\t3\n0.03\tB\t3\t1\t2\t3\n0.03\tC\t3\t2.5\t0\t1\n", 4, "Otu1", r"non-integer count 2\.5", {}),
        ("0.03\tA\t3\t1\t\t3\n", 2, "Otu2", r"empty count cell", {}),
        ("0.03\tA\t3\t1\t\t-3\n", 2, "Otu2", r"empty count cell", {}),  # the empty cell is named, not a shift
        ("0.03\tA\t3\t1\t2\t3\n0.03\tB\t3\t1\t2\n", 3, "numOtus", r"numOtus is 3 but the row has 2 OTU columns", {}),
        ("0.03\tA\t2\t1\t2\n", 1, "numOtus", r"header names 3 OTU columns but numOtus is 2", {}),
        ("0.03\tA\tthree\t1\t2\t3\n", 2, "numOtus", r"numOtus 'three' is not a whole number", {}),
        ("0.03\tA\t3\t1\t2\t3\n0.03\tA\t3\t1\t2\t3\n", 3, "Group", r"duplicate group 'A'", {}),
        ("0.03\tA\t3\t1\t2\t3\n0.03\tB\n", 3, None, r"ragged row: 2 fields", {}),
        (
            "0.03\tA\t3\t1\t2\t3\n",
            None,
            "label",
            r"label '0\.05' is not in the file.*one of the labels present: 0\.03",
            {"label": "0.05"},
        ),
    ],
)
def test_shared_rejections(tmp_path, body, row, column, match, kwargs):
    p = write(tmp_path, "bad.shared", SHARED_HEAD + body)
    rejects(read_feature_table, p, row=row, column=column, match=match, **kwargs)


def test_shared_rejections_header_level(tmp_path):
    p = write(tmp_path, "dup.shared", "label\tGroup\tnumOtus\tOtu1\tOtu1\n0.03\tA\t2\t1\t2\n")
    rejects(read_feature_table, p, row=1, column="Otu1", match="duplicate OTU column 'Otu1'")
    p = write(tmp_path, "semi.shared", "label;Group;numOtus;Otu1\n0.03;A;1;5\n")
    rejects(read_feature_table, p, row=1, column=None, match="semicolon-separated.*expected tab-separated")
    p = write(tmp_path, "head.shared", SHARED_HEAD)
    rejects(read_feature_table, p, row=1, column=None, match="empty table: a header but no group rows")
    p = write(tmp_path, "labels.shared", (FIX / "multi_label.shared").read_text())
    err = rejects(read_feature_table, p, row=None, column="label", match="label '0.02'", label="0.02")
    assert "unique, 0.03, 0.10" in str(err)
    rejects(read_shared_labels, FIX / "tiny_sparse.biom", row=None, column=None, match="not a mothur .shared")


TSV_HEAD = "#OTU ID\tS1\tS2\n"


@pytest.mark.parametrize(
    ("text", "row", "column", "match"),
    [
        (TSV_HEAD + "O1\t1\t2\nO2\t3\tabc\n", 3, "S2", r"non-numeric count 'abc' \(row 'O2'\)"),
        (TSV_HEAD + "O1\t1\t-2\n", 2, "S2", r"negative count -2"),
        (TSV_HEAD + "O1\t1.5\t2\n", 2, "S1", r"non-integer count 1\.5"),
        (TSV_HEAD + "O1\t1\t2\nO2\t3\t4\t5\n", 3, None, r"ragged row: 4 fields where the header has 3"),
        (TSV_HEAD + "O1\t1\t2\nO1\t3\t4\n", 3, "OTU ID", r"duplicate feature id 'O1'"),
        (TSV_HEAD + "\t1\t2\n", 2, "OTU ID", r"empty feature id"),
        ("#OTU ID\tS1\tS1\nO1\t1\t2\n", 1, "S1", r"duplicate sample column 'S1'"),
        ("#OTU ID,S1,S2\nO1,1,2\n", 1, None, r"comma-separated.*expected tab-separated"),
        ("#OTU ID\nO1\n", 1, None, r"no sample columns"),
        (TSV_HEAD, 1, None, r"empty table: a header but no feature rows"),
        ("", None, None, r"empty file"),
        ("# just a comment\n", 1, None, r"the header has no sample columns"),
    ],
)
def test_tsv_rejections(tmp_path, text, row, column, match):
    rejects(read_feature_table, write(tmp_path, "bad.tsv", text), row=row, column=column, match=match)


def biom_json(**override) -> str:
    doc = json.loads((FIX / "tiny_sparse.biom").read_text())
    doc.update(override)
    return json.dumps(doc, indent=1)


@pytest.mark.parametrize(
    ("override", "column", "match"),
    [
        ({"shape": [5, 3]}, "shape", r"shape \[5, 3\] does not match 4 row ids and 3 column ids"),
        ({"data": [[0, 0, 10], [0, 1, -2]]}, "S2", r"negative value -2\.0 for observation 'Otu1'"),
        ({"data": [[0, 0, 10], [2, 2, 2.5]]}, "S3", r"non-integer value 2\.5 for observation 'Otu3'"),
        ({"data": [[0, 0, 10], [0, 0, 3]]}, "data", r"repeats cell \[0, 0\]"),
        ({"data": [[0, 0, 10], [4, 0, 3]]}, "data", r"outside shape \[4, 3\]"),
        ({"data": [[0, 0, 10], [1, 0, "x"]]}, "data", r"sparse data entry 1 is \[1, 0, 'x'\]"),
        ({"columns": [{"id": "S1"}, {"id": "S1"}, {"id": "S3"}]}, "columns", r"duplicate sample id 'S1'"),
        (
            {"rows": [{"id": "Otu1"}, {"id": "Otu1"}, {"id": "Otu3"}, {"id": "Otu4"}]},
            "rows",
            r"duplicate observation id 'Otu1'",
        ),
        (
            {"matrix_type": "dense", "data": [[1, 0, 0], [0, 1], [0, 0, 1], [1, 1, 1]]},
            "data",
            r"dense data row 1 has 2 values for 3 column ids",
        ),
        ({"matrix_type": "diagonal"}, "matrix_type", r"matrix_type 'diagonal'"),
        ({"matrix_element_type": "unicode"}, "matrix_element_type", r"matrix_element_type 'unicode'"),
    ],
)
def test_biom_json_rejections(tmp_path, override, column, match):
    p = write(tmp_path, "bad.biom", biom_json(**override))
    rejects(read_feature_table, p, row=None, column=column, match=match)


def test_biom_json_structural_rejections(tmp_path):
    doc = json.loads(biom_json())
    del doc["data"]
    p = write(tmp_path, "nodata.biom", json.dumps(doc))
    rejects(read_feature_table, p, row=None, column="data", match="lacks the required key 'data'")
    text = biom_json()
    p = write(tmp_path, "trunc.biom", text[: len(text) // 2])
    err = rejects(read_feature_table, p, row=err_row(text[: len(text) // 2]), column=None, match="invalid JSON")
    assert err.row and err.row > 1  # the line of the parse error in the pretty-printed file


def err_row(text: str) -> int | None:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return exc.lineno
    return None  # pragma: no cover


def test_biom_hdf5_rejections(tmp_path):
    good = write_h5(biom_table(), tmp_path / "good.biom")
    # corrupt: HDF5 signature then garbage, and a truncated real file
    p = write(tmp_path, "garbage.biom", b"\x89HDF\r\n\x1a\n" + b"\x00" * 600)
    rejects(read_feature_table, p, row=None, column=None, match="corrupt or unreadable HDF5")
    p = write(tmp_path, "trunc.biom", good.read_bytes()[:3000])
    rejects(read_feature_table, p, row=None, column=None, match="(corrupt|unreadable) .*HDF5")

    def patched(name: str, edit) -> Path:
        path = tmp_path / name
        path.write_bytes(good.read_bytes())
        with h5py.File(path, "r+") as fh:
            edit(fh)
        return path

    p = patched("shape.biom", lambda fh: fh.attrs.__setitem__("shape", np.array([5, 3])))
    rejects(read_feature_table, p, row=None, column="shape", match=r"shape \[5, 3\] does not match 4 observation")

    def negate(fh):
        for g in ("observation", "sample"):
            d = fh[f"{g}/matrix/data"]
            d[0] = -d[0]

    p = patched("neg.biom", negate)
    rejects(read_feature_table, p, row=None, column="S1", match=r"negative value -10\.0 for observation 'Otu1'")

    def halve(fh):
        for g in ("observation", "sample"):
            d = fh[f"{g}/matrix/data"]
            d[0] = 2.5

    p = patched("frac.biom", halve)
    rejects(read_feature_table, p, row=None, column="S1", match=r"non-integer value 2\.5 for observation 'Otu1'")
    assert read_feature_table(p, allow_relative=True).relative
    p = patched("noids.biom", lambda fh: fh.__delitem__("sample/ids"))
    rejects(read_feature_table, p, row=None, column="sample/ids", match="lacks the dataset 'sample/ids'")

    def dup_ids(fh):
        ids = fh["sample/ids"]
        ids[1] = ids[0]

    p = patched("dup.biom", dup_ids)
    rejects(read_feature_table, p, row=None, column="sample/ids", match="duplicate sample id 'S1'")


def test_qza_rejections(tmp_path):
    payload = write_h5(biom_table(), tmp_path / "payload.biom").read_bytes()
    p = write(tmp_path, "text.qza", "not a zip\n")
    rejects(read_feature_table, p, row=None, column=None, match="not a zip archive")
    p = write(tmp_path, "broken.qza", b"PK\x03\x04" + b"\x00" * 200)
    rejects(read_feature_table, p, row=None, column=None, match="corrupt zip archive")
    good = make_qza(tmp_path / "good.qza", "FeatureTable[Frequency]", {"data/feature-table.biom": payload})
    p = write(tmp_path, "crc.qza", good.read_bytes().replace(payload[1000:1040], bytes(40)))
    rejects(read_feature_table, p, row=None, column=None, match="corrupt zip")
    p = make_qza(tmp_path / "tax.qza", "FeatureData[Taxonomy]", {"data/taxonomy.tsv": b"Feature ID\tTaxon\n"})
    rejects(
        read_feature_table,
        p,
        row=None,
        column="type",
        match=r"artifact type is FeatureData\[Taxonomy\].*FeatureTable\[Frequency\]",
    )
    p = make_qza(tmp_path / "empty.qza", "FeatureTable[Frequency]", {"data/README.txt": b"nothing"})
    rejects(read_feature_table, p, row=None, column="data/feature-table.biom", match="no feature-table payload")
    p = make_qza(tmp_path / "two.qza", "FeatureTable[Frequency]", {"data/feature-table.biom": payload}, roots=2)
    rejects(read_feature_table, p, row=None, column=None, match="2 top-level entries")


def test_compression_and_binary_rejections(tmp_path):
    whole = gzip.compress((FIX / "tiny.shared").read_bytes())
    p = write(tmp_path, "cut.shared.gz", whole[: len(whole) - 12])
    rejects(read_feature_table, p, row=None, column=None, match="corrupt or truncated gzip")
    p = write(tmp_path, "plain.shared.gz", (FIX / "tiny.shared").read_bytes())
    rejects(read_feature_table, p, row=None, column=None, match="ends in .gz but the content is not gzip")
    p = write(tmp_path, "otu_table.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100))
    rejects(read_feature_table, p, row=None, column=None, match="binary Excel workbook")
    p = write(tmp_path, "junk.biom", b"\x00\x01\x02binary")
    rejects(read_feature_table, p, row=None, column=None, match="binary content")
    rejects(read_feature_table, tmp_path / "missing.shared", row=None, column=None, match="file not found")
    rejects(
        read_feature_table, FIX / "tiny.shared", row=None, column=None, match="content is shared, not tsv", format="tsv"
    )
    with pytest.raises(ValueError, match="unknown format"):
        read_feature_table(FIX / "tiny.shared", format="xlsx")


def test_non_utf8_text_names_the_line(tmp_path):
    p = write(tmp_path, "latin.tsv", b"#OTU ID\tS1\nO1\t1\nOtu\xe92\t3\n")
    rejects(read_feature_table, p, row=3, column=None, match="not valid UTF-8")


# ---------------------------------------------------------------------------------------------- taxonomy


def test_mothur_cons_taxonomy_and_qiime2_taxonomy(tmp_path):
    t = read_taxonomy_table(FIX / "tiny.cons.taxonomy")
    assert t["feature_id"].tolist() == OTUS
    assert t["size"].tolist() == [17, 6, 3, 3]
    assert t["source_row"].tolist() == [2, 3, 4, 5]
    assert t["taxonomy"][2].startswith('"Bacteria"(100);"Firmicutes"(100)')  # as delivered
    q = read_taxonomy_table(FIX / "taxonomy.tsv")
    assert q["feature_id"].tolist() == OTUS  # the '#q2:types' directive line is not a feature
    assert q["confidence"].tolist() == [0.99, 0.91, 0.85, 0.7]
    assert q["size"].isna().all()
    assert q["source_row"].tolist() == [3, 4, 5, 6]
    assert read_taxonomy(write(tmp_path, "taxonomy.tsv", (FIX / "taxonomy.tsv").read_bytes(), gz=True)) == dict(
        zip(q["feature_id"], q["taxonomy"], strict=True)
    )
    qza = make_qza(
        tmp_path / "taxonomy.qza", "FeatureData[Taxonomy]", {"data/taxonomy.tsv": (FIX / "taxonomy.tsv").read_bytes()}
    )
    assert read_taxonomy(qza)["Otu4"] == "Unassigned"


def test_taxonomy_rejections(tmp_path):
    p = write(tmp_path, "a.cons.taxonomy", "OTU\tSize\nOtu1\t3\n")
    rejects(read_taxonomy, p, row=1, column=None, match="missing required column: a taxonomy column")
    p = write(tmp_path, "b.cons.taxonomy", "OTU\tSize\tTaxonomy\nOtu1\t3\tBacteria;\nOtu1\t4\tBacteria;\n")
    rejects(read_taxonomy, p, row=3, column="OTU", match="duplicate feature id 'Otu1'")
    p = write(tmp_path, "c.cons.taxonomy", "OTU\tSize\tTaxonomy\nOtu1\t3.5\tBacteria;\n")
    rejects(read_taxonomy, p, row=2, column="Size", match="Size '3.5' is not a count")
    p = write(tmp_path, "d.cons.taxonomy", "OTU\tSize\tTaxonomy\nOtu1\t3\tBacteria;\textra\n")
    rejects(read_taxonomy, p, row=2, column=None, match="ragged row: 4 fields where the header has 3")
    p = write(tmp_path, "taxonomy.tsv", "Feature ID;Taxon\nO1;k__A\n")
    rejects(read_taxonomy, p, row=1, column=None, match="semicolon-separated")
    p = write(tmp_path, "e.tsv", "Feature ID\tTaxon\n")
    rejects(read_taxonomy, p, row=1, column=None, match="empty table")
    p = make_qza(tmp_path / "t.qza", "FeatureTable[Frequency]", {"data/taxonomy.tsv": b"x"})
    rejects(read_taxonomy, p, row=None, column="type", match="artifact type is FeatureTable")


@pytest.mark.parametrize(
    ("lineage", "expected"),
    [
        # mothur classify.otu with confidences and trailing ';'
        (
            "Bacteria(100);Bacteroidota(100);Bacteroidia(100);Bacteroidales(100);Bacteroidaceae(100);Phocaeicola(100);",
            {
                "domain": "Bacteria",
                "phylum": "Bacteroidota",
                "family": "Bacteroidaceae",
                "genus": "Phocaeicola",
                "species": None,
            },
        ),
        (
            "Bacteria(100);Bacillota(100);Clostridia(100);Eubacteriales(100);Lachnospiraceae(100);"
            "Lachnospiraceae_unclassified(100);",
            {"family": "Lachnospiraceae", "genus": None},
        ),
        # RDP-trained names are quoted; probs=F drops the confidences
        (
            '"Bacteria"(100);"Bacteroidetes"(100);"Bacteroidia"(97);',
            {"phylum": "Bacteroidetes", "class": "Bacteroidia"},
        ),
        ("Bacteria;Firmicutes;Clostridia;", {"domain": "Bacteria", "class": "Clostridia", "order": None}),
        ("unknown(100);unknown_unclassified(100);unknown_unclassified(100);", {"domain": None, "phylum": None}),
        ("Bacteria(100);unclassified(100);", {"domain": "Bacteria", "phylum": None}),
        # SILVA 138 / GTDB via QIIME 2
        (
            "d__Bacteria; p__Firmicutes; c__Clostridia; o__Lachnospirales; f__Lachnospiraceae; g__Blautia; "
            "s__Blautia_obeum",
            {"domain": "Bacteria", "order": "Lachnospirales", "species": "Blautia_obeum"},
        ),
        (
            "d__Bacteria; p__Firmicutes; c__Clostridia; o__Oscillospirales; f__Ruminococcaceae; g__uncultured",
            {"family": "Ruminococcaceae", "genus": None, "species": None},
        ),
        (
            "d__Bacteria; p__Firmicutes; c__Bacilli; o__Lactobacillales; f__Streptococcaceae; g__Streptococcus; "
            "s__gut_metagenome",
            {"genus": "Streptococcus", "species": None},
        ),
        # Greengenes / QIIME 1: k__ is the domain, empty ranks are bare prefixes
        (
            "k__Bacteria; p__Firmicutes; c__Clostridia; o__Clostridiales; f__; g__; s__",
            {"domain": "Bacteria", "order": "Clostridiales", "family": None, "genus": None},
        ),
        (
            "k__Bacteria; p__Firmicutes; c__Clostridia; o__Clostridiales; f__[Tissierellaceae]; g__Finegoldia; s__",
            {"family": "[Tissierellaceae]", "genus": "Finegoldia"},
        ),
        # Majorbio: d__ domain, k__ kingdom below it (skipped), norank/unclassified/uncultured fillers
        (
            "d__Bacteria;k__norank_d__Bacteria;p__Firmicutes;c__Clostridia;o__Lachnospirales;f__Lachnospiraceae;"
            "g__norank_f__Lachnospiraceae;s__uncultured_bacterium_g__norank_f__Lachnospiraceae",
            {"domain": "Bacteria", "phylum": "Firmicutes", "family": "Lachnospiraceae", "genus": None, "species": None},
        ),
        (
            "d__Bacteria;k__norank_d__Bacteria;p__Proteobacteria;c__Gammaproteobacteria;o__Enterobacterales;"
            "f__Enterobacteriaceae;g__Escherichia-Shigella;s__unclassified_g__Escherichia-Shigella",
            {"genus": "Escherichia-Shigella", "species": None},
        ),
        # SILVA 132 QIIME release
        (
            "D_0__Bacteria;D_1__Firmicutes;D_2__Clostridia;D_3__Clostridiales;D_4__Ruminococcaceae;"
            "D_5__Faecalibacterium",
            {"family": "Ruminococcaceae", "genus": "Faecalibacterium"},
        ),
        ("Unassigned", dict.fromkeys(RANKS)),
        ("", dict.fromkeys(RANKS)),
        (None, dict.fromkeys(RANKS)),
    ],
)
def test_parse_lineage(lineage, expected):
    parsed = parse_lineage(lineage)
    assert list(parsed) == list(RANKS)
    for rank, name in expected.items():
        assert parsed[rank] == name, (rank, parsed)


def test_lineage_table_keeps_raw_strings():
    tax = read_taxonomy(FIX / "tiny.cons.taxonomy")
    lt = lineage_table(tax)
    assert lt.index.tolist() == OTUS
    assert lt.loc["Otu3", "taxonomy"] == tax["Otu3"]
    assert lt.loc["Otu3", "genus"] == "Faecalibacterium"
    assert lt.loc["Otu4"].drop("taxonomy").isna().all()


# ---------------------------------------------------------------------------------------------- real data


def test_wolfe_guides_real_mothur_outputs(tmp_path):
    ft = read_feature_table(WOLFE / "final.opti_mcc.shared")
    assert ft.shape == (41, 2719)
    assert ft.label == "0.03"
    assert ft.feature_ids[0] == "Otu0001" and ft.feature_ids[-1] == "Otu2719"
    tax = read_taxonomy_table(WOLFE / "final.opti_mcc.0.03.cons.taxonomy")
    assert len(tax) == 2719
    assert set(tax["feature_id"]) <= set(ft.feature_ids)  # every taxonomy OTU is a shared OTU column
    assert set(tax["feature_id"]) == set(ft.feature_ids)
    totals = pd.Series(ft.feature_totals(), index=ft.feature_ids)
    np.testing.assert_array_equal(tax["size"].to_numpy(dtype=np.int64), totals[tax["feature_id"]].to_numpy())
    neg = ft.counts[ft.sample_ids.index("NEG_DNAa")].toarray().ravel()
    assert (neg.sum(), (neg > 0).sum(), (neg == 1).sum(), (neg == 2).sum()) == (9391, 119, 12, 8)
    sizes = pd.Series(ft.sample_totals(), index=ft.sample_ids)
    assert sizes.idxmin() == "NEG_DNAa" and sizes.max() == 69811 and sizes.idxmax() == "5473_2"
    lineages = lineage_table(dict(zip(tax["feature_id"], tax["taxonomy"], strict=True)))
    assert lineages.loc["Otu0001", "genus"] == "Phocaeicola"
    assert lineages.loc["Otu0002", "genus"] == "Faecalibacterium"
    # the same bytes gzipped read identically
    gz = read_feature_table(
        write(tmp_path, "final.opti_mcc.shared", (WOLFE / "final.opti_mcc.shared").read_bytes(), gz=True)
    )
    assert (gz.counts != ft.counts).nnz == 0


# ---------------------------------------------------------------------------------------------- metabolomics


def test_metabolomics_table():
    m = read_metabolomics_table(FIX / "features.csv")
    assert m.injection_ids == ["INJ001", "INJ002", "QC01", "BLK01"]
    assert m.intensities.shape == (4, 4)  # injections x features
    assert m.annotations["name"].tolist()[0] == "Glucose, alpha-D"  # quoted comma kept
    assert m.annotations["mz"].tolist()[0] == "180.0634"  # strings as delivered
    assert m.feature_keys == [("M001", "POS"), ("M002", "POS"), ("M001", "NEG"), ("M003", "NEG")]
    assert m.source_rows.tolist() == [2, 3, 4, 5]
    inj2 = m.intensities[1]
    assert inj2[0] == 1733 and np.isnan(inj2[1]) and np.isnan(inj2[2])  # empty and NA are missing
    assert np.isnan(m.intensities[3, 1])  # ND
    assert m.intensities[3, 2] == 0.0  # zero stays zero
    assert m.annotations["evidence"].tolist()[3] == ""


def test_metabolomics_gzip_and_tab(tmp_path):
    text = (FIX / "features.csv").read_text()
    assert read_metabolomics_table(write(tmp_path, "features.csv", text, gz=True)).intensities.shape == (4, 4)
    tsv = "feature_id\tion_mode\tmz\trt_min\tA\nF1\tPOS\t100.1\t1.0\t5\n"
    assert read_metabolomics_table(write(tmp_path, "features.tsv", tsv)).injection_ids == ["A"]


MTB_HEAD = "feature_id,ion_mode,mz,rt_min,INJ001,INJ002\n"


@pytest.mark.parametrize(
    ("text", "row", "column", "match"),
    [
        (MTB_HEAD + "M1,POS,100.1,1.2,5,6\nM2,POS,101.1,1.3,abc,7\n", 3, "INJ001", r"non-numeric value 'abc'"),
        (MTB_HEAD + "M1,POS,100.1,1.2,5,-6\n", 2, "INJ002", r"negative intensity -6\.0"),
        (MTB_HEAD + "M1,POS,100.1,1.2,5,inf\n", 2, "INJ002", r"non-finite intensity"),
        (
            "feature_id,ion_mode,mz,rt_min,INJ001,INJ001\nM1,POS,100.1,1.2,5,6\n",
            1,
            "INJ001",
            r"duplicate injection column 'INJ001'",
        ),
        (
            MTB_HEAD + "M1,POS,100.1,1.2,5,6\nM1,POS,100.2,1.4,5,6\n",
            3,
            "feature_id",
            r"duplicate feature_id 'M1' within its ion mode",
        ),
        (MTB_HEAD + "M1,ESI+,100.1,1.2,5,6\n", 2, "ion_mode", r"unknown ion mode 'ESI\+'"),
        ("feature_id,ion_mode,mz,INJ001\nM1,POS,100.1,5\n", 1, "rt_min", r"missing required column\(s\): rt_min"),
        ("feature_id,ION_MODE,mz,rt_min,MZ,A\nM1,POS,1,1,1,1\n", 1, "MZ", r"column 'mz' appears 2 times"),
        (
            "feature_id;ion_mode;mz;rt_min;INJ001\nM1;POS;100.1;1.2;5\n",
            1,
            None,
            r"single column that contains semicolons.*semicolon-separated.*expected comma-separated",
        ),
        (MTB_HEAD + "M1,POS,100.1,1.2,5\n", 2, None, r"ragged row: 5 fields where the header has 6"),
        (
            MTB_HEAD + 'M1,POS,100.1,1.2,5,6\nM2,POS,1"01,1.3,5,6\nM3,POS,102.1,1.4,5,6\n',
            3,
            None,
            r"ragged row: 3 fields.*unbalanced quote",
        ),
        (MTB_HEAD + "M1,POS,n/a,1.2,5,6\n", 2, "mz", r"mz 'n/a' is not a valid number"),
        ("feature_id,ion_mode,mz,rt_min\nM1,POS,100.1,1.2\n", 1, None, r"no injection \(intensity\) columns"),
        (MTB_HEAD, 1, None, r"empty feature table: a header but no rows"),
    ],
)
def test_metabolomics_rejections(tmp_path, text, row, column, match):
    rejects(read_metabolomics_table, write(tmp_path, "features.csv", text), row=row, column=column, match=match)


def test_injection_list():
    inj = read_injection_list(FIX / "injections.csv")
    assert inj.columns.tolist()[:6] == [
        "injection_id",
        "sample_type",
        "specimen_barcode",
        "matrix",
        "run_order",
        "batch",
    ]
    assert inj["run_order"].tolist() == [1, 2, 3, 4]
    assert str(inj["run_order"].dtype) == "Int64"
    assert inj["sample_type"].tolist()[3] == "sample"  # as delivered; validated case-insensitively
    assert inj["source_row"].tolist() == [2, 3, 4, 5]


INJ_HEAD = "injection_id,sample_type,specimen_barcode,matrix,run_order\n"


@pytest.mark.parametrize(
    ("text", "row", "column", "match"),
    [
        (
            "injection_id,sample_type,specimen_barcode,matrix\nA,QC,,FAECES\n",
            1,
            "run_order",
            r"missing required column\(s\): run_order",
        ),
        (INJ_HEAD + "A,QC,,FAECES,1\nB,POOL,,FAECES,2\n", 3, "sample_type", r"unknown sample_type 'POOL'"),
        (INJ_HEAD + "A,QC,,FAECES,1\nB,QC,,FAECES,2.5\n", 3, "run_order", r"run_order '2\.5' is not a whole number"),
        (INJ_HEAD + "A,QC,,FAECES,first\n", 2, "run_order", r"run_order 'first' is not a whole number"),
        (INJ_HEAD + "A,QC,,FAECES,1\nA,QC,,FAECES,2\n", 3, "injection_id", r"duplicate injection_id 'A'"),
        (INJ_HEAD + "A,SAMPLE,FC-1,URINE,1\n", 2, "matrix", r"unknown matrix 'URINE'"),
        (INJ_HEAD + "A,SAMPLE,,FAECES,1\n", 2, "specimen_barcode", r"SAMPLE injection has no specimen_barcode"),
    ],
)
def test_injection_list_rejections(tmp_path, text, row, column, match):
    rejects(read_injection_list, write(tmp_path, "injections.csv", text), row=row, column=column, match=match)


def test_seq_manifest():
    man = read_seq_manifest(FIX / "manifest.csv")
    assert man.columns.tolist() == ["sample_id", "specimen_barcode", "sample_role", "run_id", "notes", "source_row"]
    assert man["notes"].tolist()[1] == "resequenced, low yield"
    assert man["specimen_barcode"].tolist()[2] == ""


MAN_HEAD = "sample_id,specimen_barcode,sample_role\n"


@pytest.mark.parametrize(
    ("text", "row", "column", "match"),
    [
        ("sample_id,sample_role\nS1,SAMPLE\n", 1, "specimen_barcode", r"missing required column"),
        (MAN_HEAD + "S1,FC-1,SAMPLE\nS1,FC-2,SAMPLE\n", 3, "sample_id", r"duplicate sample_id 'S1'"),
        (MAN_HEAD + "S1,FC-1,BLANK\n", 2, "sample_role", r"unknown sample_role 'BLANK'"),
        (MAN_HEAD + "S1,,SAMPLE\n", 2, "specimen_barcode", r"a SAMPLE row has no specimen_barcode"),
        (MAN_HEAD + 'S1,FC-1,SAMPLE\nS2,"FC-2\n', 3, None, r"ragged row|cannot parse"),
    ],
)
def test_seq_manifest_rejections(tmp_path, text, row, column, match):
    rejects(read_seq_manifest, write(tmp_path, "manifest.csv", text), row=row, column=column, match=match)
