"""Break the demo trial the ways a real export goes wrong and show the quality checks stop the run.

One landing folder carries six breaks, each in a different CRF form, and the whole ``refresh_all`` job runs on
it (the code path of ``guttrial build``):

* duplicate subject — a second, different demographics record for patient 01-0002;
* orphan specimen — a biospecimen-log row of patient 01-9999, who was never randomised;
* death before randomisation — patient 01-0004's death dated before their randomisation;
* negative count — ``-3`` capsules taken;
* grade 7 — an adverse event of CTCAE grade 7;
* date after the cut-off — an AE starting in 2099, after the export itself was delivered.

Every break is caught by the raw suites, whose check step runs before dbt: the checks fail with severity
ERROR and name the file line and column, dbt and everything after it do not run, Data Docs show the
failures, and the quarantine lists the rows.

What blocks and what does not, for "orphan samples": a *specimen* of a patient who is not randomised is an
error (a sample must belong to a randomised patient) and blocks. A *sequenced sample* whose specimen barcode is
not in the biospecimen log — the demo has one by design, a mislabelled tube — is a warning: it is quarantined
and routed to ``marts.unlinked_omics_samples`` by dbt, and blocks nothing.

A date after the configured data cut-off but before delivery is legitimate in raw (the marts drop it): the last
test shows it passes the raw suites.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from _warehouse import N_PATIENTS, SEED

from expectations import datadocs
from expectations.suites import raw_suites

CRF_BREAKS = {
    "dm": "duplicate subject",
    "bs": "specimen of a patient who is not randomised",
    "ds": "death before randomisation",
    "ex": "negative capsule count",
    "ae": "CTCAE grade 7, and an AE dated after the export was delivered",
}


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _write(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False)


def break_landing(landing: Path) -> dict[str, int]:
    """Apply the six breaks; return the file line (header = line 1) of each broken row, keyed by a label."""
    lines: dict[str, int] = {}
    crf = landing / "crf"
    dm = _read(crf / "dm.csv")
    twin = dm[dm["SUBJID"] == "01-0002"].iloc[[0]].assign(SEX="F", RFICDTC="2024-02-25")
    assert dm.loc[dm["SUBJID"] == "01-0002", "SEX"].iloc[0] == "M"
    _write(pd.concat([dm, twin]), crf / "dm.csv")
    lines["duplicate_subject"] = len(dm) + 2

    bs = _read(crf / "bs.csv")
    stray = bs.iloc[[0]].assign(SUBJID="01-9999", BSREFID="HG00000001")
    _write(pd.concat([bs, stray]), crf / "bs.csv")
    lines["orphan_specimen"] = len(bs) + 2

    ds = _read(crf / "ds.csv")
    death = ds.index[(ds["SUBJID"] == "01-0004") & (ds["DSCAT"] == "DEATH")][0]
    ds.loc[death, "DSSTDTC"] = "2024-01-15"  # randomised 2024-03-xx
    _write(ds, crf / "ds.csv")
    lines["death_before_randomisation"] = int(death) + 2

    ex = _read(crf / "ex.csv")
    capsules = ex.index[ex["EXCAPTKN"] != ""][0]
    ex.loc[capsules, "EXCAPTKN"] = "-3"
    _write(ex, crf / "ex.csv")
    lines["negative_count"] = int(capsules) + 2

    ae = _read(crf / "ae.csv")
    ae.loc[0, "AETOXGR"] = "7"
    ae.loc[1, "AESTDTC"] = "2099-06-01"
    _write(ae, crf / "ae.csv")
    lines["grade_7"], lines["future_date"] = 2, 3
    return lines


def _settings_config(landing: Path, warehouse: Path, cutoff: str = "") -> dict:
    return {
        "landing_dir": str(landing),
        "warehouse_path": str(warehouse),
        "cutoff_date": cutoff,
        "unblinded": "",
        "randomisation_list": "",
    }


@pytest.fixture(scope="module")
def clean_env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("GUTTRIAL_")]:
            mp.delenv(name)
        yield


@pytest.fixture(scope="module")
def demo_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from analysis.simulation import generate_trial

    out = tmp_path_factory.mktemp("quality_demo")
    generate_trial(out, n_patients=N_PATIENTS, seed=SEED)
    return out / "landing"


@pytest.fixture(scope="module")
def broken_run(demo_landing: Path, tmp_path_factory: pytest.TempPathFactory, clean_env: None) -> dict:
    from orchestration.definitions import REFRESH_JOB, defs

    work = tmp_path_factory.mktemp("quality_breaks")
    landing = work / "landing"
    shutil.copytree(demo_landing, landing)
    lines = break_landing(landing)
    warehouse = work / "warehouse.duckdb"
    job = defs.resolve_job_def(REFRESH_JOB)
    result = job.execute_in_process(
        run_config={"resources": {"settings": {"config": _settings_config(landing, warehouse)}}},
        raise_on_error=False,
    )
    return {"result": result, "lines": lines, "warehouse": warehouse, "landing": landing}


def _evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        f"{e.asset_key.to_user_string()}:{e.check_name}": e
        for e in result.get_asset_check_evaluations()
        if e.check_name.startswith("quality")
    }


def _failed_rows(evaluation: dg.AssetCheckEvaluation) -> str:
    return evaluation.metadata["failures"].value  # the markdown table: rule | column | rows | sample


def test_each_break_fails_its_raw_check_naming_line_and_column(broken_run: dict) -> None:
    evaluations = _evaluations(broken_run["result"])
    lines = broken_run["lines"]
    expected = {
        "raw/crf_dm": ("check_one_record", lines["duplicate_subject"]),
        "raw/crf_bs": ("check_patient", lines["orphan_specimen"]),
        "raw/crf_ds": ("check_death_after_randomisation", lines["death_before_randomisation"]),
        "raw/crf_ex": ("EXCAPTKN", lines["negative_count"]),
        "raw/crf_ae": ("AETOXGR", lines["grade_7"]),
    }
    for asset, (column, line) in expected.items():
        evaluation = evaluations[f"{asset}:quality_suite"]
        assert not evaluation.passed, asset
        assert evaluation.severity == dg.AssetCheckSeverity.ERROR, asset
        failures = _failed_rows(evaluation)
        assert f"| {column} |" in failures, (asset, failures)
        assert f"_row_number={line}" in failures, (asset, failures)
    # The AE file also carries the impossible date, named with its value.
    ae = _failed_rows(evaluations["raw/crf_ae:quality_suite"])
    assert "AESTDTC 2099-06-01 is after the export was delivered" in ae
    assert f"_row_number={lines['future_date']}" in ae
    # The duplicate subject is named, with both of its records.
    dm = _failed_rows(evaluations["raw/crf_dm:quality_suite"])
    assert "patient HCC-GUT-01-01-0002 has 2 different records" in dm
    assert dm.count("HCC-GUT-01-01-0002 has 2") == 2
    # The unbroken forms pass.
    for form in ("rand", "bl", "vs", "tr", "rs", "lb", "qs", "cm"):
        assert evaluations[f"raw/crf_{form}:quality_suite"].passed, form


def test_nothing_downstream_of_the_raw_checks_runs(broken_run: dict) -> None:
    result = broken_run["result"]
    assert not result.success
    materialized = {e.asset_key.path[0] for e in result.get_asset_materialization_events()}
    assert materialized <= {"raw", "restricted"}, materialized
    started = {e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START}
    assert "quality_raw" in started
    assert not {"dbt_models", "quality_staging", "quality_marts", "endpoints_efficacy"} & started
    with duckdb.connect(str(broken_run["warehouse"]), read_only=True) as con:
        schemas = {r[0] for r in con.execute("select distinct schema_name from duckdb_tables()").fetchall()}
    assert "marts" not in schemas and "analysis" not in schemas


def test_the_designed_orphan_sequencing_sample_only_warns(broken_run: dict) -> None:
    evaluation = _evaluations(broken_run["result"])["raw/seq_manifest:quality_suite"]
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "is not in the biospecimen log" in _failed_rows(evaluation)


def test_data_docs_and_quarantine_show_the_failures(broken_run: dict) -> None:
    evaluation = _evaluations(broken_run["result"])["raw/crf_ae:quality_suite"]
    index = Path(evaluation.metadata["data_docs"].value.removeprefix("file://"))
    page = Path(evaluation.metadata["validation_page"].value.removeprefix("file://"))
    assert index.exists() and page.exists()
    assert page.is_relative_to(index.parent)
    html = index.read_text()
    assert "FAILED (blocking)" in html
    for table in ("crf_dm", "crf_bs", "crf_ds", "crf_ex", "crf_ae"):
        assert f"raw.{table}" in html
    assert os.path.relpath(page, index.parent) in html  # the index links the validation page
    text = page.read_text()
    assert "AETOXGR" in text and "_row_number" in text
    # The ledger behind the index: every raw suite of this run, the broken ones failed.
    run = datadocs.latest_run(index.parent)
    assert run is not None
    statuses = {e["suite"]: e["status"] for e in run[1]}
    assert statuses["raw.crf_ae"] == "failed" and statuses["raw.crf_rand"] == "passed"
    assert statuses["raw.seq_manifest"] == "warning"

    with duckdb.connect(str(broken_run["warehouse"]), read_only=True) as con:
        rows = con.execute(
            "select suite, column_name, severity, row_key, value, reason from quality.quarantine "
            "where run_id = ? order by suite, column_name",
            [broken_run["result"].run_id],
        ).df()
        validations = con.execute(
            "select suite, status from quality.validations where run_id = ?", [broken_run["result"].run_id]
        ).fetchall()
    assert dict(validations)["raw.crf_ae"] == "failed" and dict(validations)["raw.seq_manifest"] == "warning"
    grade = rows[(rows["suite"] == "raw.crf_ae") & (rows["column_name"] == "AETOXGR")]
    assert len(grade) == 1 and grade["severity"].iloc[0] == "critical"
    assert json.loads(grade["row_key"].iloc[0]) == {"_source_file": "crf/ae.csv", "_row_number": 2}
    assert json.loads(grade["value"].iloc[0]) == {"AETOXGR": "7"}
    orphan = rows[rows["suite"] == "raw.seq_manifest"]
    assert len(orphan) == 1 and orphan["severity"].iloc[0] == "warning"
    assert "biospecimen log" in orphan["reason"].iloc[0]
    # No direct identifier reached the quarantine or Data Docs (the duplicate dm records carry names and MRNs).
    dm = _read(broken_run["landing"] / "crf" / "dm.csv")
    twin = dm[dm["SUBJID"] == "01-0002"]
    written = " ".join(
        [*rows["value"].fillna(""), *rows["reason"], html, *(p.read_text() for p in page.parent.rglob("*.html"))]
    )
    for column in ("PATNAME", "MRN", "BRTHDTC"):
        for value in twin[column]:
            assert value not in written, column


def test_a_date_after_the_cutoff_is_legitimate_in_raw(demo_landing: Path, tmp_path: Path, clean_env: None) -> None:
    from orchestration.assets.raw import raw_family_assets
    from orchestration.checks.quality import quality_checks
    from orchestration.resources import TrialSettings

    cutoff = "2024-12-31"
    settings = TrialSettings(**_settings_config(demo_landing, tmp_path / "warehouse.duckdb", cutoff))
    checks = quality_checks(raw_family_assets)
    assert [c.node_def.name for c in checks] == ["quality_raw"]
    result = dg.materialize([*raw_family_assets, *checks], resources={"settings": settings}, raise_on_error=False)
    assert result.success
    evaluations = _evaluations(result)
    assert evaluations["raw/crf_ae:quality_suite"].passed
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        after = con.execute("select count(*) from raw.crf_ae where try_cast(AESTDTC as date) > ?", [cutoff]).fetchone()[
            0
        ]
    assert after > 0  # the suites saw AEs after the cut-off and passed them


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium (/usr/bin/chromium) is not installed")
def test_data_docs_render_in_chromium(broken_run: dict, tmp_path: Path) -> None:
    """QA's view: the index shows the blocking failures, and the failing page names value, file and line,
    styled offline (the machine has no network: GX's CDN stylesheets cannot load)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    evaluation = _evaluations(broken_run["result"])["raw/crf_ae:quality_suite"]
    index = Path(evaluation.metadata["data_docs"].value.removeprefix("file://"))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            tab.goto(index.as_uri())
            # "Needs attention" heads the latest run: the five broken forms as blocking failures, then the
            # designed orphan sequencing sample as a warning.
            attention = tab.locator("table.attention")
            assert attention.get_by_text("FAILED (blocking)", exact=True).count() == 5
            assert attention.get_by_text("warning", exact=True).count() == 1
            assert attention.locator("tr").nth(6).locator("code").first.inner_text() == "raw.seq_manifest"
            raw = tab.locator("#layer-raw + table")
            assert raw.locator("tr").count() == 1 + len(raw_suites())  # header + every raw table's suite
            tab.screenshot(path=str(tmp_path / "index.png"))
            attention.locator("tr", has_text="raw.crf_ae").get_by_role("link", name="validation page").click()
            tab.wait_for_load_state()
            assert tab.url.endswith("raw.crf_ae.html")
            tab.get_by_text("AETOXGR is one of").first.scroll_into_view_if_needed()
            # The first unexpected-values table on the page is AETOXGR's (sections are in column order).
            row = tab.locator("table.table-bordered tbody tr").filter(has_text="crf/ae.csv").first
            assert row.is_visible()
            assert [c.strip() for c in row.locator("td").all_inner_texts()] == ["7", "1", "crf/ae.csv", "2"]
            # The offline stylesheet is applied: the failed icon is a red glyph, not an empty Font Awesome tag.
            icon = tab.locator(".fa-times.text-danger").first
            glyph = icon.evaluate("e => getComputedStyle(e, '::before').content")
            assert glyph == '"\u2718"'
            assert icon.evaluate("e => getComputedStyle(e).color") == "rgb(180, 35, 24)"
            tab.screenshot(path=str(tmp_path / "failed_page.png"))
        finally:
            browser.close()
    for name in ("index.png", "failed_page.png"):
        assert (tmp_path / name).stat().st_size > 20_000, name  # a rendered page, not a blank one
