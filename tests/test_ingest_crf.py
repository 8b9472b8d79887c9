"""CRF reader and raw-layer loader: contract checks, lineage, idempotence, versioning, transactions."""

from __future__ import annotations

import gzip
from pathlib import Path

import duckdb
import pytest

from analysis import contract
from analysis.errors import ContractViolation
from analysis.ingest import load_family
from analysis.ingest.crf import read_crf_csv

DM = contract.CRF_FORMS["dm"]
RAND = contract.CRF_FORMS["rand"]
RAND_HEADER = "STUDYID,SITEID,SUBJID,RANDNO,RANDDTC"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode("utf-8")
    if path.name.endswith(".gz"):
        text = gzip.compress(text, mtime=0)
    path.write_bytes(text)
    return path


def rejection(path: Path, form: contract.CrfForm = RAND) -> ContractViolation:
    with pytest.raises(ContractViolation) as info:
        read_crf_csv(path, path.name, form)
    return info.value


# ---------------------------------------------------------------------------------------------- reader


def test_reads_values_exactly_as_delivered(tmp_path: Path) -> None:
    path = write(tmp_path / "rand.csv", f'{RAND_HEADER}\nHCC, 01 ,001,R001, 2024-UNK-UNK\nHCC,01,002,,"ND"\n')
    frame = read_crf_csv(path, "rand.csv", RAND)
    assert frame["SITEID"].tolist() == [" 01 ", "01"]
    assert frame["RANDDTC"].tolist() == [" 2024-UNK-UNK", "ND"]
    assert frame["RANDNO"].tolist() == ["R001", ""]  # empty stays empty: staging maps missing markers
    assert frame["_row_number"].tolist() == [2, 3]


def test_header_names_are_normalised_and_extra_columns_kept(tmp_path: Path) -> None:
    path = write(tmp_path / "rand.csv", "studyid, SiteId ,SUBJID,RANDNO,RANDDTC,COMMENT\nA,1,2,3,2024-01-01,x\n")
    frame = read_crf_csv(path, "rand.csv", RAND)
    assert list(frame.columns[:6]) == ["STUDYID", "SITEID", "SUBJID", "RANDNO", "RANDDTC", "COMMENT"]


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_gzip_and_bom_and_crlf(tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path / f"rand{suffix}", f"\ufeff{RAND_HEADER}\r\nA,1,2,3,2024-01-01\r\n")
    frame = read_crf_csv(path, path.name, RAND)
    assert frame.loc[0, "STUDYID"] == "A"
    assert frame.loc[0, "RANDDTC"] == "2024-01-01"


def test_utf16_with_bom_is_decoded(tmp_path: Path) -> None:
    path = write(tmp_path / "rand.csv", f"{RAND_HEADER}\nA,1,2,3,2024-01-01\n".encode("utf-16"))
    assert read_crf_csv(path, "rand.csv", RAND).loc[0, "SUBJID"] == "2"


def test_quoted_commas_and_newlines(tmp_path: Path) -> None:
    path = write(tmp_path / "rand.csv", f'{RAND_HEADER}\nA,1,"2, b","multi\nline",2024-01-01\nA,1,3,4,2024-01-02\n')
    frame = read_crf_csv(path, "rand.csv", RAND)
    assert frame["SUBJID"].tolist() == ["2, b", "3"]
    assert frame.loc[0, "RANDNO"] == "multi\nline"


def test_missing_required_column_names_it(tmp_path: Path) -> None:
    exc = rejection(write(tmp_path / "rand.csv", "STUDYID,SITEID,SUBJID,RANDNO\nA,1,2,3\n"))
    assert exc.column == "RANDDTC" and exc.row == 1
    assert "missing required column" in str(exc) and "rand.csv" in str(exc)


def test_wrong_delimiter(tmp_path: Path) -> None:
    exc = rejection(write(tmp_path / "rand.csv", RAND_HEADER.replace(",", ";") + "\nA;1;2;3;2024\n"))
    assert "semicolon" in str(exc) and exc.row == 1


