"""The GX runner: severities, failures naming rows and columns, privacy, Data Docs, the quarantine; and the suites
of the clean demo warehouse (every critical suite passes, the designed mess is flagged as warnings)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from _warehouse import DemoWarehouse, shared_demo_warehouse

from expectations import QualityRunner, SuiteSpec, datadocs, quarantine
from expectations.runner import MASKED, REDACTED, WARNING, protect
from expectations.suites import raw_suites, staging_suites
from expectations.suites.raw import dtc_earliest, dtc_latest, dtc_parts


def _lab_suite(critical: bool = True) -> SuiteSpec:
    def build() -> list[Any]:
        import great_expectations.expectations as gxe

        return [
            gxe.ExpectColumnValuesToNotBeNull(column="subject_id"),
            gxe.ExpectColumnValuesToBeBetween(column="value", min_value=0, description="Lab values are non-negative"),
            gxe.ExpectColumnValuesToBeInSet(column="unit", value_set=["g/L"], severity=WARNING),
        ]

    return SuiteSpec("staging.labs_test", "select 1", build, critical=critical, row_id=("subject_id", "line"))


LABS = pd.DataFrame(
    {
        "subject_id": ["S1", "S2", "S3", "S4"],
        "line": [2, 3, 4, 5],
        "value": [35.0, -1.0, 40.0, -2.0],
        "unit": ["g/L", "g/L", "g/dL", "g/L"],
    }
)


def test_failures_carry_severity_columns_and_every_offending_row(tmp_path: Path) -> None:
    runner = QualityRunner(tmp_path / "quality")
    summary = runner.validate(_lab_suite(), LABS, run_name="run-1")
    assert not summary.success and summary.blocking_failure and summary.status == "failed"
    assert summary.evaluated == 3 and summary.n_rows == 4
    by_column = {f.column: f for f in summary.failed}
    assert set(by_column) == {"value", "unit"}
    value, unit = by_column["value"], by_column["unit"]
    assert (value.severity, value.blocking, value.unexpected_count) == ("critical", True, 2)
    assert value.rule == "Lab values are non-negative"
    # Every offending row, identified by the suite's row-id columns, with the offending value.
    assert value.rows == [
        {"value": -1.0, "subject_id": "S2", "line": 3},
        {"value": -2.0, "subject_id": "S4", "line": 5},
    ]
    assert (unit.severity, unit.blocking) == ("warning", False)
    assert unit.rows == [{"unit": "g/dL", "subject_id": "S3", "line": 4}]
    assert "| critical | Lab values are non-negative | value | 2 |" in summary.failures_markdown()

    # Only the warning fails: reported, not blocking.
    warned = runner.validate(_lab_suite(), LABS.assign(value=LABS["value"].abs()), run_name="run-1")
    assert (warned.status, warned.blocking_failure) == ("warning", False)
    # A non-critical suite never blocks, whatever its expectations say.
    relaxed = runner.validate(_lab_suite(critical=False), LABS, run_name="run-1")
    assert relaxed.status == "warning" and {f.severity for f in relaxed.failed} == {"warning"}
    assert runner.validate(_lab_suite(), LABS.assign(value=1.0, unit="g/L"), run_name="run-1").status == "passed"


#: Edge cases for the pre-screen: nulls of every kind, nullable integers, dates, booleans, duplicates, text.
EDGES = pd.DataFrame(
    {
        "i": pd.array([1, 2, None, 4], dtype="Int64"),
        "f": [0.5, float("nan"), 2.0, 3.0],
        "n": [1, 2, 3, 4],
        "d": pd.to_datetime(["2024-01-01", None, "2024-03-01", "2024-12-31"]),
        "s": ["a", None, "b", " A "],
        "b": [True, True, None, True],
        "k1": ["x", "x", "y", None],
        "k2": [1, 2, 1, None],
        "none": [None, None, None, None],
    }
)


def _edge_suite() -> SuiteSpec:
    def build() -> list[Any]:
        import great_expectations.expectations as gxe

        low, high = dt.datetime(2024, 1, 1), dt.datetime(2024, 12, 31)
        cases: list[Any] = []
        for column in ("i", "f", "n", "d", "s", "b", "none", "missing"):
            cases += [
                gxe.ExpectColumnValuesToNotBeNull(column=column),
                gxe.ExpectColumnValuesToBeNull(column=column),
                gxe.ExpectColumnValuesToBeUnique(column=column),
                gxe.ExpectColumnValuesToBeInSet(column=column, value_set=[1, 2, 4, "a", "b", True]),
                gxe.ExpectColumnValuesToNotBeInSet(column=column, value_set=[3, "c"]),
                gxe.ExpectColumnValuesToMatchRegex(column=column, regex=r"^[ab1-4]"),
            ]
        for column, bounds in (("i", (1, 4)), ("f", (0.5, 3.0)), ("n", (2, None)), ("d", (low, high))):
            for strict in (False, True):
                cases.append(
                    gxe.ExpectColumnValuesToBeBetween(
                        column=column, min_value=bounds[0], max_value=bounds[1], strict_min=strict, strict_max=strict
                    )
                )
        cases += [
            gxe.ExpectColumnValuesToBeBetween(column="d", min_value=dt.date(2024, 1, 1)),
            gxe.ExpectColumnValuesToBeNull(column="f", mostly=0.2),
            gxe.ExpectTableColumnsToMatchSet(column_set=list(EDGES.columns), exact_match=True),
            gxe.ExpectTableColumnsToMatchSet(column_set=["i", "f"], exact_match=False),
            gxe.ExpectTableColumnsToMatchSet(column_set=["i", "f"], exact_match=True),
            gxe.ExpectTableColumnsToMatchSet(column_set=["i", "missing"], exact_match=False),
            gxe.ExpectTableRowCountToEqual(value=4),
            gxe.ExpectTableRowCountToEqual(value=5),
        ]
        for columns in (["k1", "k2"], ["n", "k1"], ["none", "k1"], ["k1", "missing"]):
            for ignore in ("all_values_are_missing", "any_value_is_missing", "never"):
                cases.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=columns, ignore_row_if=ignore))
        for a, b in (("n", "i"), ("i", "n"), ("f", "n"), ("n", "k2"), ("d", "d")):
            for ignore in ("either_value_is_missing", "both_values_are_missing", "neither"):
                for or_equal in (True, False):
                    cases.append(
                        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                            column_A=a, column_B=b, or_equal=or_equal, ignore_row_if=ignore
                        )
                    )
        return cases

    return SuiteSpec("staging.edges_test", "select 1", build)


@pytest.mark.parametrize("rows", [slice(None), slice(0, 0), slice(0, 1), slice(2, 4)])
def test_the_pre_screen_gives_exactly_gx_s_own_results(tmp_path: Path, rows: slice) -> None:
    """Expectations the runner proves to hold without GX get the very result GX gives them; all others, GX's."""
    from expectations import _gx_speed

    frame = EDGES.iloc[rows].reset_index(drop=True)
    runner = QualityRunner(tmp_path / "quality")
    suite = runner._suite(_edge_suite())
    batch = runner._batch_definition().get_batch(batch_parameters={"dataframe": frame})
    plain = batch.validate(suite, result_format={"result_format": "BOOLEAN_ONLY"})
    with _gx_speed.cached_configurations():
        fast = runner._first_pass(suite, batch, frame)
    proven = _gx_speed.proven_passes([e.configuration for e in suite.expectations], frame)
    assert proven  # the pre-screen does prove something on every frame (at least the column sets)
    expected = {r.expectation_config.id: r.to_json_dict() for r in plain.results}
    assert {r.expectation_config.id: r.to_json_dict() for r in fast.results} == expected
    assert all(expected[i]["success"] for i in proven)
    assert (fast.success, fast.statistics) == (plain.success, plain.statistics)
    assert [r.expectation_config.id for r in fast.results] == [e.id for e in suite.expectations]
    _same_suite_result(fast, plain)

    # A suite whose every expectation is proven: GX is not called at all, the suite result is the one it builds.
    held = [e for e in suite.expectations if e.id in proven]
    only = runner._suite(
        SuiteSpec("staging.proven_test", "select 1", lambda: [e.copy(update={"id": None}) for e in held])
    )
    plain = batch.validate(only, result_format={"result_format": "BOOLEAN_ONLY"})
    with _gx_speed.cached_configurations():
        fast = runner._first_pass(only, batch, frame)
    assert plain.success and fast.success and fast.statistics == plain.statistics
    expected = {r.expectation_config.id: r.to_json_dict() for r in plain.results}
    assert {r.expectation_config.id: r.to_json_dict() for r in fast.results} == expected
    _same_suite_result(fast, plain)


