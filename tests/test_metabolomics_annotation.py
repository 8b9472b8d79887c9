"""KEGG/HMDB identifier validation, normalisation and splitting; unannotated features kept."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.metabolomics.annotation import annotate, normalise_hmdb, normalise_kegg, split_ids
from analysis.metabolomics.vendors import read_mwtab


@pytest.mark.parametrize(
    ("raw", "expected", "reason"),
    [
        ("C00031", "C00031", None),
        (" c00031 ", "C00031", None),
        ("cpd:C00158", "C00158", None),
        ("C1234", None, "not a KEGG COMPOUND ID (C + 5 digits)"),
        ("C000311", None, "not a KEGG COMPOUND ID (C + 5 digits)"),
        ("D07145", None, "KEGG DRUG ID, not a KEGG COMPOUND ID"),
        ("G00001", None, "KEGG GLYCAN ID, not a KEGG COMPOUND ID"),
        ("HMDB0000122", None, "not a KEGG COMPOUND ID (C + 5 digits)"),
    ],
)
def test_kegg(raw: str, expected: str | None, reason: str | None) -> None:
    ids, reasons = normalise_kegg(pd.Series([raw]))
    assert (None if pd.isna(ids[0]) else ids[0]) == expected
    assert (None if pd.isna(reasons[0]) else reasons[0]) == reason


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HMDB01234", "HMDB0001234"),
        ("HMDB00001", "HMDB0000001"),
        ("HMDB0001234", "HMDB0001234"),
        ("hmdb0000714", "HMDB0000714"),
        ("HMDB1", "HMDB0000001"),
        ("HMDB12345678", None),
        ("1234", None),
        ("HMDB", None),
    ],
)
def test_hmdb(raw: str, expected: str | None) -> None:
    ids, reasons = normalise_hmdb(pd.Series([raw]))
    assert (None if pd.isna(ids[0]) else ids[0]) == expected
    assert pd.isna(reasons[0]) == (expected is not None)


def test_split_ids_on_all_separators() -> None:
    parts = split_ids(pd.Series(["C00031; C00158", "C00001,C00002|C00003 / C00004", None, "", "C00005"]))
    assert parts["row"].tolist() == [0, 0, 1, 1, 1, 1, 4]
    assert parts["ordinal"].tolist() == [0, 1, 0, 1, 2, 3, 0]
    assert parts["raw"].tolist() == ["C00031", "C00158", "C00001", "C00002", "C00003", "C00004", "C00005"]


def test_annotate_reports_invalid_and_keeps_unannotated() -> None:
    features = pd.DataFrame(
        {
            "ion_mode": ["POS", "POS", "NEG", "NEG"],
            "feature_id": ["1", "2", "1", "3"],
            "name": ["Glucose", None, "Citrate", None],
            "kegg_id": ["C00031|C00031", "C1234; D07145", "cpd:C00158", None],
            "hmdb_id": ["HMDB00122", None, "HMDB0000094, HMDB94", None],
            "evidence": ["MSI 1", None, "Score=52", None],
            "source_row": [2, 3, 4, 5],
        }
    )
    a = annotate(features)
    f = a.features
    assert len(f) == 4  # every feature kept
    assert f["kegg_ids"].tolist()[0] == "C00031"  # repeated ID once
    assert f["hmdb_ids"].tolist()[0] == "HMDB0000122"
    assert f["kegg_ids"].tolist()[2] == "C00158"
    assert f["hmdb_ids"].tolist()[2] == "HMDB0000094"  # both spellings are the same ID
    assert f["annotated"].tolist() == [True, False, True, False]
    assert f["n_invalid_ids"].tolist() == [0, 2, 0, 0]
    assert f["evidence"].tolist()[0] == "MSI 1"  # carried as exported
    assert a.invalid[["feature_id", "raw"]].values.tolist() == [["2", "C1234"], ["2", "D07145"]]
    assert a.invalid["source_row"].tolist() == [3, 3]
    assert set(a.ids["id_type"]) == {"KEGG", "HMDB"}
    assert {"ion_mode", "feature_id", "id"} <= set(a.ids.columns)
    # ion mode is part of the key: POS:1 and NEG:1 keep their own IDs
    assert a.ids.loc[a.ids["id"] == "C00158", "ion_mode"].tolist() == ["NEG"]


def test_annotate_vendor_table() -> None:
    t = read_mwtab("tests/fixtures/metabolomics/mwtab_serum_neg.txt")
    a = annotate(t.features)
    assert a.features["kegg_ids"].tolist()[:2] == ["C00158", "C01586"]
    assert a.invalid["raw"].tolist() == ["D07145"]
    assert a.features["hmdb_ids"].tolist()[:2] == ["HMDB0000094", "HMDB0000714"]
    assert a.features["annotated"].all()  # the unknown has a name (as exported)