def test_duplicate_column(tmp_path: Path) -> None:
    exc = rejection(write(tmp_path / "rand.csv", RAND_HEADER + ",RANDNO\nA,1,2,3,2024-01-01,4\n"))
    assert exc.column == "RANDNO" and "duplicate" in str(exc)


@pytest.mark.parametrize(
    ("body", "row"),
    [("A,1,2,3,2024-01-01\nA,1,2,3\n", 3), ("A,1,2,3,2024-01-01,extra\n", 2)],
    ids=["short-row", "long-row"],
)
def test_ragged_rows_name_the_row(tmp_path: Path, body: str, row: int) -> None:
    exc = rejection(write(tmp_path / "rand.csv", f"{RAND_HEADER}\n{body}"))
    assert exc.row == row
    assert "fields" in str(exc)


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    exc = rejection(write(tmp_path / "rand.csv", f"{RAND_HEADER}\nA,1,2,3,2024\n".encode() + b"A,1,\xc0\xff,3,x\n"))
    assert exc.row == 3 and "UTF-8" in str(exc)


def test_nul_byte_and_empty_file_and_bad_gzip(tmp_path: Path) -> None:
    assert rejection(write(tmp_path / "a.csv", f"{RAND_HEADER}\nA,1,\x002,3,x\n")).row == 2
    assert "empty" in str(rejection(write(tmp_path / "b.csv", "")))
    bad_gz = tmp_path / "c.csv.gz"
    bad_gz.write_bytes(b"\x1f\x8b\x08not really gzip")
    assert "cannot read" in str(rejection(bad_gz))


def test_header_only_file_is_an_empty_table(tmp_path: Path) -> None:
    assert len(read_crf_csv(write(tmp_path / "rand.csv", RAND_HEADER + "\n"), "rand.csv", RAND)) == 0


# ---------------------------------------------------------------------------------------------- loader


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    write(root / "crf" / "rand.csv", f"{RAND_HEADER}\nHCC,01,001,R001,2024-03-01\nHCC,01,002,R002,2024-03-02\n")
    write(
        root / "crf" / "dm.csv.gz",
        ",".join(DM.required) + "\nHCC,01,001,12345,Li Wei,LW,1960-01-01,M,2024-02-01\n",
    )
    return root


def snapshot(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple]:
    return con.execute(f"select * from raw.{table} order by all").fetchall()