def _same_suite_result(fast: Any, plain: Any) -> None:
    """The suite-level parts of two results agree (but the time GX loaded the batch)."""

    def strip(result: Any) -> dict[str, Any]:
        data = {k: v for k, v in result.to_json_dict().items() if k != "results"}
        data["meta"]["batch_markers"].pop("ge_load_time")
        return data

    assert strip(fast) == strip(plain)


@pytest.mark.parametrize("where", ["", "where n > 1", "where false"])
def test_tables_are_read_as_duckdb_s_own_dataframes(where: str) -> None:
    from expectations.runner import read_frame

    con = duckdb.connect()
    con.execute("create type mood as enum ('ok', 'bad')")
    con.execute(
        "create table t as select * from (values "
        "(1, 'a', null::varchar, 1.5, date '2024-01-02', timestamp '2024-01-02 03:04:05', true, 'ok'::mood, "
        "10::hugeint), "
        "(2, null, null, null, null, null, null, null, null), "
        "(3, 'c', null, 2.5, date '2024-03-04', null, false, 'bad', 20)) v(n, s, empty, x, d, ts, b, m, h)"
    )
    for query in (f"select * exclude (m) from t {where}", f"select * from t {where}", f"select n, x from t {where}"):
        expected = con.execute(query).df()
        pd.testing.assert_frame_equal(read_frame(con, query), expected, check_exact=True)


