"""Marts and analysis suites: they pass on the demo trial, and a broken row fails the right expectation, named by
its column and keys.

One 30-patient warehouse serves the module: a copy of the shared marts warehouse (tests/_warehouse.py) on which
the endpoint, microbiome and metabolomics assets run blinded (few subsampling iterations and permutations). The
negative tests break rows inside a transaction that is rolled back, so the suites see the broken table exactly as
they would in a real run (their SQL rule flags included).
"""

from __future__ import annotations

import datetime
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
import yaml
from _warehouse import DBT_PROJECT, DemoWarehouse, shared_demo_warehouse, subject_id

from expectations import FailedExpectation, QualityRunner, SuiteSpec, ValidationSummary
from expectations.suites import marts as mart_module
from expectations.suites.analysis import analysis_suites
from expectations.suites.marts import mart_suites

ITERATIONS = 10  # rarefaction iterations (real runs: 1,000): the suites check ranges, not the estimates
PERMUTATIONS = 99
#: Column names that would be direct identifiers; never a row id.
IDENTIFYING = ("name", "initials", "birth", "mrn", "address", "phone")


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoWarehouse:
    return shared_demo_warehouse(tmp_path_factory)


@pytest.fixture(scope="module")
def warehouse(demo: DemoWarehouse, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared marts plus every analysis table, computed blinded by the Dagster assets."""
    from orchestration.assets.endpoints import endpoint_assets
    from orchestration.assets.metabolomics import metabolite_genus_correlations, metabolomics_analysis
    from orchestration.assets.microbiome import ASSET_TABLES, microbiome_assets
    from orchestration.resources import TrialSettings

    path = tmp_path_factory.mktemp("suites") / "warehouse.duckdb"
    shutil.copy(demo.warehouse, path)
    config = {"iterations": ITERATIONS, "permutations": PERMUTATIONS}
    result = dg.materialize(
        [*endpoint_assets, metabolomics_analysis, metabolite_genus_correlations, *microbiome_assets],
        resources={"settings": TrialSettings(warehouse_path=str(path), unblinded="false")},
        run_config={"ops": {f"microbiome_{name}": {"config": config} for name in ASSET_TABLES}},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    return path


@pytest.fixture(scope="module")
def con(warehouse: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(warehouse))
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> QualityRunner:
    return QualityRunner(tmp_path_factory.mktemp("gx") / "quality")


@pytest.fixture(scope="module")
def simulated_cutoff(demo: DemoWarehouse) -> datetime.date:
    return datetime.date.fromisoformat(json.loads((demo.truth / "params.json").read_text())["data_cutoff_date"])


# ------------------------------------------------------------------------------------------------ helpers


def frame(con: duckdb.DuckDBPyConnection, spec: SuiteSpec, *changes: str) -> pd.DataFrame:
    """The suite's rows after ``changes`` (SQL), which are rolled back afterwards."""
    con.execute("begin transaction")
    try:
        for change in changes:
            con.execute(change)
        return con.sql(spec.query).df()
    finally:
        con.execute("rollback")


def validate(
    runner: QualityRunner, con: duckdb.DuckDBPyConnection, spec: SuiteSpec, *changes: str
) -> ValidationSummary:
    return runner.validate(spec, frame(con, spec, *changes))


def failures_on(summary: ValidationSummary, column: str) -> list[FailedExpectation]:
    """Failures on ``column``; a pair rule is reported on ``"<column A>, <column B>"``."""
    return [f for f in summary.failed if f.column == column]


def one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple:
    row = con.execute(sql).fetchone()
    assert row is not None, sql
    return row


def described(summaries: dict[str, ValidationSummary]) -> str:
    return "\n".join(f"{k}: {f.describe()} {f.sample[:3]}" for k, s in summaries.items() for f in s.failed)


# ------------------------------------------------------------------------------------------------ registry


def test_suites_are_named_by_layer_and_table_with_keys_as_row_ids() -> None:
    for layer, suites in (("marts", mart_suites()), ("analysis", analysis_suites())):
        for key, spec in suites.items():
            assert spec.name == f"{layer}.{key}"
            table, _, aspect = key.partition(".")
            # One critical suite per table; the dotted keys are its warning suites.
            assert spec.critical is (aspect == ""), key
            assert f"{layer}.{table}" in spec.query, key
            assert spec.row_id and spec.description, key
            assert not [c for c in spec.row_id if any(word in c.lower() for word in IDENTIFYING)], key
            assert callable(spec.expectations)


def test_thresholds_are_the_pipelines_and_the_protocols() -> None:
    from analysis.metabolomics.steps import PrepareConfig
    from analysis.microbiome.pipeline import MicrobiomeConfig

    config = MicrobiomeConfig()
    assert config.low_depth == mart_module.MIN_LIBRARY_SIZE
    assert config.max_unassigned == mart_module.MAX_UNASSIGNED_SHARE
    assert PrepareConfig().qc_rsd_threshold == mart_module.MAX_QC_RSD_PCT
    dbt_vars = yaml.safe_load((DBT_PROJECT / "dbt_project.yml").read_text())["vars"]
    assert dbt_vars["weight_band_threshold_kg"] == mart_module.WEIGHT_BAND_KG
    assert dbt_vars["pd1_planned_dose_mg"] == mart_module.PD1_DOSE_MG
    assert dbt_vars["capsules_per_day"] == mart_module.CAPSULES_PER_DAY


def test_every_mart_and_analysis_table_has_a_critical_suite(con: duckdb.DuckDBPyConnection) -> None:
    for layer, suites in (("marts", mart_suites()), ("analysis", analysis_suites())):
        tables = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = ?", [layer]
            ).fetchall()
        }
        assert len(tables) >= (18 if layer == "marts" else 50)
        critical = {key for key, spec in suites.items() if spec.critical}
        assert critical == tables, f"{layer}: no suite for {tables - critical}, no table for {critical - tables}"
        assert {key.split(".")[0] for key in suites} == tables


