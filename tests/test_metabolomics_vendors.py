"""Vendor readers on tiny hand-made exports in each vendor's layout (tests/fixtures/metabolomics/)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.errors import ContractViolation
from analysis.metabolomics.table import MetaboliteTable, attach_injections, stack_ion_modes
from analysis.metabolomics.vendors import (
    detect_vendor,
    read_msdial,
    read_mwtab,
    read_progenesis,
    read_vendor_export,
    read_xcms,
)

FIXTURES = Path(__file__).parent / "fixtures" / "metabolomics"
MSDIAL = FIXTURES / "msdial_pos.txt"
PROGENESIS = FIXTURES / "progenesis_neg.csv"
XCMS3 = FIXTURES / "xcms3_pos.csv"
XCMS_LEGACY = FIXTURES / "xcms_peaktable_pos.tsv"
MWTAB = FIXTURES / "mwtab_serum_neg.txt"
NAN = np.nan


def rewrite(src: Path, dst: Path, old: str, new: str, *, count: int = 1) -> Path:
    text = src.read_text()
    assert old in text, old
    dst.write_text(text.replace(old, new, count))
    return dst


def violation(call, *args, **kwargs) -> ContractViolation:
    with pytest.raises(ContractViolation) as info:
        call(*args, **kwargs)
    return info.value


# ---------------------------------------------------------------------------------------------- MS-DIAL


def test_msdial_layout() -> None:
    t = read_msdial(MSDIAL)
    assert t.vendor == "msdial"
    assert t.injection_ids == [
        "Blank_01",
        "QC_01",
        "S01",
        "S02",
        "QC_02",
        "S03",
        "S04",
        "QC_03",
    ]  # Average/Stdev dropped
    assert t.features["feature_id"].tolist() == ["0", "1", "2"]
    assert (t.features["ion_mode"] == "POS").all()  # every adduct ends in '+'
    np.testing.assert_allclose(t.features["rt_min"], [1.234, 5.5, 7.25])  # minutes, as exported
    np.testing.assert_allclose(t.features["mz"], [147.0764, 181.0707, 304.3])
    np.testing.assert_array_equal(
        t.intensities,
        [
            [10, 1000, 900, 1100, 1050, 950, 1200, 1000],
            [0, 200, NAN, 250, 210, 0, 180, 190],  # zeros kept, empty cell missing
            [5, 50, 40, 60, 55, 45, NAN, 52],  # 'NA' missing
        ],
    )
    assert t.features["source_row"].tolist() == [6, 7, 8]
    assert t.features["name"].tolist()[0] == "L-Glutamic acid"
    assert pd.isna(t.features["name"].iloc[1])  # "Unknown" is no name
    assert t.features["formula"].tolist()[0] == "C5H9NO4"
    assert pd.isna(t.features["formula"].iloc[1])  # MS-DIAL's "null"
    assert t.features["compound_class"].tolist()[2] == "Fatty acyls"
    assert t.features["evidence"].tolist()[0] == "MS/MS matched"
    inj = t.injections
    assert inj["run_order"].tolist() == list(range(1, 9))
    assert inj["class_label"].tolist()[:3] == ["Blank", "QC", "Ctrl"]
    assert inj["sample_type"].tolist() == ["BLANK", "QC", "SAMPLE", "SAMPLE", "QC", "SAMPLE", "SAMPLE", "QC"]
    assert inj["batch"].tolist() == ["1"] * 8
    assert inj["source_column"].tolist() == list(range(12, 20))
    assert "Adduct type" in t.vendor_columns.columns and "INCHIKEY" in t.vendor_columns.columns
    assert t.feature_keys.tolist() == ["POS:0", "POS:1", "POS:2"]
    assert t.matrix().shape == (8, 3)


def test_msdial_explicit_ion_mode_and_gzip(tmp_path: Path) -> None:
    gz = tmp_path / "msdial_pos.txt.gz"
    gz.write_bytes(gzip.compress(MSDIAL.read_bytes(), mtime=0))
    t = read_msdial(gz, ion_mode="positive")
    assert (t.features["ion_mode"] == "POS").all()
    assert t.n_injections == 8


def test_msdial_mixed_adducts_need_ion_mode(tmp_path: Path) -> None:
    bad = rewrite(MSDIAL, tmp_path / "m.txt", "[M+Na]+", "[M-H]-")
    err = violation(read_msdial, bad)
    assert "ion mode" in err.problem
    assert (read_msdial(bad, ion_mode="NEG").features["ion_mode"] == "NEG").all()


def test_msdial_not_msdial(tmp_path: Path) -> None:
    bad = tmp_path / "x.txt"
    bad.write_text("a\tb\n1\t2\n3\t4\n5\t6\n7\t8\n")
    err = violation(read_msdial, bad)
    assert err.row == 1 and "Class" in err.problem


def test_msdial_duplicate_sample_column(tmp_path: Path) -> None:
    bad = rewrite(MSDIAL, tmp_path / "m.txt", "\tS02\t", "\tS01\t")
    err = violation(read_msdial, bad)
    assert "duplicate" in err.problem and err.column == "S01" and err.row == 5


def test_msdial_non_numeric_intensity_names_row_and_column(tmp_path: Path) -> None:
    lines = MSDIAL.read_text().splitlines()
    cells = lines[6].split("\t")
    cells[14] = "n.d.x"  # feature "1", injection S02 (0-based column 14 -> 1-based 15)
    lines[6] = "\t".join(cells)
    bad = tmp_path / "m.txt"
    bad.write_text("\n".join(lines) + "\n")
    err = violation(read_msdial, bad)
    assert err.row == 7 and err.column == "S02"
    assert "non-numeric" in err.problem and "n.d.x" in err.problem


def test_msdial_negative_intensity(tmp_path: Path) -> None:
    lines = MSDIAL.read_text().splitlines()
    cells = lines[7].split("\t")
    cells[17] = "-4"  # feature "2", injection S04
    lines[7] = "\t".join(cells)
    bad = tmp_path / "m.txt"
    bad.write_text("\n".join(lines) + "\n")
    err = violation(read_msdial, bad)
    assert (err.row, err.column) == (8, "S04") and "negative" in err.problem


def test_msdial_unknown_injection() -> None:
    listed = pd.DataFrame(
        {
            "injection_id": ["Blank_01", "QC_01", "S01", "S02", "QC_02", "S03", "QC_03"],
            "sample_type": ["BLANK", "QC", "SAMPLE", "SAMPLE", "QC", "SAMPLE", "QC"],
        }
    )
    err = violation(read_msdial, MSDIAL, injections=listed)
    assert "unknown injection" in err.problem and err.column == "S04"
    assert str(MSDIAL) in str(err)


def test_msdial_injection_list_overrides_vendor_metadata() -> None:
    listed = pd.DataFrame(
        {
            "injection_id": ["Blank_01", "QC_01", "S01", "S02", "QC_02", "S03", "S04", "QC_03", "extra_NEG_01"],
            "sample_type": ["blank", "QC", "SAMPLE", "SAMPLE", "QC", "SAMPLE", "SAMPLE", "QC", "SAMPLE"],
            "specimen_barcode": ["", "", "B1", "B2", "", "B3", "B4", "", "B9"],
            "run_order": [11, 12, 13, 14, 15, 16, 17, 18, 19],
        }
    )
    t = read_msdial(MSDIAL, injections=listed)  # an injection of the other ion mode may be listed
    assert t.injections["run_order"].tolist() == list(range(11, 19))
    assert t.injections["specimen_barcode"].tolist()[2] == "B1"
    assert t.injections["sample_type"].tolist()[0] == "BLANK"
    assert t.injections["class_label"].tolist()[2] == "Ctrl"  # vendor metadata kept where the list is silent
    with pytest.raises(ContractViolation, match="not in the file"):
        attach_injections(read_msdial(MSDIAL), listed, require_all=True)


def test_msdial_duplicate_feature_id(tmp_path: Path) -> None:
    text = MSDIAL.read_text().replace("\n1\t5.5\t", "\n0\t5.5\t")
    bad = tmp_path / "m.txt"
    bad.write_text(text)
    err = violation(read_msdial, bad)
    assert "duplicate feature" in err.problem and err.row == 7


def test_msdial_extra_field_in_row(tmp_path: Path) -> None:
    lines = MSDIAL.read_text().splitlines()
    lines[6] += "\textra"
    bad = tmp_path / "m.txt"
    bad.write_text("\n".join(lines) + "\n")
    err = violation(read_msdial, bad)
    assert err.row == 7


# ---------------------------------------------------------------------------------------------- Progenesis


def test_progenesis_raw_block() -> None:
    t = read_progenesis(PROGENESIS, ion_mode="NEG")
    assert t.injection_ids == ["S1", "S2", "S3", "QC1", "QC2"]
    np.testing.assert_array_equal(
        t.intensities, [[100, 200, 300, 150, 160], [40, NAN, 60, 50, 55], [10, 11, 12, 13, 14]]
    )
    assert t.injections["source_column"].tolist() == [12, 13, 14, 15, 16]
    assert t.injections["class_label"].tolist() == ["Ctrl", "Ctrl", "Case", "QC", "QC"]  # spans filled
    assert t.injections["sample_type"].tolist() == ["SAMPLE", "SAMPLE", "SAMPLE", "QC", "QC"]
    f = t.features
    assert f["feature_id"].tolist() == ["1.23_147.0764m/z", "5.50_181.0707m/z", "7.25_303.2319n"]
    assert f["hmdb_id"].tolist()[0] == "HMDB00148" and pd.isna(f["kegg_id"].iloc[0])
    assert f["kegg_id"].tolist()[1] == "C00031" and pd.isna(f["hmdb_id"].iloc[1])
    assert f["name"].tolist()[:2] == ["L-Glutamic acid", "D-Glucose"]
    assert f["evidence"].tolist()[0] == "Score=52.1; Fragmentation Score=80.3"
    assert pd.isna(f["evidence"].iloc[2])
    np.testing.assert_allclose(f["rt_min"], [1.23, 5.50, 7.25])
    assert f["source_row"].tolist() == [4, 5, 6]
    assert (f["ion_mode"] == "NEG").all()


def test_progenesis_normalised_block() -> None:
    t = read_progenesis(PROGENESIS, ion_mode="neg", abundance="normalised")
    np.testing.assert_allclose(t.intensities[0], [1.5, 2.5, 3.5, 2.1, 2.2])
    assert t.injections["source_column"].tolist() == [7, 8, 9, 10, 11]


def test_progenesis_requires_ion_mode_value() -> None:
    err = violation(read_progenesis, PROGENESIS, ion_mode="sideways")
    assert "ion mode" in err.problem


def test_progenesis_duplicate_and_mismatched_blocks(tmp_path: Path) -> None:
    lines = PROGENESIS.read_text().splitlines()
    lines[2] = lines[2].replace("S1,S2,S3,QC1,QC2,S1,S2,S3", "S1,S1,S3,QC1,QC2,S1,S1,S3")
    bad = tmp_path / "p.csv"
    bad.write_text("\n".join(lines) + "\n")
    err = violation(read_progenesis, bad, ion_mode="NEG")
    assert "duplicate" in err.problem and err.column == "S1" and err.row == 3
    lines = PROGENESIS.read_text().splitlines()
    lines[2] = lines[2].replace("QC2,S1,S2", "QC2,S1,S9")
    bad.write_text("\n".join(lines) + "\n")
    err = violation(read_progenesis, bad, ion_mode="NEG")
    assert "same samples" in err.problem


def test_progenesis_non_numeric(tmp_path: Path) -> None:
    bad = rewrite(PROGENESIS, tmp_path / "p.csv", "40,,60,50,55", "40,,60,abc,55")
    err = violation(read_progenesis, bad, ion_mode="NEG")
    assert (err.row, err.column) == (5, "QC1") and "abc" in err.problem


def test_progenesis_missing_block(tmp_path: Path) -> None:
    bad = rewrite(PROGENESIS, tmp_path / "p.csv", "Raw abundance", "Something else")
    err = violation(read_progenesis, bad, ion_mode="NEG")
    assert err.row == 1 and "raw abundance" in err.problem


# ---------------------------------------------------------------------------------------------- XCMS


def test_xcms3_feature_table_seconds_to_minutes() -> None:
    t = read_xcms(XCMS3, ion_mode="POS")
    assert t.injection_ids == ["ko15.CDF", "ko16.CDF", "wt15.CDF", "wt16.CDF"]  # class counts KO/WT are not injections
    assert t.features["feature_id"].tolist() == ["FT01", "FT02", "FT03"]
    np.testing.assert_allclose(t.features["rt_min"], [2506.8 / 60, 2787.6 / 60, 1.0])
    np.testing.assert_allclose(t.features["mz"], [200.1, 205, 300.2])
    np.testing.assert_array_equal(t.intensities, [[1000.5, 1100, 900, NAN], [500, NAN, 600, 650], [10, 20, 30, 40]])
    assert {"KO", "WT", "npeaks", "rtmin"} <= set(t.vendor_columns.columns)
    assert t.features["source_row"].tolist() == [2, 3, 4]


def test_xcms_legacy_peaktable_with_camera() -> None:
    with pytest.raises(ContractViolation, match="class-count"):
        read_xcms(XCMS_LEGACY, ion_mode="POS")  # sample names without raw-file suffix: refuse to guess
    t = read_xcms(XCMS_LEGACY, ion_mode="POS", sample_columns=["ko15", "ko16", "wt15", "wt16"])
    assert t.features["feature_id"].tolist() == ["M200T2507", "M205T2788"]
    np.testing.assert_allclose(t.features["rt_min"], [2506.8 / 60, 2787.6 / 60])
    assert {"isotopes", "adduct", "pcgroup"} <= set(t.vendor_columns.columns)
    listed = pd.DataFrame({"injection_id": ["ko15", "ko16", "wt15", "wt16"]})
    t2 = read_xcms(XCMS_LEGACY, ion_mode="POS", injections=listed)
    np.testing.assert_array_equal(t.intensities, t2.intensities)


def test_xcms_unknown_injection_with_list() -> None:
    listed = pd.DataFrame({"injection_id": ["ko15.CDF", "ko16.CDF", "wt16.CDF"]})
    err = violation(read_xcms, XCMS3, ion_mode="POS", injections=listed)
    assert "unknown injection" in err.problem and err.column == "wt15.CDF"


def test_xcms_write_table_header_one_short(tmp_path: Path) -> None:
    text = XCMS3.read_text().splitlines()
    text[0] = text[0].removeprefix('"",')
    path = tmp_path / "ft.csv"
    path.write_text("\n".join(text) + "\n")
    t = read_xcms(path, ion_mode="POS")
    assert t.features["feature_id"].tolist() == ["FT01", "FT02", "FT03"]


def test_xcms_bad_values(tmp_path: Path) -> None:
    bad = rewrite(XCMS3, tmp_path / "a.csv", "600,650", "600,-650")
    err = violation(read_xcms, bad, ion_mode="POS")
    assert (err.row, err.column) == (3, "wt16.CDF") and "negative" in err.problem
    bad = rewrite(XCMS3, tmp_path / "b.csv", "10,20,30,40", "10,20,Inf,40")
    err = violation(read_xcms, bad, ion_mode="POS")
    assert (err.row, err.column) == (4, "wt15.CDF")
    bad = rewrite(XCMS3, tmp_path / "c.csv", '"wt15.CDF","wt16.CDF"', '"wt15.CDF","wt15.CDF"')
    err = violation(read_xcms, bad, ion_mode="POS")
    assert "duplicate" in err.problem and err.column == "wt15.CDF"


# ---------------------------------------------------------------------------------------------- mwTab


def test_mwtab() -> None:
    t = read_mwtab(MWTAB)
    assert (t.features["ion_mode"] == "NEG").all()  # MS:ION_MODE NEGATIVE
    assert t.injection_ids == ["SER_001", "SER_002", "QC_01"]
    assert t.features["feature_id"].tolist() == ["Citric acid", "Hippuric acid", "Unknown 301.1"]
    np.testing.assert_array_equal(t.intensities, [[12000, 15000.5, 13000], [800, NAN, 810], [55, 60, NAN]])
    assert t.features["source_row"].tolist() == [22, 23, 24]
    assert t.features["kegg_id"].tolist()[:2] == ["C00158", "C01586; D07145"]  # raw: annotation.py validates
    assert t.features["hmdb_id"].tolist()[:2] == ["HMDB00094", "HMDB0000714"]
    np.testing.assert_allclose(t.features["mz"], [191.0197, 178.0510, 301.1])
    np.testing.assert_allclose(t.features["rt_min"], [2.1, 4.3, 6.0])
    inj = t.injections
    assert inj["subject"].tolist() == ["P01", "P02", "-"]
    assert inj["class_label"].tolist() == ["Control | V1", "Case | V1", "QC"]
    assert inj["raw_file"].tolist() == ["ser_001.mzML", "ser_002.mzML", "qc_01.mzML"]
    assert inj["sample_type"].tolist() == ["SAMPLE", "SAMPLE", "QC"]
    assert "metabolites:pubchem_id" in t.vendor_columns.columns


def test_mwtab_bad(tmp_path: Path) -> None:
    bad = rewrite(MWTAB, tmp_path / "a.txt", "Hippuric acid\t800", "Hippuric acid\tlots")
    err = violation(read_mwtab, bad)
    assert (err.row, err.column) == (23, "SER_001")
    bad = rewrite(MWTAB, tmp_path / "b.txt", "Samples\tSER_001\tSER_002", "Samples\tSER_001\tSER_001")
    err = violation(read_mwtab, bad)
    assert "duplicate" in err.problem and err.row == 20
    bad = rewrite(MWTAB, tmp_path / "c.txt", "#METABOLOMICS WORKBENCH", "#SOMETHING")
    assert violation(read_mwtab, bad).row == 1
    err = violation(read_mwtab, MWTAB, injections=pd.DataFrame({"injection_id": ["SER_001", "QC_01"]}))
    assert err.column == "SER_002"
    err = violation(read_mwtab, MWTAB, ion_mode="POS")
    assert err.row == 16 and "NEG" in err.problem
    assert (read_mwtab(MWTAB, ion_mode="negative").features["ion_mode"] == "NEG").all()


# ---------------------------------------------------------------------------------------------- dispatch and table


@pytest.mark.parametrize(
    ("path", "vendor"),
    [(MSDIAL, "msdial"), (PROGENESIS, "progenesis"), (XCMS3, "xcms"), (XCMS_LEGACY, "xcms"), (MWTAB, "mwtab")],
)
def test_detect_vendor(path: Path, vendor: str) -> None:
    assert detect_vendor(path) == vendor


def test_read_vendor_export_dispatch() -> None:
    assert read_vendor_export(MSDIAL).vendor == "msdial"
    assert read_vendor_export(PROGENESIS, ion_mode="NEG").vendor == "progenesis"


def test_stack_ion_modes_keeps_mode_in_key(tmp_path: Path) -> None:
    pos = read_msdial(MSDIAL)
    neg = read_msdial(MSDIAL, ion_mode="NEG")  # same Alignment IDs, other ion mode
    both = stack_ion_modes([pos, neg])
    assert both.feature_keys.tolist() == ["POS:0", "POS:1", "POS:2", "NEG:0", "NEG:1", "NEG:2"]
    assert both.intensities.shape == (6, 8)
    with pytest.raises(ContractViolation, match="duplicate feature"):
        stack_ion_modes([pos, pos])


def test_wide_and_long_round_trip() -> None:
    t = read_msdial(MSDIAL)
    wide = t.to_wide()
    assert list(wide.columns[:4]) == ["feature_id", "ion_mode", "mz", "rt_min"]
    back = MetaboliteTable.from_wide(wide, source="wide")
    np.testing.assert_array_equal(back.intensities, t.intensities)
    assert back.injection_ids == t.injection_ids
    long = t.to_long()
    assert len(long) == int(np.isfinite(t.intensities).sum())
    again = MetaboliteTable.from_long(long, t.features)
    np.testing.assert_array_equal(again.intensities, t.intensities)


def test_from_generic_reader_shape() -> None:
    """Adapter for analysis.readers.read_metabolomics_table (injections x features, text annotations)."""

    class Generic:  # the shape of analysis.readers.metabolomics.MetaboliteTable
        annotations = pd.DataFrame(
            {
                "feature_id": ["a", "b"],
                "ion_mode": ["pos", "NEG"],
                "mz": ["100.1", "200.2"],
                "rt_min": ["1", "2"],
                "kegg_id": ["C00031", None],
                "source_row": [2, 3],
            }
        )
        injection_ids = ("i1", "i2", "i3")
        intensities = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 6.0]])
        source_rows = np.array([2, 3])
        source = "features.csv"

    t = MetaboliteTable.from_generic(
        Generic(),
        injections=pd.DataFrame({"injection_id": ["i1", "i2", "i3"], "sample_type": ["SAMPLE", "QC", "sample"]}),
    )
    assert t.feature_keys.tolist() == ["POS:a", "NEG:b"]
    np.testing.assert_array_equal(t.intensities, [[1, 3, 5], [2, NAN, 6]])
    np.testing.assert_allclose(t.features["mz"], [100.1, 200.2])
    assert t.sample_types().tolist() == ["SAMPLE", "QC", "SAMPLE"]
