"""Clinical endpoints end to end on the 120-patient demo trial (``make demo``'s data).

An unblinded build through the real Dagster job (in-process: the clinical path of ``refresh_all``, landing -> raw
-> dbt -> endpoint assets) writes every ``analysis`` table; the derived PFS/OS agree with the simulator's truth up
to the censoring rules; the PFS hazard ratio agrees with the truth; a blinded run carries no arm anywhere; and
``guttrial endpoints`` prints the same figures.

One build per test session (``_warehouse.unblinded_trial``, shared with ``test_microbiome_assets.py``, which also
runs the microbiome assets in it; about 2 minutes on an idle machine, dbt being most of it). The blinded endpoint run
re-runs
only the endpoint assets on a copy of that warehouse with the marts blinded (arm code set to the ``BLINDED``
placeholder, restricted schema dropped); a real blinded dbt build's ``analysis`` schema is scanned for arm
information by ``test_marts.py::test_blinded_warehouse_holds_no_arm_information`` (shared demo warehouse).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from _warehouse import UNBLINDED_TRIAL_PATIENTS, unblinded_trial

from analysis import endpoints as ep
from analysis import survival
from orchestration import cli
from orchestration import resources as res
from orchestration.analysis_io import read_marts

pytestmark = pytest.mark.slow

N_PATIENTS = UNBLINDED_TRIAL_PATIENTS
STUDY_ID = "HCC-GUT-01"


@dataclass(frozen=True)
class Built:
    out_dir: Path
    warehouse: Path
    blinded_warehouse: Path
    step_seconds: dict[str, float]

    @property
    def truth(self) -> Path:
        return self.out_dir / "truth"


def _blind_copy(source: Path, target: Path) -> None:
    """A copy of the warehouse whose marts look like a blinded build's, then the endpoint assets run blinded."""
    from orchestration.assets.endpoints import endpoint_assets

    shutil.copyfile(source, target)
    with duckdb.connect(str(target)) as con:
        con.execute("update marts.adsl set arm_code = 'BLINDED'")
        con.execute("drop schema if exists restricted cascade")
    result = dg.materialize(
        endpoint_assets,
        resources={"settings": res.TrialSettings(warehouse_path=str(target), unblinded="false")},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    trial = unblinded_trial(tmp_path_factory)  # shared with test_microbiome_assets.py
    blinded = tmp_path_factory.mktemp("endpoints_e2e") / "warehouse_blinded_copy.duckdb"
    _blind_copy(trial.warehouse, blinded)
    return Built(trial.out_dir, trial.warehouse, blinded, trial.step_seconds)


@pytest.fixture(scope="module")
def tables(built: Built) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        return {n: con.execute(f"select * from analysis.{n}").df() for group in ep.TABLES.values() for n in group}


@pytest.fixture(scope="module")
def marts(built: Built) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        return read_marts(con, ep.DOMAIN_MARTS["efficacy"])


@pytest.fixture(scope="module")
def truth(built: Built) -> pd.DataFrame:
    t = pd.read_csv(built.truth / "patients.csv", dtype={"SUBJID": str, "RANDNO": str})
    t["subject_id"] = STUDY_ID + "-" + t["SUBJID"]
    for c in ("rand_date", "true_progression_date", "true_death_date", "observed_pd_date", "dropout_date"):
        t[c] = pd.to_datetime(t[c])
    # A death is in the CRF when it happened before dropout and the data cut-off (the simulator's observation end).
    t["death_seen"] = t["os_event"].eq(1)
    t["censor_date"] = t["rand_date"] + pd.to_timedelta(t["true_os_days"].astype(float), unit="D")
    return t.set_index("subject_id")


@pytest.fixture(scope="module")
def params(built: Built) -> dict:
    return json.loads((built.truth / "params.json").read_text())


def _param(tables: dict[str, pd.DataFrame], paramcd: str) -> pd.DataFrame:
    a = tables["adtte"]
    out = a[a["PARAMCD"].eq(paramcd)].set_index("subject_id")
    out["ADT"] = pd.to_datetime(out["ADT"])
    return out


# ---------------------------------------------------------------------------------------------- tables


def test_every_analysis_table_is_written_with_rows(built: Built, tables: dict[str, pd.DataFrame]) -> None:
    print(f"unblinded {N_PATIENTS}-patient build, step seconds: {built.step_seconds}")
    assert {f"endpoints_{d}" for d in ep.TABLES} <= set(built.step_seconds)
    for domain, names in ep.TABLES.items():
        for name in names:
            assert len(tables[name]) > 0, (domain, name)
    run = tables["endpoint_run"].iloc[0]
    assert not run["blinded"]
    assert pd.isna(run["cutoff_date"])
    assert json.loads(run["config_json"])["sd_min_days"] == 42
    assert json.loads(run["row_counts_json"])["adtte"] == len(tables["adtte"])


def test_tables_have_sane_content(built: Built, tables: dict[str, pd.DataFrame]) -> None:
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        adsl = con.execute("select * from marts.adsl").df().set_index("subject_id")
    n = len(adsl)
    tp = tables["recist_timepoint_responses"]
    assert set(tp["criterion"]) == {"RECIST 1.1", "mRECIST"}
    assert set(tp["overall_response"]) <= {"CR", "PR", "SD", "NON-CR/NON-PD", "PD", "NE"}
    bor = tables["best_overall_response"]
    per_source = bor.groupby(["criterion", "evaluator", "confirmed"])["subject_id"].nunique()
    assert per_source[("RECIST 1.1", "DERIVED", True)] == n
    assert per_source[("RECIST 1.1", "INVESTIGATOR", False)] == n
    assert set(bor["bor"]) <= {"CR", "PR", "SD", "NON-CR/NON-PD", "PD", "NE", "MISSING"}
    # A confirmed responder is an unconfirmed responder too.
    wide = bor.pivot_table(index=["criterion", "evaluator", "subject_id"], columns="confirmed", values="responder")
    assert not (wide[True].astype(bool) & ~wide[False].astype(bool)).any()

    adtte = tables["adtte"]
    assert (adtte["AVAL"] >= 1).all()
    assert (pd.to_datetime(adtte["ADT"]) >= pd.to_datetime(adtte["STARTDT"])).all()
    assert adtte.groupby("PARAMCD")["subject_id"].apply(lambda s: s.is_unique).all()
    assert (adtte.loc[adtte["PARAMCD"].isin(["PFS", "OS", "PFS_INV"])].groupby("PARAMCD").size() == n).all()

    km = tables["km_estimates"]
    assert km["surv"].between(0, 1).all()
    for _, curve in km.groupby(["PARAMCD", "group"]):
        assert (np.diff(curve.sort_values("time")["surv"].to_numpy()) <= 1e-12).all()
    ss = tables["survival_summary"]
    ok = ss["median"].notna() & ss["lcl"].notna()
    assert (ss.loc[ok, "lcl"] <= ss.loc[ok, "median"]).all()
    rr = tables["response_rates"]
    assert ((rr["lcl"] <= rr["rate"]) & (rr["rate"] <= rr["ucl"])).all()
    assert (rr["x"] <= rr["n"]).all()

    conc = tables["response_concordance"].set_index("level")
    assert conc.loc["visit", "agreement"] > 0.95

    ae = tables["ae_summary"]
    assert (ae["n"] <= ae["n_population"]).all()
    assert ae.loc[ae["category"].eq("Any TEAE"), "n"].sum() > 0
    assert tables["lab_toxicity"]["worst_grade"].dropna().between(0, 4).all()
    qs = tables["qol_scores"]["score"].dropna()
    assert qs.between(0, 100).all()

    # Baseline ALBI and Child-Pugh agree with the mart's own baseline derivation (adsl rounds ALBI to 3 decimals).
    hf = tables["hepatic_function"]
    base = hf[hf["ablfl"]].set_index("subject_id")
    both = base.join(adsl[["albi_score", "child_pugh_score"]], suffixes=("", "_adsl"), how="inner")
    assert len(both) >= 0.9 * n
    assert (both["albi_score"] - both["albi_score_adsl"]).abs().max() < 5e-4
    cp = both.dropna(subset=["cp_score", "child_pugh_score"])
    assert len(cp) >= 0.9 * n and (cp["cp_score"].astype(int) == cp["child_pugh_score"].astype(int)).all()


# ---------------------------------------------------------------------------------------------- truth


def test_os_events_and_dates_match_the_truth(tables: dict[str, pd.DataFrame], truth: pd.DataFrame) -> None:
    os_ = _param(tables, "OS").join(truth, suffixes=("", "_truth"))
    event = os_["CNSR"].eq(0)
    assert (event == os_["death_seen"]).all()
    assert (os_.loc[event, "ADT"] == os_.loc[event, "true_death_date"]).all()
    assert set(os_.loc[~event, "CNSR"]) <= {6}
    cens = os_[~event]
    # Censored at the last known alive date: never after the end of observation, mostly exactly at it.
    assert (cens["ADT"] <= cens["censor_date"]).all()
    assert (cens["ADT"] == cens["censor_date"]).mean() > 0.9


def test_pfs_events_and_dates_match_the_truth_up_to_censoring_rules(
    built: Built, tables: dict[str, pd.DataFrame], truth: pd.DataFrame
) -> None:
    pfs = _param(tables, "PFS").join(truth, suffixes=("", "_truth"))
    event = pfs["CNSR"].eq(0)
    progression = event & pfs["EVNTDESC"].eq("PROGRESSIVE DISEASE")
    death = event & pfs["EVNTDESC"].eq("DEATH")
    observed_pd = pfs["observed_pd_date"].notna()
    # Progression events: the scan where the simulated reader (RECIST on the measured diameters) saw PD.
    assert (pfs.loc[progression, "ADT"] == pfs.loc[progression, "observed_pd_date"]).all()
    # ... which, when progression shows as new lesions or non-target progression, is the first scan at/after the
    # true progression (never later; measurement noise may let the target sum meet the PD rule earlier).
    visits = pd.read_csv(built.truth / "visits.csv", dtype={"SUBJID": str})
    visits = visits[visits["status"].ne("MISSED")]
    visits["subject_id"] = STUDY_ID + "-" + visits["SUBJID"]
    visits["actual_date"] = pd.to_datetime(visits["actual_date"])
    scans = visits.merge(truth[["true_progression_date"]], left_on="subject_id", right_index=True)
    after = scans[scans["actual_date"] >= scans["true_progression_date"]]
    first_after = after.groupby("subject_id")["actual_date"].min()
    lesion_mode = progression & pfs["progression_mode"].isin(["NEW LESION", "NON-TARGET PROGRESSION"])
    expected = pd.Series(pfs.index.map(first_after), index=pfs.index)
    assert (pfs.loc[lesion_mode, "ADT"] <= expected[lesion_mode].fillna(pd.Timestamp.max)).all()
    tp = tables["recist_timepoint_responses"]
    tp = tp[tp["criterion"].eq("RECIST 1.1")].assign(assessment_date=lambda d: pd.to_datetime(d["assessment_date"]))
    pd_visit = (
        pfs[["ADT"]].reset_index().merge(tp, left_on=["subject_id", "ADT"], right_on=["subject_id", "assessment_date"])
    )
    by_lesions = pd_visit.loc[pd_visit["new_lesion"].eq("Y") | pd_visit["ntl_response"].eq("PD"), "subject_id"]
    shown = lesion_mode & pfs.index.isin(by_lesions)
    assert shown.sum() > 20
    assert (pfs.loc[shown, "ADT"] == expected[shown]).all()
    # Deaths without a PD scan before them: the death date.
    assert (pfs.loc[death, "ADT"] == pfs.loc[death, "true_death_date"]).all()
    assert not (death & observed_pd & (pfs["observed_pd_date"] < pfs["true_death_date"])).any()
    # Every observed PD or death is an event unless a censoring rule applies (NACT 2, >= 2 missed scans 3).
    had_event = observed_pd | pfs["death_seen"]
    assert set(pfs.loc[had_event & ~event, "CNSR"]) <= {2, 3}
    assert (had_event & ~event).sum() <= 3
    assert not (event & ~had_event).any()
    # Censoring never falls after a true event, and NE scans are never censoring dates.
    cens = pfs[~event]
    true_event = cens[["true_progression_date", "true_death_date"]].min(axis=1)
    assert (cens["ADT"] < true_event.fillna(pd.Timestamp.max)).all()
    ne = tp[tp["overall_response"].eq("NE")]
    ne_dates = set(zip(ne["subject_id"], pd.to_datetime(ne["assessment_date"]), strict=True))
    assert not {(s, d) for s, d in zip(cens.index, cens["ADT"], strict=True)} & ne_dates


def test_pfs_hazard_ratio_agrees_with_the_truth(
    tables: dict[str, pd.DataFrame], truth: pd.DataFrame, params: dict
) -> None:
    true_hr = params["params"]["pfs_hr_capsule"]
    comp = tables["survival_comparisons"]
    pfs = comp[comp["PARAMCD"].eq("PFS")].set_index("stratified")
    assert set(pfs["group"]) == {"CAPSULE"} and set(pfs["reference"]) == {"PLACEBO"}
    for stratified in (False, True):
        row = pfs.loc[stratified]
        assert row["hr_lcl"] <= true_hr <= row["hr_ucl"], (stratified, row.to_dict())
    # The derived (observed, interval-censored) PFS estimates the same HR as the simulator's latent PFS times.
    latent = survival.cox_hr(truth.reset_index(), "true_pfs_days", "pfs_event", "arm", "PLACEBO")
    assert abs(math.log(pfs.loc[False, "hr"] / latent.hr)) < 0.15, (pfs.loc[False, "hr"], latent.hr)


def test_discordant_visits_are_the_simulated_investigator_discordances(
    built: Built, tables: dict[str, pd.DataFrame]
) -> None:
    disc = pd.read_csv(built.truth / "rs_discordance.csv", dtype=str)
    expected = set(zip(STUDY_ID + "-" + disc["SUBJID"], disc["VISIT"], strict=True))
    listed = tables["response_discordant_visits"]
    assert set(zip(listed["subject_id"], listed["visit"], strict=True)) == expected
    merged = listed.merge(
        disc.assign(subject_id=STUDY_ID + "-" + disc["SUBJID"]), left_on=["subject_id", "visit"],
        right_on=["subject_id", "VISIT"],
    )  # fmt: skip
    assert (merged["derived_response"] == merged["derived_overall"]).all()
    assert (merged["investigator_response"] == merged["recorded_overall"]).all()


# ---------------------------------------------------------------------------------------------- blinding


def test_unblinded_tables_carry_the_arm_and_comparisons(tables: dict[str, pd.DataFrame]) -> None:
    assert set(tables["adtte"]["arm"]) == {"CAPSULE", "PLACEBO"}
    assert set(tables["survival_summary"]["group"]) == {"CAPSULE", "PLACEBO"}
    assert set(tables["survival_comparisons"]["PARAMCD"]) == set(ep.COMPARED_PARAMS)
    assert len(tables["response_rate_differences"]) > 0


def test_blinded_run_has_no_arm_specific_output(built: Built) -> None:
    with duckdb.connect(str(built.blinded_warehouse), read_only=True) as con:
        names = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'analysis'"
        ).fetchall()]  # fmt: skip
        ours = [n for domain_tables in ep.TABLES.values() for n in domain_tables]
        assert set(ours) <= set(names)
        for table in ours:  # (other analyses' tables were not re-run in this copy)
            columns = con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'analysis' and table_name = ?",
                [table],
            ).fetchall()
            assert not [c for c, _ in columns if c.lower() in ("arm", "arm_code", "trt01p", "group_arm")], table
            for column, dtype in columns:
                if dtype != "VARCHAR":
                    continue
                hits = con.execute(
                    f'select count(*) from analysis."{table}" where upper("{column}") like \'%PLACEBO%\' '
                    f"or upper(trim(\"{column}\")) = 'CAPSULE'"
                ).fetchone()[0]
                assert hits == 0, (table, column)
        for table in ("survival_comparisons", "response_rate_differences"):
            assert con.execute(f"select count(*) from analysis.{table}").fetchone()[0] == 0
        for table in ("survival_summary", "response_rates", "ae_summary", "qol_change_summary"):
            groups = {r[0] for r in con.execute(f'select distinct "group" from analysis.{table}').fetchall()}
            assert groups == {"POOLED"}, table
        assert con.execute("select blinded from analysis.endpoint_run").fetchone()[0] is True