def test_load_keeps_lineage(landing: Path, tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    report = load_family(con, landing, "crf", load_id="L1")
    assert [(o.path, o.status, o.rows) for o in report.outcomes] == [
        ("crf/dm.csv.gz", "loaded", 1),
        ("crf/rand.csv", "loaded", 2),
    ]
    rows = con.execute(
        "select SUBJID, _source_file, _row_number, _load_id, length(_file_sha256) from raw.crf_rand order by SUBJID"
    ).fetchall()
    assert rows == [("001", "crf/rand.csv", 2, "L1", 64), ("002", "crf/rand.csv", 3, "L1", 64)]
    manifest = con.execute(
        "select path, status, n_rows, size_bytes > 0 from raw.load_manifest order by path"
    ).fetchall()
    assert manifest == [("crf/dm.csv.gz", "loaded", 1, True), ("crf/rand.csv", "loaded", 2, True)]


def test_reload_of_unchanged_files_changes_no_data(landing: Path, tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    load_family(con, landing, "crf", load_id="L1")
    before = snapshot(con, "crf_rand"), snapshot(con, "crf_dm")
    report = load_family(con, landing, "crf", load_id="L2")
    assert {o.status for o in report.outcomes} == {"unchanged"}
    assert (snapshot(con, "crf_rand"), snapshot(con, "crf_dm")) == before
    assert con.execute(
        "select count(*) from raw.load_manifest where load_id='L2' and status='unchanged'"
    ).fetchone() == (2,)


def test_changed_file_is_a_new_version_and_old_rows_stay(landing: Path, tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    load_family(con, landing, "crf", load_id="L1")
    write(landing / "crf" / "rand.csv", f"{RAND_HEADER}\nHCC,01,001,R001,2024-03-01\nHCC,01,002,R002,2024-03-05\n")
    report = load_family(con, landing, "crf", load_id="L2")
    assert {o.path: o.status for o in report.outcomes}["crf/rand.csv"] == "loaded"
    assert con.execute("select count(*) from raw.crf_rand").fetchone() == (4,)
    current = con.execute(
        "select r.RANDDTC from raw.crf_rand r join raw.current_files c on r._source_file = c.path "
        "and r._file_sha256 = c.sha256 and r._load_id = c.load_id where r.SUBJID = '002'"
    ).fetchall()
    assert current == [("2024-03-05",)]
    assert report.current_rows["crf_rand"] == 2


def test_rejected_file_does_not_stop_the_others_or_replace_the_good_version(landing: Path, tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    load_family(con, landing, "crf", load_id="L1")
    good = snapshot(con, "crf_rand")
    write(landing / "crf" / "rand.csv", "STUDYID;SITEID;SUBJID\n")  # broken re-delivery
    write(
        landing / "crf" / "ds.csv", "STUDYID,SITEID,SUBJID,DSCAT,DSDECOD,DSSTDTC\nHCC,01,001,DEATH,DEATH,2024-09-01\n"
    )
    write(landing / "crf" / "notes.txt", "not a form")
    report = load_family(con, landing, "crf", load_id="L2")
    status = {o.path: o.status for o in report.outcomes}
    assert status == {
        "crf/dm.csv.gz": "unchanged",
        "crf/ds.csv": "loaded",
        "crf/notes.txt": "rejected",
        "crf/rand.csv": "rejected",
    }
    assert snapshot(con, "crf_rand") == good
    assert report.current_rows["crf_rand"] == 2  # the previous good version stays current
    reasons = dict(con.execute("select path, reason from raw.load_manifest where status='rejected'").fetchall())
    assert "semicolon" in reasons["crf/rand.csv"] and "crf/rand.csv" in reasons["crf/rand.csv"]


def test_failure_mid_load_rolls_back_everything(landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    load_family(con, landing, "crf", load_id="L1")
    before = con.execute("select count(*) from raw.load_manifest").fetchone()
    write(
        landing / "crf" / "ds.csv", "STUDYID,SITEID,SUBJID,DSCAT,DSDECOD,DSSTDTC\nHCC,01,001,DEATH,DEATH,2024-09-01\n"
    )
    write(landing / "crf" / "rand.csv", f"{RAND_HEADER}\nHCC,01,009,R009,2024-04-01\n")
    from analysis.ingest import loader

    calls = {"n": 0}
    original = loader._insert_frame

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return original(*args, **kwargs)

    monkeypatch.setattr(loader, "_insert_frame", flaky)
    with pytest.raises(OSError):
        load_family(con, landing, "crf", load_id="L2")
    assert con.execute("select count(*) from raw.load_manifest").fetchone() == before
    assert con.execute("select count(*) from raw.crf_ds").fetchone() == (0,)
    assert con.execute("select count(*) from raw.crf_rand").fetchone() == (2,)


def test_landing_files_are_never_modified(landing: Path, tmp_path: Path) -> None:
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in landing.rglob("*") if p.is_file()}
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    load_family(con, landing, "crf")
    load_family(con, landing, "crf")
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in landing.rglob("*") if p.is_file()} == before


def test_extra_column_names_are_quoted_not_executed(tmp_path) -> None:
    """A delivered header is untrusted text: widening the raw table must quote it, never run it as SQL."""
    import duckdb
    import pandas as pd

    from analysis.ingest.loader import _insert_frame

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema raw; create table raw.t (a varchar); create table raw.keep (x integer)")
    hostile = 'b" varchar); drop table raw.keep; --'
    _insert_frame(con, "t", pd.DataFrame({"a": ["1"], hostile: ["2"], "A2": ["3"]}))
    assert con.execute("select count(*) from raw.keep").fetchone() == (0,)  # still there
    query = "select column_name from information_schema.columns where table_name = 't'"
    columns = [r[0] for r in con.execute(query).fetchall()]
    assert hostile in columns
    assert con.execute(f'select "{hostile.replace(chr(34), chr(34) * 2)}" from raw.t').fetchone() == ("2",)


# ---------------------------------------------------------------------------------------------- identifiers (issue 9)

DM_HEADER = ",".join(DM.required)


@pytest.mark.parametrize(
    ("birth", "consent", "age", "flag"),
    [
        ("1960-03-15", "2024-03-15", 64, None),  # birthday on the consent day: the year is completed
        ("1960-03-16", "2024-03-15", 63, None),  # birthday the day after consent
        ("1960-02-29", "2024-02-28", 63, None),  # 29 Feb birth, leap consent year, day before the birthday
        ("1960-02-29", "2024-02-29", 64, None),
        ("1960-02-29", "2023-02-28", 62, None),  # non-leap year: the birthday is reached on 1 March
        ("1960-02-29", "2023-03-01", 63, None),
        ("1960-05-UN", "2024-05-14", 63, "D"),  # day missing -> 15 May 1960
        ("UN/MAY/1960", "2024-05-15", 64, "D"),
        ("1960-05", "2024-05-15", 64, "D"),
        ("1960-UNK-UNK", "2024-06-30", 63, "M"),  # month missing -> 1 July 1960
        ("1960", "2024-07-01", 64, "M"),
        ("UNK/UNK/1960", "2024-07-01", 64, "M"),
        ("UNK-05-15", "2024-07-01", None, "Y"),  # year missing -> no age
        ("1960-02-30", "2024-07-01", None, "X"),  # not a date -> no age
        ("ND", "2024-07-01", None, None),  # missing marker
        ("", "2024-07-01", None, None),
        (" 15/mar/1960 ", "2024-03-15", 64, None),  # as delivered: blanks and case
        ("1960-03-15", "2024-03", 63, None),  # consent day missing -> 1 March (as staging imputes it)
        ("1960-03-15", "2024", None, None),  # consent month missing -> no age
        ("1960-03-15", "", None, None),
    ],
)
def test_age_at_consent_imputes_partial_birth_dates(
    birth: str, consent: str, age: int | None, flag: str | None
) -> None:
    import pandas as pd

    from analysis.ingest.deidentify import age_at_consent

    ages, flags = age_at_consent(pd.Series([birth, "1970-01-01"]), pd.Series([consent, "2024-01-01"]))
    assert (None if pd.isna(ages[0]) else int(ages[0])) == age
    assert flags[0] == flag
    assert (ages[1], flags[1]) == (54, None)


def test_dm_identifier_values_are_never_stored(landing: Path, tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    load_family(con, landing, "crf", load_id="L1")
    row = con.execute(
        "select MRN, PATNAME, INITIALS, BRTHDTC, AGE_AT_CONSENT, AGE_IMPUTATION_FLAG, SEX, RFICDTC from raw.crf_dm"
    ).fetchall()
    assert row == [(None, None, None, None, 64, None, "M", "2024-02-01")]
    types = dict(
        con.execute(
            "select column_name, data_type from information_schema.columns where table_name = 'crf_dm'"
        ).fetchall()
    )
    assert types["AGE_AT_CONSENT"] == "INTEGER" and types["MRN"] == "VARCHAR"  # the contract's columns stay
    dump = str(con.execute("select * from raw.crf_dm").fetchall()) + str(
        con.execute("select * from raw.load_manifest").fetchall()
    )
    for value in ("12345", "Li Wei", "'LW'", "1960-01-01"):
        assert value not in dump


def test_identifier_columns_are_still_required(tmp_path: Path) -> None:
    path = write(
        tmp_path / "dm.csv", "STUDYID,SITEID,SUBJID,MRN,PATNAME,INITIALS,SEX,RFICDTC\nA,1,2,3,N,I,M,2024-01-01\n"
    )
    error = rejection(path, DM)
    assert error.column == "BRTHDTC" and "missing required column" in error.problem


@pytest.mark.parametrize(
    ("birth", "problem"),
    [("2024-03-01", "after informed consent"), ("1900-01-01", "above 120 years")],
)
def test_impossible_age_rejects_the_file_naming_row_and_column(
    landing: Path, tmp_path: Path, birth: str, problem: str
) -> None:
    write(
        landing / "crf" / "dm.csv.gz",
        f"{DM_HEADER}\nHCC,01,001,12345,Li Wei,LW,1960-01-01,M,2024-02-01\n"
        f"HCC,01,002,67890,Zhang San,ZS,{birth},F,2024-02-01\n",
    )
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    report = load_family(con, landing, "crf", load_id="L1")
    assert {o.path: o.status for o in report.outcomes} == {"crf/dm.csv.gz": "rejected", "crf/rand.csv": "loaded"}
    reason = report.rejected[0].reason or ""
    assert reason.startswith("crf/dm.csv.gz, row 3, column 'BRTHDTC': ") and problem in reason
    assert birth not in reason and "67890" not in reason  # the reason is stored and printed: no identifier
    assert con.execute("select count(*) from raw.crf_dm").fetchone() == (0,)


def _old_warehouse(path: Path, landing: Path) -> None:
    """A warehouse loaded before issue 9: raw.crf_dm without the derived columns, holding the identifiers."""
    from analysis.ingest.landing import sha256_of

    with duckdb.connect(str(path)) as con:
        con.execute("create schema raw")
        columns = ", ".join(f'"{c}" varchar' for c in DM.columns)
        con.execute(
            f"create table raw.crf_dm ({columns}, _source_file varchar, _row_number bigint, _file_sha256 varchar, "
            "_load_id varchar)"
        )
        sha = sha256_of(landing / "crf" / "dm.csv.gz")
        con.execute(
            "insert into raw.crf_dm by name select 'HCC' as STUDYID, '01' as SITEID, '001' as SUBJID, '12345' as MRN, "
            "'Li Wei' as PATNAME, 'LW' as INITIALS, '1960-05-UN' as BRTHDTC, 'M' as SEX, '2024-02-01' as RFICDTC, "
            "'crf/dm.csv.gz' as _source_file, 2 as _row_number, ? as _file_sha256, 'L0' as _load_id",
            [sha],
        )
        from analysis.ingest.raw_schema import ensure_raw_schema

        ensure_raw_schema(con)  # creates the other tables; raw.crf_dm exists, so it keeps its old columns
        con.execute(
            "insert into raw.load_manifest values ('L0', 'crf', 'crf/dm.csv.gz', ?, 1, 1, 'csv', null, "
            "timestamp '2024-06-01 00:00:00', 'loaded', null)",
            [sha],
        )


def test_an_older_warehouse_is_scrubbed_in_the_load_transaction(
    landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = tmp_path / "old.duckdb"
    _old_warehouse(warehouse, landing)
    query = "select MRN, PATNAME, INITIALS, BRTHDTC, AGE_AT_CONSENT, AGE_IMPUTATION_FLAG, _load_id from raw.crf_dm"
    from analysis.ingest import loader

    # A load that fails after the scrub rolls it back with everything else.
    def broken(*args, **kwargs):
        raise OSError("disk full")

    with duckdb.connect(str(warehouse)) as con, monkeypatch.context() as patch:
        patch.setattr(loader, "_insert_frame", broken)
        with pytest.raises(OSError):
            load_family(con, landing, "crf", load_id="L1")
        assert con.execute("select MRN, BRTHDTC from raw.crf_dm").fetchall() == [("12345", "1960-05-UN")]
    with duckdb.connect(str(warehouse)) as con:
        report = load_family(con, landing, "crf", load_id="L2")
        assert {o.path: o.status for o in report.outcomes}["crf/dm.csv.gz"] == "unchanged"
        # The old row is blanked, its age derived first (birth day missing -> 15 May 1960: 63 on 1 Feb 2024).
        assert con.execute(query).fetchall() == [(None, None, None, None, 63, "D", "L0")]
        types = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns where table_name = 'crf_dm'"
            ).fetchall()
        )
        assert types["AGE_AT_CONSENT"] == "INTEGER"
        assert load_family(con, landing, "crf", load_id="L3").count("unchanged") == 2  # nothing left to scrub