def test_data_docs_pages_index_and_history(tmp_path: Path) -> None:
    runner = QualityRunner(tmp_path / "quality")
    first = runner.validate(_lab_suite(), LABS, run_name="run-1")
    index = runner.build_docs([first], layer="staging")
    second = runner.validate(_lab_suite(), LABS.assign(value=1.0), run_name="run-2")
    runner.build_docs([second], layer="staging")
    assert index == tmp_path / "quality" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    for summary in (first, second):
        assert summary.docs_page is not None and summary.docs_page.exists()
        assert summary.docs_page.is_relative_to(index.parent)
        page = summary.docs_page.read_text()
        assert "staging.labs_test" in page and "guttrial_offline.css" in page
    assert first.docs_page != second.docs_page  # history: one page per validation, the earlier one kept
    html = index.read_text()
    assert "run-2" in html and "run-1" in html and "FAILED (blocking)" not in html.split("History")[0]
    entries = datadocs.read_ledger(index.parent)
    assert [(e["run"], e["status"]) for e in sorted(entries, key=lambda e: e["run"])] == [
        ("run-1", "failed"),
        ("run-2", "warning"),
    ]
    # A suite re-validated in the same run replaces its line (a re-executed check step).
    again = runner.validate(_lab_suite(), LABS.assign(value=1.0, unit="g/L"), run_name="run-2")
    runner.build_docs([again], layer="staging")
    assert {e["run"]: e["status"] for e in datadocs.read_ledger(index.parent)} == {"run-1": "failed", "run-2": "passed"}
    assert (index.parent / "runs" / "run-1.html").exists()


def test_of_two_runs_in_the_same_second_the_later_is_the_latest() -> None:
    at = "2026-01-01T00:00:00+00:00"
    entries = [{"run": run, "suite": "raw.x", "validated_at": at} for run in ("run-1", "run-2", "run-1")]
    assert [run for run, _ in datadocs.runs(entries)] == ["run-2", "run-1"]


def test_identifiers_are_redacted_and_arms_masked_when_blinded() -> None:
    frame = pd.DataFrame(
        {
            "PATNAME": ["TANG Xiaohong", None],
            "MRN": ["47902136", "1"],
            "arm_code": ["BLINDED", "CAPSULE"],
            "SEX": ["F", "M"],
        }
    )
    blinded = protect(frame, blinded=True)
    assert blinded["PATNAME"].tolist()[0] == REDACTED and pd.isna(blinded["PATNAME"].tolist()[1])
    assert blinded["MRN"].tolist() == [REDACTED, REDACTED]
    assert blinded["arm_code"].tolist() == ["BLINDED", MASKED]
    assert blinded["SEX"].tolist() == ["F", "M"]
    unblinded = protect(frame, blinded=False)
    assert unblinded["arm_code"].tolist() == ["BLINDED", "CAPSULE"] and unblinded["MRN"].tolist()[0] == REDACTED


def test_an_identifier_never_reaches_a_failure_or_a_page(tmp_path: Path) -> None:
    def build() -> list[Any]:
        import great_expectations.expectations as gxe

        return [gxe.ExpectColumnValuesToMatchRegex(column="PATNAME", regex="^[a-z]+$")]

    spec = SuiteSpec("raw.names_test", "select 1", build, row_id=("line",))
    runner = QualityRunner(tmp_path / "quality")
    summary = runner.validate(spec, pd.DataFrame({"PATNAME": ["TANG Xiaohong"], "line": [2]}))
    runner.build_docs([summary])
    assert summary.failed[0].rows == [{"PATNAME": REDACTED, "line": 2}]
    assert summary.docs_page is not None and "Xiaohong" not in summary.docs_page.read_text()