def test_blinded_mode_drops_arms_even_when_the_marts_carry_them(marts: dict[str, pd.DataFrame]) -> None:
    out = ep.compute_efficacy(marts, blinded=True)
    for name, frame in out.items():
        assert ep.ARM_COL not in frame.columns, name
        text = frame.select_dtypes(include=["object", "string"])
        assert not text.isin(["CAPSULE", "PLACEBO"]).any().any(), name


# ---------------------------------------------------------------------------------------------- command line


def _endpoints_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    capsys.readouterr()
    assert cli.main(["endpoints", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_endpoints_command_reports_the_figures(
    built: Built, tables: dict[str, pd.DataFrame], capsys: pytest.CaptureFixture[str]
) -> None:
    figures = _endpoints_json(capsys, "--warehouse", str(built.warehouse))
    assert figures["blinded"] is False and figures["source"] == "analysis tables"
    surv = {(r["endpoint"], r["group"]): r for r in figures["survival"]}
    ss = tables["survival_summary"].set_index(["PARAMCD", "group"])
    for key in (("PFS", "CAPSULE"), ("PFS", "PLACEBO"), ("OS", "CAPSULE")):
        assert surv[key]["n"] == ss.loc[key, "n"] and surv[key]["events"] == ss.loc[key, "events"]
        if not pd.isna(ss.loc[key, "median"]):
            assert surv[key]["median_days"] == pytest.approx(ss.loc[key, "median"])
        assert surv[key]["rate_6m"] == pytest.approx(ss.loc[key, "surv_6m"])
    comp = tables["survival_comparisons"]
    strat = comp[comp["PARAMCD"].eq("PFS") & comp["stratified"]].iloc[0]
    assert surv[("PFS", "CAPSULE")]["stratified_hr"] == pytest.approx(strat["hr"])
    assert surv[("PFS", "CAPSULE")]["stratified_logrank_p"] == pytest.approx(strat["logrank_p"])
    orr = [r for r in figures["response"] if r["endpoint"] == "ORR" and r["group"] == "CAPSULE"]
    assert orr and all(r["lcl"] <= r["rate"] <= r["ucl"] for r in orr)
    assert {r["endpoint"] for r in figures["response_differences"]} == {"ORR", "DCR"}

    capsys.readouterr()
    assert cli.main(["endpoints", "--warehouse", str(built.warehouse)]) == 0
    text = capsys.readouterr().out
    assert "UNBLINDED" in text and "HR (95% CI)" in text and "ORR" in text

    blinded = _endpoints_json(capsys, "--warehouse", str(built.blinded_warehouse))
    assert blinded["blinded"] is True
    assert {r["group"] for r in blinded["survival"]} == {"POOLED"}
    assert not any("hr" in r for r in blinded["survival"]) and blinded["response_differences"] == []

    assert cli.main(["endpoints", "--warehouse", str(built.out_dir / "missing.duckdb")]) == 2


def test_a_cutoff_uses_nothing_after_it(
    built: Built, marts: dict[str, pd.DataFrame], truth: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    cutoff = pd.Timestamp("2025-01-31")
    out = ep.compute_efficacy(marts, cutoff=cutoff.date(), blinded=False)
    adtte = out["adtte"]
    assert (pd.to_datetime(adtte["ADT"]) <= cutoff).all()
    assert (pd.to_datetime(out["recist_timepoint_responses"]["assessment_date"]) <= cutoff).all()
    os_ = adtte[adtte["PARAMCD"].eq("OS")].set_index("subject_id").join(truth, suffixes=("", "_truth"))
    dead_by_cutoff = os_["death_seen"] & (os_["true_death_date"] <= cutoff)
    assert (os_["CNSR"].eq(0) == dead_by_cutoff).all()
    assert out["endpoint_run"]["cutoff_date"].iloc[0] == cutoff

    figures = _endpoints_json(capsys, "--warehouse", str(built.warehouse), "--cutoff", "2025-01-31")
    assert figures["cutoff"] == "2025-01-31" and figures["source"].startswith("recomputed")
    pfs = {r["group"]: r for r in figures["survival"] if r["endpoint"] == "PFS"}
    ss = out["survival_summary"].set_index(["PARAMCD", "group"])
    assert pfs["CAPSULE"]["events"] == ss.loc[("PFS", "CAPSULE"), "events"]
