"""Vendor metabolomics exports (MS-DIAL, Progenesis QI, XCMS, mwTab) in a landing batch load into the same raw
tables as the generic wide table: features with ion mode, long intensities, injections from the export."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest

from analysis.ingest import load_family
from analysis.ingest.mtb_vendors import ion_mode_from_name
from analysis.metabolomics.vendors import read_vendor_export

FIXTURES = Path(__file__).parent / "fixtures" / "metabolomics"


def make_landing(tmp_path: Path, files: dict[str, Path | str], batch: str = "MTBX01") -> Path:
    """A landing folder with one metabolomics batch; values are fixture paths or file contents."""
    folder = tmp_path / "landing" / "metabolomics" / batch
    folder.mkdir(parents=True)
    for name, source in files.items():
        if isinstance(source, Path):
            shutil.copy(source, folder / name)
        else:
            (folder / name).write_text(source)
    return tmp_path / "landing"


def load(landing: Path) -> tuple[duckdb.DuckDBPyConnection, object]:
    con = duckdb.connect()
    return con, load_family(con, landing, "metabolomics", load_id="L1")


CASES = [
    # fixture, name in the landing folder, vendor, ion mode, reader options for the expected table
    ("msdial_pos.txt", "msdial_pos.txt", "msdial", "POS", {}),
    ("progenesis_neg.csv", "progenesis_neg.csv", "progenesis", "NEG", {"ion_mode": "NEG"}),
    ("xcms3_pos.csv", "xcms3_pos.csv", "xcms", "POS", {"ion_mode": "POS"}),
    ("mwtab_serum_neg.txt", "mwtab_serum_neg.txt", "mwtab", "NEG", {}),
]


@pytest.mark.parametrize(("fixture", "name", "vendor", "mode", "options"), CASES)
def test_vendor_export_loads_like_the_generic_table(
    tmp_path: Path, fixture: str, name: str, vendor: str, mode: str, options: dict
) -> None:
    con, report = load(make_landing(tmp_path, {name: FIXTURES / fixture}))
    assert report.rejected == []
    expected = read_vendor_export(FIXTURES / fixture, vendor, **options)
    rel = f"metabolomics/MTBX01/{name}"
    assert con.execute("select format from raw.load_manifest where path = ?", [rel]).fetchone() == (vendor,)

    features = con.execute("select * from raw.mtb_features order by _row_number").df()
    assert len(features) == expected.n_features  # unannotated features kept
    assert set(features["ion_mode"]) == {mode}
    assert features["feature_id"].tolist() == expected.features["feature_id"].tolist()
    assert features["_row_number"].tolist() == expected.features["source_row"].tolist()
    np.testing.assert_allclose(features["mz"].astype(float), expected.features["mz"], rtol=1e-15)
    np.testing.assert_allclose(features["rt_min"].astype(float), expected.features["rt_min"], rtol=1e-15)
    assert features["vendor_annotation"].notna().all()  # the export's other annotation columns, as JSON

    long = con.execute("select feature_id, ion_mode, injection_id, intensity from raw.mtb_intensities").df()
    observed = ~np.isnan(expected.intensities)
    assert len(long) == observed.sum()
    assert set(long["injection_id"]) == set(np.asarray(expected.injection_ids)[observed.any(axis=0)])
    wide = long.pivot(index="feature_id", columns="injection_id", values="intensity")
    wide = wide.reindex(index=expected.features["feature_id"], columns=expected.injection_ids)
    np.testing.assert_array_equal(wide.to_numpy(), expected.intensities)
    assert (long["ion_mode"] == mode).all()
    assert report.current_rows["mtb_intensities"] == observed.sum()


def test_msdial_injection_metadata_and_summary_columns(tmp_path: Path) -> None:
    con, report = load(make_landing(tmp_path, {"msdial_pos.txt": FIXTURES / "msdial_pos.txt"}))
    assert report.rejected == []
    inj = con.execute("select * from raw.mtb_injections order by cast(run_order as int)").df()
    assert inj["injection_id"].tolist() == ["Blank_01", "QC_01", "S01", "S02", "QC_02", "S03", "S04", "QC_03"]
    assert inj["sample_type"].tolist() == ["BLANK", "QC", "SAMPLE", "SAMPLE", "QC", "SAMPLE", "SAMPLE", "QC"]
    assert inj["run_order"].tolist() == [str(i) for i in range(1, 9)]
    assert set(inj["batch"]) == {"1"} and set(inj["batch_id"]) == {"MTBX01"}
    assert inj["class_label"].tolist()[:4] == ["Blank", "QC", "Ctrl", "Case"]
    assert inj["specimen_barcode"].isna().all() and inj["matrix"].isna().all()  # an export does not state them
    assert (inj["_row_number"] == 5).all()  # the header line naming the injections
    # per-class Average/Stdev columns are not injections
    names = {r[0] for r in con.execute("select distinct injection_id from raw.mtb_intensities").fetchall()}
    assert not names & {"Blank", "Case", "Ctrl", "QC"}


def test_progenesis_reads_the_raw_abundance_block(tmp_path: Path) -> None:
    con, _ = load(make_landing(tmp_path, {"progenesis_neg.csv": FIXTURES / "progenesis_neg.csv"}))
    value = con.execute(
        "select intensity from raw.mtb_intensities where feature_id = '1.23_147.0764m/z' and injection_id = 'S1'"
    ).fetchone()
    assert value == (100.0,)  # "Raw abundance", not the normalised 1.5
    kinds = dict(con.execute("select injection_id, sample_type from raw.mtb_injections").fetchall())
    assert kinds == {"S1": "SAMPLE", "S2": "SAMPLE", "S3": "SAMPLE", "QC1": "QC", "QC2": "QC"}
    hmdb, kegg = con.execute(
        "select hmdb_id, kegg_id from raw.mtb_features where feature_id = '1.23_147.0764m/z'"
    ).fetchone()
    assert (hmdb, kegg) == ("HMDB00148", None)


def test_xcms_rt_in_minutes_and_no_injection_rows(tmp_path: Path) -> None:
    con, _ = load(make_landing(tmp_path, {"xcms3_pos.csv": FIXTURES / "xcms3_pos.csv"}))
    rt = dict(con.execute("select feature_id, cast(rt_min as double) from raw.mtb_features").fetchall())
    assert rt["FT01"] == pytest.approx(2506.8 / 60) and rt["FT03"] == pytest.approx(1.0)
    # an XCMS table carries no class/type/order/batch: nothing is invented for raw.mtb_injections
    assert con.execute("select count(*) from raw.mtb_injections").fetchone() == (0,)
    assert {r[0] for r in con.execute("select distinct injection_id from raw.mtb_intensities").fetchall()} == {
        "ko15.CDF",
        "ko16.CDF",
        "wt15.CDF",
        "wt16.CDF",
    }


INJECTIONS_CSV = (
    "injection_id,sample_type,specimen_barcode,matrix,run_order,batch\n"
    "ko15,SAMPLE,BC001,FAECES,1,B1\n"
    "ko16,SAMPLE,BC002,FAECES,2,B1\n"
    "wt15,SAMPLE,BC003,FAECES,3,B1\n"
    "wt16,SAMPLE,BC004,FAECES,4,B1\n"
)


def test_xcms_peaktable_needs_the_injection_list(tmp_path: Path) -> None:
    _, report = load(make_landing(tmp_path / "a", {"xcms_peaktable_pos.tsv": FIXTURES / "xcms_peaktable_pos.tsv"}))
    [bad] = report.rejected
    assert bad.path == "metabolomics/MTBX01/xcms_peaktable_pos.tsv"
    assert "cannot tell injection columns" in (bad.reason or "")

    landing = make_landing(
        tmp_path / "b",
        {"xcms_peaktable_pos.tsv": FIXTURES / "xcms_peaktable_pos.tsv", "injections.csv": INJECTIONS_CSV},
    )
    con, report = load(landing)
    assert report.rejected == []
    cells = con.execute("select feature_id, injection_id, intensity from raw.mtb_intensities order by all").fetchall()
    assert ("M200T2507", "ko15", 1000.5) in cells and len(cells) == 6  # 2 features x 4, wt16/M200 and ko16/M205 NA
    # the injection list is the batch's injection metadata: the export adds none of its own
    inj = con.execute("select injection_id, specimen_barcode, _source_file from raw.mtb_injections").fetchall()
    assert len(inj) == 4 and {r[2] for r in inj} == {"metabolomics/MTBX01/injections.csv"}


def test_unknown_injection_against_the_batch_list_is_rejected(tmp_path: Path) -> None:
    listing = "injection_id,sample_type,specimen_barcode,matrix,run_order\n" + "".join(
        f"{i},{t},{b},FAECES,{k}\n"
        for k, (i, t, b) in enumerate(
            [("Blank_01", "BLANK", ""), ("QC_01", "QC", ""), ("S01", "SAMPLE", "BC1"), ("S02", "SAMPLE", "BC2")],
            start=1,
        )
    )
    landing = make_landing(tmp_path, {"msdial_pos.txt": FIXTURES / "msdial_pos.txt", "injections.csv": listing})
    con, report = load(landing)
    [bad] = report.rejected
    assert bad.path == "metabolomics/MTBX01/msdial_pos.txt"
    assert "unknown injection 'QC_02'" in (bad.reason or "") and "column 'QC_02'" in (bad.reason or "")
    assert con.execute("select count(*) from raw.mtb_intensities").fetchone() == (0,)


def test_ion_mode_must_be_known_and_consistent(tmp_path: Path) -> None:
    _, report = load(make_landing(tmp_path / "a", {"progenesis.csv": FIXTURES / "progenesis_neg.csv"}))
    [bad] = report.rejected
    assert "does not state its ion mode" in (bad.reason or "") and "file name" in (bad.reason or "")

    _, report = load(make_landing(tmp_path / "b", {"serum_pos.txt": FIXTURES / "mwtab_serum_neg.txt"}))
    [bad] = report.rejected
    assert "ion mode" in (bad.reason or "") and "NEG" in (bad.reason or "")

    _, report = load(make_landing(tmp_path / "c", {"msdial_neg.txt": FIXTURES / "msdial_pos.txt"}))
    [bad] = report.rejected
    assert "every adduct is POS" in (bad.reason or "")


def test_pos_and_neg_exports_of_one_run_share_injections(tmp_path: Path) -> None:
    neg = (FIXTURES / "msdial_pos.txt").read_text().replace("]+", "]-")
    landing = make_landing(tmp_path, {"msdial_pos.txt": FIXTURES / "msdial_pos.txt", "msdial_neg.txt": neg})
    con, report = load(landing)
    assert report.rejected == []
    keys = con.execute("select ion_mode, count(*) from raw.mtb_features group by 1 order by 1").fetchall()
    assert keys == [("NEG", 3), ("POS", 3)]  # Alignment IDs 0..2 exist in both modes: the mode is in the key
    per_injection = con.execute("select count(*), count(distinct injection_id) from raw.mtb_injections").fetchone()
    assert per_injection == (8, 8)  # written once, by the first export of the batch
    # reloading changes nothing; a changed NEG export adds no duplicate injections either
    report = load_family(con, landing, "metabolomics", load_id="L2")
    assert {o.status for o in report.outcomes} == {"unchanged"}
    (landing / "metabolomics" / "MTBX01" / "msdial_neg.txt").write_text(neg.replace("1.234", "1.235"))
    load_family(con, landing, "metabolomics", load_id="L3")
    current = con.execute(
        "select count(*) from raw.mtb_injections t join raw.current_files c on t._source_file = c.path "
        "and t._file_sha256 = c.sha256 and t._load_id = c.load_id"
    ).fetchone()
    assert current == (8,)


def test_generic_wide_table_is_not_taken_for_a_vendor_export(tmp_path: Path) -> None:
    generic = "feature_id,ion_mode,mz,rt_min,name,QC_01,S01\nF1,POS,100.1,1.5,,10,20\nF2,NEG,200.2,2.5,Citrate,30,\n"
    con, report = load(make_landing(tmp_path, {"features.csv": generic}))
    assert report.rejected == []
    assert con.execute("select format from raw.load_manifest").fetchone() == ("wide",)
    assert con.execute("select count(*) from raw.mtb_intensities").fetchone() == (3,)


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("xcms_pos.csv", "POS"),
        ("QI-negative.csv.gz", "NEG"),
        ("batch1.POSITIVE.tsv", "POS"),
        ("pos_and_neg.csv", None),
        ("position.csv", None),
        ("features.csv", None),
    ],
)
def test_ion_mode_from_file_name(name: str, mode: str | None) -> None:
    assert ion_mode_from_name(name) == mode


def test_four_vendors_in_one_batch(tmp_path: Path) -> None:
    files = {case[1]: FIXTURES / case[0] for case in CASES}
    con, report = load(make_landing(tmp_path, files))
    assert report.rejected == []
    formats = dict(con.execute("select path, format from raw.load_manifest").fetchall())
    assert sorted(formats.values()) == ["msdial", "mwtab", "progenesis", "xcms"]
    per_file = dict(con.execute("select _source_file, count(*) from raw.mtb_features group by 1").fetchall())
    assert per_file == {f"metabolomics/MTBX01/{name}": 3 for name in files}
    keys = con.execute("select count(distinct (ion_mode, feature_id)) from raw.mtb_features").fetchone()
    assert keys == (12,)