def test_quarantine_is_replaced_per_run_and_never_truncated_silently(tmp_path: Path, monkeypatch) -> None:
    import expectations.runner as runner_module

    monkeypatch.setattr(runner_module, "MAX_FLAGGED_ROWS", 1)
    monkeypatch.setattr(quarantine, "MAX_FLAGGED_ROWS", 1)
    runner = QualityRunner(tmp_path / "quality")
    spec = _lab_suite()
    summary = runner.validate(spec, LABS, run_name="run-1")
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    kwargs = {"run_id": "run-1", "layer": "staging", "assets": {spec.name: "staging/labs_test"}}
    written = quarantine.write(con, suites=[spec.name], summaries=[summary], row_ids={spec.name: spec.row_id}, **kwargs)
    rows = con.execute("select column_name, severity, row_key, value, reason from quality.quarantine order by all").df()
    assert written == len(rows) == 3  # value: first row + "1 more" note; unit: its one row
    value = rows[rows["column_name"] == "value"]
    assert json.loads(value["row_key"].dropna().iloc[0]) == {"line": 3, "subject_id": "S2"}
    assert json.loads(value["value"].dropna().iloc[0]) == {"value": -1.0}
    assert value["reason"].str.contains("1 more flagged rows not listed").any()
    assert set(rows["severity"]) == {"critical", "warning"}
    # Re-running the step in the same run replaces its rows; other runs are untouched.
    clean = runner.validate(spec, LABS.assign(value=1.0, unit="g/L"), run_name="run-1")
    quarantine.write(con, suites=[spec.name], summaries=[clean], row_ids={}, **kwargs)
    other = {**kwargs, "run_id": "run-0"}
    quarantine.write(con, suites=[spec.name], summaries=[summary], row_ids={}, **other)
    assert con.execute("select run_id, count(*) from quality.quarantine group by 1").fetchall() == [("run-0", 3)]
    assert con.execute("select status from quality.validations where run_id = 'run-1'").fetchall() == [("passed",)]
    line = quarantine.summary_line(con, "run-0")
    assert (
        line
        == "  quality: 1 suites validated: 0 passed, 0 with warnings, 1 failed (blocking); 3 rows in quality.quarantine"
    )


@pytest.mark.parametrize(
    ("text", "earliest", "latest"),
    [
        ("2024-05-13", "2024-05-13", "2024-05-13"),
        (" 2024-05-UN", "2024-05-01", "2024-05-31"),
        ("2024-UNK-UNK", "2024-01-01", "2024-12-31"),
        ("UN/FEB/2024", "2024-02-01", "2024-02-29"),
        ("13/may/2024", "2024-05-13", "2024-05-13"),
        ("2024-05-13T10:30", "2024-05-13", "2024-05-13"),
        ("2024-02-30", None, None),
        ("ND", None, None),
    ],
)
def test_raw_dates_are_read_in_every_delivered_shape(text: str, earliest: str | None, latest: str | None) -> None:
    sql = f"select {dtc_earliest('p')}, {dtc_latest('p')} from (select {dtc_parts('d')} as p from (select ? as d))"
    got = duckdb.connect().execute(sql, [text]).fetchone()
    assert got == (
        dt.date.fromisoformat(earliest) if earliest else None,
        dt.date.fromisoformat(latest) if latest else None,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoWarehouse:
    return shared_demo_warehouse(tmp_path_factory)


def test_the_clean_demo_passes_every_critical_suite(demo: DemoWarehouse, tmp_path: Path) -> None:
    """Raw and staging suites (the marts' and analysis tables' suites have their own tests)."""
    runner = QualityRunner(tmp_path / "quality")
    summaries = []
    with demo.connect() as con:
        for suites in (raw_suites(), staging_suites()):
            for spec in suites.values():
                summaries.append(runner.validate(spec, con.execute(spec.query).df(), run_name="clean"))
    blocking = {s.suite: [f.describe() for f in s.failed] for s in summaries if s.blocking_failure}
    assert not blocking
    warnings = {s.suite for s in summaries if s.status == "warning"}
    # The designed mess: the orphan sequencing sample and exact duplicate CRF rows, flagged, not blocking.
    assert {"raw.seq_manifest", "staging.stg_seq__manifest"} <= warnings
    assert {"staging.stg_crf__lb", "staging.stg_crf__qs"} <= warnings
    orphan = next(s for s in summaries if s.suite == "staging.stg_seq__manifest").failed
    assert [f.column for f in orphan] == ["check_specimen_logged"] and orphan[0].unexpected_count == 1
    assert len(summaries) == len(raw_suites()) + len(staging_suites())
