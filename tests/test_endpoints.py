"""Endpoint adapters (marts -> pure modules), the cut-off, blinding guards and the atomic writer; fast, no build.

The end-to-end checks against the simulator's truth are in test_endpoints_e2e.py.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest

from analysis import endpoints as ep
from orchestration.analysis_io import read_analysis, write_tables


def _adsl(arm: list[str]) -> pd.DataFrame:
    n = len(arm)
    return pd.DataFrame(
        {
            "subject_id": [f"S{i}" for i in range(n)],
            "randomisation_date": pd.to_datetime(["2024-01-01"] * n),
            "randomisation_stratum": ["BCLC B", "BCLC C"] * (n // 2) + ["BCLC B"] * (n % 2),
            "arm_code": arm,
            "treatment_start_date": pd.to_datetime(["2024-01-03"] * n),
            "treatment_end_date": pd.to_datetime(["2024-12-31"] * n),
            "measurable_disease_fl": ["Y"] * n,
            "response_evaluable_fl": ["Y"] * n,
            "safety_fl": ["Y"] * (n - 1) + ["N"],
            "death_date": [pd.NaT] * n,
            "last_known_alive_date": pd.to_datetime(["2024-12-31"] * n),
            "ascites": ["NONE"] * n,
            "encephalopathy": ["NONE"] * n,
        }
    )


def test_blinded_subjects_carry_no_arm_and_unblinded_refuses_the_placeholder() -> None:
    blinded = ep.subjects_from_adsl(_adsl(["CAPSULE", "PLACEBO"]), blinded=True)
    assert ep.ARM_COL not in blinded.columns
    assert list(blinded["stratum"]) == ["BCLC B", "BCLC C"]
    assert list(blinded["safety"]) == [True, False]
    unblinded = ep.subjects_from_adsl(_adsl(["CAPSULE", "PLACEBO"]), blinded=False)
    assert list(unblinded[ep.ARM_COL]) == ["CAPSULE", "PLACEBO"]
    with pytest.raises(ValueError, match="BLINDED placeholder"):
        ep.subjects_from_adsl(_adsl(["BLINDED", "BLINDED"]), blinded=False)


def test_nact_is_the_first_therapy_on_or_after_randomisation() -> None:
    subjects = ep.subjects_from_adsl(_adsl(["BLINDED"] * 3), blinded=True)
    therapies = pd.DataFrame(
        {
            "subject_id": ["S0", "S0", "S1", "S1"],
            "start_date": pd.to_datetime(["2024-05-01", "2024-03-01", "2023-12-01", None]),
        }
    )
    nact = ep.nact_dates(therapies, subjects)
    assert nact.iloc[0] == pd.Timestamp("2024-03-01")
    assert pd.isna(nact.iloc[1]) and pd.isna(nact.iloc[2])


def test_cutoff_drops_later_records_and_ends_running_ones() -> None:
    adsl = _adsl(["BLINDED"] * 2)
    adsl.loc[1, "randomisation_date"] = pd.Timestamp("2024-07-01")
    marts = {
        "adsl": adsl,
        "labs": pd.DataFrame(
            {"subject_id": ["S0", "S0"], "collection_date": pd.to_datetime(["2024-02-01", "2024-08-01"])}
        ),
        "adverse_events": pd.DataFrame(
            {
                "subject_id": ["S0", "S0"],
                "analysis_start_date": pd.to_datetime(["2024-05-01", "2024-07-01"]),
                "end_date": pd.to_datetime(["2024-09-01", "2024-07-05"]),
            }
        ),
    }
    out = ep.apply_cutoff(marts, dt.date(2024, 6, 30))
    assert list(out["adsl"]["subject_id"]) == ["S0"]
    assert out["adsl"]["treatment_end_date"].iloc[0] == pd.Timestamp("2024-06-30")
    assert len(out["labs"]) == 1
    assert len(out["adverse_events"]) == 1 and pd.isna(out["adverse_events"]["end_date"].iloc[0])
    assert ep.apply_cutoff(marts, None)["labs"] is marts["labs"]


def test_lesion_rows_without_a_date_take_their_visit_date() -> None:
    tm = pd.DataFrame(
        {
            "subject_id": ["S0", "S0", "S0"],
            "visit": ["WEEK 6", "WEEK 6", "WEEK 12"],
            "assessment_date": pd.to_datetime(["2024-02-12", None, None]),
            "assessment_date_flag": [None, "M", "M"],
            "lesion_id": ["T01", "NT01", "T01"],
            "lesion_category": ["TARGET", "NON-TARGET", "TARGET"],
            "location": ["LIVER"] * 3,
            "is_nodal": ["N"] * 3,
            "diameter_mm": [30.0, None, 28.0],
            "viable_diameter_mm": [None] * 3,
            "lesion_status": [None, "PRESENT", None],
        }
    )
    lesions = ep.lesions_from_tumor_measurements(tm)
    assert list(lesions["assessment_date"]) == [pd.Timestamp("2024-02-12")] * 2  # WEEK 12 has no known date


@pytest.mark.parametrize("blinded", [True, False])
@pytest.mark.parametrize("n_subjects", [0, 2])
def test_a_trial_without_records_yet_gives_empty_tables(tmp_path, blinded: bool, n_subjects: int) -> None:
    """Early in the study (randomised, not yet dosed or scanned) every table is produced, possibly empty."""
    adsl = _adsl(["CAPSULE", "PLACEBO"])
    adsl["safety_fl"] = "N"
    marts = {name: pd.DataFrame({c: pd.Series(dtype="object") for c in cols}) for name, cols in ep.MART_COLUMNS.items()}
    marts["adsl"] = adsl.iloc[:n_subjects]
    out = ep.compute_endpoints(marts, blinded=blinded)
    assert set(out) == {n for group in ep.TABLES.values() for n in group}
    assert all(len(frame.columns) for frame in out.values())
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        write_tables(con, out)
        assert read_analysis(con, ["adtte"])["adtte"].shape[0] == 3 * n_subjects  # PFS, OS, PFS_INV


def test_writer_replaces_tables_atomically_and_refuses_case_clashes(tmp_path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        write_tables(
            con,
            {
                "a": pd.DataFrame({"d": pd.to_datetime(["2024-01-01"]), "t": pd.to_datetime(["2024-01-01 10:00"])}),
                "b": pd.DataFrame({"x": [1]}),
            },
        )
        sql = "select column_name, data_type from duckdb_columns() where table_name = 'a'"
        types = dict(con.execute(sql).fetchall())
        assert types == {"d": "DATE", "t": "TIMESTAMP"}
        with pytest.raises(ValueError, match="differ only by case"):
            write_tables(con, {"b": pd.DataFrame({"x": [2]}), "c": pd.DataFrame({"n": [1], "N": [2]})})
        # the failed call left the earlier tables as they were
        assert read_analysis(con, ["b"])["b"]["x"].tolist() == [1]
        with pytest.raises(LookupError, match=r"analysis\.c"):
            read_analysis(con, ["c"])


def test_summary_text_shows_group_columns_and_differences() -> None:
    figures = {
        "survival": [
            {
                "endpoint": "PFS", "group": "CAPSULE", "n": 10, "events": 6, "censored": 4,
                "median_days": 243.5, "median_lcl_days": 200.0, "median_ucl_days": None,
                "median_months": 8.0, "median_lcl_months": 6.571, "median_ucl_months": None,
                "rate_6m": 0.7, "rate_6m_lcl": 0.5, "rate_6m_ucl": 0.9, "rate_12m": None, "rate_12m_lcl": None,
                "rate_12m_ucl": None, "reference": "PLACEBO", "stratified_hr": 0.5, "stratified_hr_lcl": 0.2,
                "stratified_hr_ucl": 1.25, "stratified_logrank_p": 0.1234,
            }
        ],
        "response": [
            {"endpoint": "ORR", "criterion": "RECIST 1.1", "evaluator": "DERIVED", "confirmed": True,
             "population": "ITT", "group": g, "n": 20, "x": x, "rate": x / 20, "lcl": 0.0, "ucl": 1.0,
             "method": "Clopper-Pearson"}
            for g, x in (("CAPSULE", 8), ("PLACEBO", 3))
        ],
        "response_differences": [
            {"endpoint": "ORR", "criterion": "RECIST 1.1", "evaluator": "DERIVED", "confirmed": True,
             "population": "ITT", "group": "CAPSULE", "reference": "PLACEBO", "difference": 0.25,
             "lcl": -0.0316, "ucl": 0.5018, "method": "Miettinen-Nurminen"}
        ],
    }  # fmt: skip
    text = ep.format_efficacy_summary(figures)
    assert "8.0 (6.6, NE)" in text and "0.50 (0.20, 1.25)" in text and "0.1234" in text
    assert "CAPSULE x/n % (95% CI)" in text and "8/20 40.0 (0.0, 100.0)" in text
    assert "25.0 (-3.2, 50.2)" in text