# ------------------------------------------------------------------------------------------------ clean demo


def year_only_therapies(demo: DemoWarehouse, con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The simulator's subsequent therapies delivered with only a year (``2025-UNK-UNK``), with the patient's
    randomisation year and the true start date."""
    mess = pd.read_csv(demo.truth / "mess.csv", dtype=str).query("form == 'cm' and column == 'CMSTDTC'")
    mess = mess[mess["written_value"].str.fullmatch(r"\d{4}-UNK-UNK")]
    randomised = con.execute("select subject_id, year(randomisation_date) as year from marts.adsl").df()
    return mess.assign(
        subject_id=mess["SUBJID"].map(subject_id),
        source_row=mess["line"].astype(int),
        year=mess["written_value"].str[:4].astype(int),
    ).merge(randomised, on="subject_id", suffixes=("", "_randomised"))


def test_mart_suites_pass_on_the_demo_and_warn_about_its_deliberate_mess(
    demo: DemoWarehouse, con: duckdb.DuckDBPyConnection, runner: QualityRunner
) -> None:
    summaries = {key: validate(runner, con, spec) for key, spec in mart_suites().items()}
    # Known pipeline fault (see test_therapies_with_only_a_later_year_count_as_nact): the only blocking failure.
    critical = {k: s for k, s in summaries.items() if s.critical and not s.success}
    assert set(critical) <= {"subsequent_therapy"}, described(critical)
    therapies = year_only_therapies(demo, con)
    later = therapies[therapies["year"] > therapies["year_randomised"]]
    if critical:
        [fault] = critical["subsequent_therapy"].failed
        assert fault.column == "after_randomisation_fl_consistent"
        assert sorted((r["subject_id"], r["source_row"]) for r in fault.sample) == sorted(
            zip(later["subject_id"], later["source_row"], strict=True)
        )
    warned = {k for k, s in summaries.items() if not s.success} - set(critical)
    expected = {"exposure.dose_band", "unlinked_omics_samples.open_issues"}
    if (therapies["year"] == therapies["year_randomised"]).any():
        expected.add("subsequent_therapy.nact_status")
    assert warned == expected, described(summaries)

    # The lenvatinib starting doses off the weight band are the simulator's protocol deviations, first records.
    deviations = pd.read_csv(demo.truth / "protocol_deviations.csv", dtype={"SUBJID": str})
    [dose_band] = summaries["exposure.dose_band"].failed
    assert sorted((r["subject_id"], r["drug_record_number"]) for r in dose_band.sample) == sorted(
        (subject_id(s), 1) for s in deviations["SUBJID"]
    )
    # The open linkage issue is the simulator's orphan library.
    orphans = pd.read_csv(demo.truth / "sequencing_samples.csv").query("orphan")
    [issue] = summaries["unlinked_omics_samples.open_issues"].failed
    assert [(r["batch_id"], r["omics_sample_id"], r["issue"]) for r in issue.sample] == [
        (b, s, "ORPHAN_BARCODE") for b, s in zip(orphans["batch"], orphans["sample_id"], strict=True)
    ]


def test_analysis_suites_pass_on_the_demo(con: duckdb.DuckDBPyConnection, runner: QualityRunner) -> None:
    summaries = {key: validate(runner, con, spec) for key, spec in analysis_suites().items()}
    failed = {k: s for k, s in summaries.items() if not s.success}
    assert not failed, described(failed)
    assert summaries["km_estimates"].n_rows > 0 and summaries["survival_comparisons"].n_rows == 0


def test_a_cutoff_guards_the_marts_cutoff_filter(
    con: duckdb.DuckDBPyConnection, runner: QualityRunner, simulated_cutoff: datetime.date
) -> None:
    # Built without a cut-off, the demo's records end at the simulated cut-off: that one passes...
    assert validate(runner, con, mart_suites(simulated_cutoff)["adverse_events"]).success
    # ... an earlier one finds exactly the records after it, as a build that forgot to filter would have them.
    last = one(con, "select max(start_date) from marts.adverse_events")[0]
    cutoff = last - datetime.timedelta(days=60)
    late = one(con, f"select count(*) from marts.adverse_events where start_date > date '{cutoff}'")[0]
    assert late > 0
    summary = validate(runner, con, mart_suites(cutoff)["adverse_events"])
    assert not summary.success and summary.critical
    [start] = failures_on(summary, "start_date")
    assert start.unexpected_count == late
    assert set(start.sample[0]) == {"start_date", "subject_id", "ae_spid"}
    # The endpoint run record must say which cut-off the analysis tables used (this run: none).
    endpoint_run = validate(runner, con, analysis_suites(cutoff)["endpoint_run"])
    assert [f.column for f in endpoint_run.failed] == ["cutoff_recorded"]


def test_therapies_with_only_a_later_year_count_as_nact(
    demo: DemoWarehouse, con: duckdb.DuckDBPyConnection, runner: QualityRunner
) -> None:
    therapies = year_only_therapies(demo, con)
    assert (therapies["year"] > therapies["year_randomised"]).any()  # the demo has such a therapy
    assert validate(runner, con, mart_suites()["subsequent_therapy"]).success


def test_nact_flag_follows_the_delivered_year_when_the_month_is_unknown(
    demo: DemoWarehouse, con: duckdb.DuckDBPyConnection, runner: QualityRunner
) -> None:
    spec = mart_suites()["subsequent_therapy"]
    therapies = year_only_therapies(demo, con)
    later = therapies[therapies["year"] > therapies["year_randomised"]]
    rows = ", ".join(str(r) for r in later["source_row"])
    # Flagged as the documented rule demands (started after randomisation), the suite passes ...
    assert validate(
        runner,
        con,
        spec,
        f"update marts.subsequent_therapy set after_randomisation_fl = 'Y' where source_row in ({rows})",
    ).success
    # ... and one delivered with a year before randomisation must not count as NACT.
    subject, row = later["subject_id"].iloc[0], int(later["source_row"].iloc[0])
    summary = validate(
        runner,
        con,
        spec,
        f"update marts.subsequent_therapy set after_randomisation_fl = 'Y' where source_row in ({rows})",
        f"update marts.adsl set randomisation_date = date '2030-01-15' where subject_id = '{subject}'",
    )
    [flag] = [f for f in summary.failed if f.column == "after_randomisation_fl_consistent"]
    assert {"after_randomisation_fl_consistent": False, "subject_id": subject, "source_file": "crf/cm.csv",
            "source_row": row} in flag.sample  # fmt: skip


# ------------------------------------------------------------------------------------------------ broken rows


def test_ctcae_grade_7(con: duckdb.DuckDBPyConnection, runner: QualityRunner) -> None:
    subject, spid = one(con, "select subject_id, ae_spid from marts.adverse_events order by all limit 1")
    summary = validate(
        runner,
        con,
        mart_suites()["adverse_events"],
        f"update marts.adverse_events set ctcae_grade = 7 where subject_id = '{subject}' and ae_spid = '{spid}'",
    )
    assert not summary.success
    [grade] = summary.failed
    assert grade.column == "ctcae_grade" and grade.unexpected_count == 1
    assert grade.sample == [{"ctcae_grade": 7, "subject_id": subject, "ae_spid": spid}]


def test_ae_ending_before_it_starts(con: duckdb.DuckDBPyConnection, runner: QualityRunner) -> None:
    subject, spid = one(
        con,
        "select subject_id, ae_spid from marts.adverse_events where end_date > start_date + 3 order by all limit 1",
    )
    summary = validate(
        runner,
        con,
        mart_suites()["adverse_events"],
        "update marts.adverse_events set end_date = start_date - interval 3 day "
        f"where subject_id = '{subject}' and ae_spid = '{spid}'",
    )
    [order] = summary.failed
    assert order.expectation == "expect_column_pair_values_a_to_be_greater_than_b"
    assert order.column == "end_date, start_date" and order.unexpected_count == 1
    assert (order.sample[0]["subject_id"], order.sample[0]["ae_spid"]) == (subject, spid)


def test_death_before_randomisation(con: duckdb.DuckDBPyConnection, runner: QualityRunner) -> None:
    subject = one(con, "select subject_id from marts.adsl where death_date is not null order by 1 limit 1")[0]
    summary = validate(
        runner,
        con,
        mart_suites()["adsl"],
        f"update marts.adsl set death_date = randomisation_date - interval 10 day where subject_id = '{subject}'",
    )
    assert not summary.success and summary.critical
    [death] = failures_on(summary, "death_date, randomisation_date")
    assert death.unexpected_count == 1 and death.sample[0]["subject_id"] == subject


def test_nodal_target_measured_on_its_long_axis(con: duckdb.DuckDBPyConnection, runner: QualityRunner) -> None:
    subject, visit, lesion = one(
        con,
        "select subject_id, visit, lesion_id from marts.tumor_measurements "
        "where is_nodal = 'Y' and lesion_category = 'TARGET' order by all limit 1",
    )
    summary = validate(
        runner,
        con,
        mart_suites()["tumor_measurements"],
        f"update marts.tumor_measurements set axis = 'LONG' where subject_id = '{subject}' and visit = '{visit}' "
        f"and lesion_id = '{lesion}'",
    )
    [axis] = summary.failed
    assert axis.column == "axis_matches_lesion" and axis.unexpected_count == 1
    assert axis.sample == [{"axis_matches_lesion": False, "subject_id": subject, "visit": visit, "lesion_id": lesion}]


def test_negative_read_count(con: duckdb.DuckDBPyConnection, runner: QualityRunner) -> None:
    batch, sample, feature = one(
        con, "select batch_id, sample_id, feature_id from marts.taxa_counts order by all limit 1"
    )
    summary = validate(
        runner,
        con,
        mart_suites()["taxa_counts"],
        f"update marts.taxa_counts set read_count = -5 where batch_id = '{batch}' and sample_id = '{sample}' "
        f"and feature_id = '{feature}'",
    )
    [count] = summary.failed
    assert count.column == "read_count"
    assert count.sample == [{"read_count": -5, "batch_id": batch, "sample_id": sample, "feature_id": feature}]


def test_p_value_above_one(con: duckdb.DuckDBPyConnection, runner: QualityRunner) -> None:
    keys = ("analysis", "rank", "visit", "contrast", "taxon")
    row = one(con, f"select {', '.join(keys)} from analysis.differential_abundance order by all limit 1")
    where = " and ".join(f"{k} = '{v}'" for k, v in zip(keys, row, strict=True))
    summary = validate(
        runner,
        con,
        analysis_suites()["differential_abundance"],
        f"update analysis.differential_abundance set p_value = 1.3 where {where}",
    )
    assert not summary.success and summary.critical
    [p_value] = failures_on(summary, "p_value")
    assert p_value.unexpected_count == 1
    assert p_value.sample == [{"p_value": 1.3, **dict(zip(keys, row, strict=True))}]
    # The BH q-value of that test is now below its p-value: reported too, on the same row.
    [q_value] = failures_on(summary, "q_value_not_below_p_value")
    assert q_value.sample[0]["taxon"] == row[-1]


def test_12_mg_lenvatinib_at_55_kg(con: duckdb.DuckDBPyConnection, runner: QualityRunner) -> None:
    subject = one(
        con,
        "select subject_id from marts.adsl a where baseline_weight_kg < 60 and exists (select 1 from "
        "marts.exposure e where e.subject_id = a.subject_id and drug = 'LENVATINIB' and dose_band_deviation_fl = 'N' "
        "and drug_record_number = 1) order by 1 limit 1",
    )[0]
    where = f"subject_id = '{subject}' and drug = 'LENVATINIB' and drug_record_number = 1"
    changes = (
        f"update marts.adsl set baseline_weight_kg = 55 where subject_id = '{subject}'",
        f"update marts.exposure set dose = 12 where {where}",
    )
    suites = mart_suites()
    # Recorded as if it were the band dose: the deviation flag is wrong, which blocks (the endpoints trust it).
    summary = validate(runner, con, suites["exposure"], *changes)
    [flag] = summary.failed
    assert flag.column == "dose_band_deviation_fl_consistent"
    assert flag.sample == [
        {
            "dose_band_deviation_fl_consistent": False,
            "subject_id": subject,
            "drug": "LENVATINIB",
            "drug_record_number": 1,
        }
    ]
    # Flagged as the protocol deviation it is: the contract holds, and the warning lists the row for review.
    flagged = (*changes, f"update marts.exposure set dose_band_deviation_fl = 'Y' where {where}")
    assert validate(runner, con, suites["exposure"], *flagged).success
    warning = validate(runner, con, suites["exposure.dose_band"], *flagged)
    assert not warning.success and not warning.critical
    assert {"subject_id": subject, "drug": "LENVATINIB", "drug_record_number": 1} in [
        {k: r[k] for k in ("subject_id", "drug", "drug_record_number")} for r in warning.failed[0].sample
    ]


def test_sample_of_an_unrandomised_patient(con: duckdb.DuckDBPyConnection, runner: QualityRunner) -> None:
    barcode = one(con, "select specimen_barcode from marts.samples order by 1 limit 1")[0]
    summary = validate(
        runner,
        con,
        mart_suites()["samples"],
        f"update marts.samples set subject_id = 'HCC-GUT-01-01-9999' where specimen_barcode = '{barcode}'",
    )
    [orphan] = summary.failed
    assert orphan.column == "patient_randomised"
    assert orphan.sample == [{"patient_randomised": False, "specimen_barcode": barcode}]


def test_kaplan_meier_curve_that_rises(con: duckdb.DuckDBPyConnection, runner: QualityRunner) -> None:
    time = one(
        con,
        "select max(time) from analysis.km_estimates where \"PARAMCD\" = 'OS' and surv < 1",
    )[0]
    summary = validate(
        runner,
        con,
        analysis_suites()["km_estimates"],
        f"update analysis.km_estimates set surv = 1, lower = 1, upper = 1 where \"PARAMCD\" = 'OS' and time = {time}",
    )
    [monotone] = summary.failed
    assert monotone.column == "survival_non_increasing"
    assert monotone.sample == [{"survival_non_increasing": False, "PARAMCD": "OS", "group": "POOLED", "time": time}]


def test_arm_comparison_in_a_blinded_warehouse_with_hr_outside_its_ci(
    con: duckdb.DuckDBPyConnection, runner: QualityRunner
) -> None:
    spec = analysis_suites()["survival_comparisons"]
    rows = frame(
        con,
        spec,
        "insert into analysis.survival_comparisons values "
        "('OS', 'CAPSULE', 'PLACEBO', false, '', 1.2, 0.27, 0.5, 0.6, 1.2, 0.27)",
    )
    summary = runner.validate(spec, rows)
    assert {f.column for f in summary.failed} == {"unblinded_run", "group_fits_blinding", "hr, hr_lcl"}
    [hr] = failures_on(summary, "hr, hr_lcl")
    assert hr.sample[0]["hr"] == 0.5 and hr.sample[0]["hr_lcl"] == 0.6
    # The arm label of the leaked row never reaches the frame nor the failure report.
    assert "CAPSULE" not in rows.to_string() and "CAPSULE" not in summary.failures_markdown()


def test_arm_codes_never_reach_a_frame(con: duckdb.DuckDBPyConnection, runner: QualityRunner) -> None:
    subject = one(con, "select subject_id from marts.adsl order by 1 limit 1")[0]
    leak = f"update marts.adsl set arm_code = 'CAPSULE' where subject_id = '{subject}'"
    adsl = mart_suites()["adsl"]
    rows = frame(con, adsl, leak)
    assert "arm_code" not in rows.columns
    summary = runner.validate(adsl, rows)
    [arm] = summary.failed
    assert arm.column == "arm_code_valid" and arm.sample == [{"arm_code_valid": False, "subject_id": subject}]
    assert "CAPSULE" not in summary.failures_markdown()
    # In an unblinded warehouse (it holds the restricted list) the arms are expected, still never read.
    unblinded = (
        "create schema restricted",
        "create table restricted.randomisation_list (randno varchar, arm varchar)",
        "update marts.adsl set arm_code = case when hash(subject_id) % 2 = 0 then 'CAPSULE' else 'PLACEBO' end",
        "alter table analysis.adtte add column arm varchar default 'PLACEBO'",
    )
    assert validate(runner, con, adsl, *unblinded).success
    adtte = analysis_suites()["adtte"]
    rows = frame(con, adtte, *unblinded)
    assert "arm" not in rows.columns and runner.validate(adtte, rows).success
    # An arm column in a blinded warehouse is a leak.
    summary = validate(runner, con, adtte, "alter table analysis.adtte add column arm varchar default 'PLACEBO'")
    assert [f.column for f in summary.failed] == ["no_arm_in_blinded_run"]


def test_bilirubin_in_mg_dl_is_quarantined_not_blocking(con: duckdb.DuckDBPyConnection, runner: QualityRunner) -> None:
    subject, day, visit = one(
        con, "select subject_id, collection_date, visit from marts.labs where test_code = 'BILI' order by all limit 1"
    )
    where = f"subject_id = '{subject}' and test_code = 'BILI' and collection_date = '{day}' and visit = '{visit}'"
    change = f"update marts.labs set standard_value = 0.6 where {where}"
    suites = mart_suites()
    assert validate(runner, con, suites["labs"], change).success
    summary = validate(runner, con, suites["labs.plausibility"], change)
    assert not summary.success and not summary.critical
    [bili] = summary.failed
    assert bili.column == "standard_value" and bili.unexpected_count == 1
    assert bili.sample[0]["standard_value"] == 0.6 and bili.sample[0]["subject_id"] == subject
