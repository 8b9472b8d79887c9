"""The dbt marts of a demo warehouse built by `guttrial build` agree with the simulator's truth, carry no direct
identifier, and (blinded build) no arm information anywhere in the warehouse file."""

from __future__ import annotations

import calendar
import datetime as dt
import re

import duckdb
import numpy as np
import pandas as pd
import pytest
from _warehouse import DemoWarehouse, shared_demo_warehouse, subject_id

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoWarehouse:
    return shared_demo_warehouse(tmp_path_factory)


@pytest.fixture(scope="module")
def con(demo: DemoWarehouse):
    with demo.connect() as connection:
        yield connection


@pytest.fixture(scope="module")
def patients(demo: DemoWarehouse) -> pd.DataFrame:
    frame = pd.read_csv(demo.truth / "patients.csv", dtype={"SUBJID": str, "RANDNO": str})
    frame["subject_id"] = frame["SUBJID"].map(subject_id)
    return frame.set_index("subject_id")


@pytest.fixture(scope="module")
def mess(demo: DemoWarehouse) -> pd.DataFrame:
    return pd.read_csv(demo.truth / "mess.csv", dtype=str, keep_default_na=False)


def df(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    return con.execute(sql).df()


def truth_join(frame: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Mart rows (indexed by subject_id) joined to the truth; clashing truth columns get the suffix _truth."""
    return frame.merge(truth, left_index=True, right_index=True, how="left", suffixes=("", "_truth"))


def as_date(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values).dt.date


# ---------------------------------------------------------------------------------------------- build


def test_build_materialised_every_layer_and_every_dbt_test_passed(demo: DemoWarehouse) -> None:
    built = demo.build
    assert built["success"]
    layers = {key.split("/")[0] for key in built["materialized"]}
    assert {"raw", "restricted", "staging", "intermediate", "marts"} <= layers
    assert "marts/adsl" in built["materialized"]
    assert built["checks"] > 200  # dbt data tests arrive as asset checks
    assert built["failed_checks"] == []


def test_layers_are_exactly_the_documented_schemas(con: duckdb.DuckDBPyConnection) -> None:
    schemas = {r[0] for r in con.execute("select distinct table_schema from information_schema.tables").fetchall()}
    assert {"raw", "staging", "intermediate", "marts"} <= schemas
    assert not {s for s in schemas if s.startswith("main_")}
    assert "restricted" not in schemas


# ---------------------------------------------------------------------------------------------- patients


def test_adsl_has_one_row_per_randomised_patient_with_truth_dates(con, patients: pd.DataFrame) -> None:
    adsl = df(con, "select * from marts.adsl").set_index("subject_id")
    assert sorted(adsl.index) == sorted(patients.index)
    joined = truth_join(adsl, patients)
    assert (as_date(joined["randomisation_date"]) == as_date(joined["rand_date"])).all()
    assert (joined["randno"] == joined["RANDNO"]).all()
    assert (joined["sex"] == joined["sex_truth"]).all()
    assert (as_date(joined["treatment_start_date"]) == as_date(joined["c1d1_date"])).all()
    # Truth age is at informed consent (1-4 weeks before randomisation); partial birth dates are imputed mid-period.
    assert (joined["age_years"] - joined["age"]).abs().max() <= 1
    assert (joined["itt_fl"] == "Y").all() and (joined["safety_fl"] == "Y").all()
    assert set(joined["arm_code"]) == {"BLINDED"}


def test_weight_band_and_planned_dose_follow_the_protocol(con, patients: pd.DataFrame) -> None:
    adsl = df(con, "select subject_id, baseline_weight_kg, weight_band, planned_lenvatinib_dose_mg from marts.adsl")
    joined = truth_join(adsl.set_index("subject_id"), patients)
    assert np.allclose(joined["baseline_weight_kg"], joined["weight_kg"])
    assert (joined["planned_lenvatinib_dose_mg"] == joined["lenvatinib_expected_dose_mg"]).all()
    at_limit = joined[joined["weight_kg"] == 60.0]
    assert (at_limit["weight_band"] == "<=60 kg").all() and (at_limit["planned_lenvatinib_dose_mg"] == 8).all()


def test_dose_band_deviations_match_the_truth(con, demo: DemoWarehouse) -> None:
    truth = pd.read_csv(demo.truth / "protocol_deviations.csv", dtype=str)
    flagged = df(con, "select distinct subject_id from marts.exposure where dose_band_deviation_fl = 'Y'")
    assert sorted(flagged["subject_id"]) == sorted(truth["SUBJID"].map(subject_id))
    lenva = df(con, "select * from marts.exposure where drug = 'LENVATINIB' and drug_record_number = 1")
    assert (lenva["planned_dose"].isin([8.0, 12.0])).all()


def test_capsule_compliance_is_taken_over_60(con) -> None:
    caps = df(con, "select * from marts.exposure where drug = 'STUDY CAPSULES'")
    assert caps["capsule_course_number"].between(1, 4).all()
    assert np.allclose(caps["capsule_compliance"], caps["capsules_taken"] / 60)
    assert (caps["capsules_planned"] == 60).all()


def test_end_of_treatment_and_death_match_the_truth(con, patients: pd.DataFrame) -> None:
    adsl = truth_join(df(con, "select * from marts.adsl").set_index("subject_id"), patients)
    assert (as_date(adsl["end_of_treatment_date"]) == as_date(adsl["eot_date"])).all()
    assert (adsl["end_of_treatment_reason"] == adsl["eot_reason"]).all()
    died = adsl["os_event"] == 1
    assert (adsl.loc[died, "death_fl"] == "Y").all() and (adsl.loc[~died, "death_fl"] == "N").all()
    assert (as_date(adsl.loc[died, "death_date"]) == as_date(adsl.loc[died, "true_death_date"])).all()
    alive = adsl["last_known_alive_date"].notna()
    assert alive.all()
    assert (adsl.loc[died, "last_known_alive_date"] <= adsl.loc[died, "death_date"]).all()


def test_albi_matches_the_truth_grade(con, patients: pd.DataFrame) -> None:
    adsl = df(con, "select subject_id, albi_score, albi_grade, child_pugh_class from marts.adsl").set_index(
        "subject_id"
    )
    joined = truth_join(adsl, patients)
    # A screening bilirubin or albumin delivered as ND/NA leaves the score missing (never imputed).
    missing = set(joined.index[joined["albi_score"].isna()])
    screening_gaps = df(
        con,
        "select distinct subject_id from marts.labs where baseline_fl = 'Y' and test_code in "
        "('BILI', 'ALB') and standard_value is not null group by subject_id having count(*) = 2",
    )
    assert missing == set(joined.index) - set(screening_gaps["subject_id"])
    scored = joined[joined["albi_score"].notna()]
    # Referral labs report albumin in g/dL with one decimal (+/- 0.5 g/L) and bilirubin in mg/dL with two.
    assert (scored["albi_score"] - scored["albi_score_truth"]).abs().max() < 0.05
    near_cut = np.minimum((scored["albi_score"] + 2.60).abs(), (scored["albi_score"] + 1.39).abs()) < 0.05
    assert (scored.loc[~near_cut, "albi_grade"] == scored.loc[~near_cut, "albi_grade_truth"]).all()
    assert scored["child_pugh_class"].notna().all()


# ---------------------------------------------------------------------------------------------- records


def _landing_rows(demo: DemoWarehouse, form: str) -> int:
    path = next((demo.landing / "crf").glob(f"{form}.csv*"))
    return len(pd.read_csv(path, dtype=str))


def test_every_form_keeps_every_record_once(con, demo: DemoWarehouse, mess: pd.DataFrame) -> None:
    duplicates = mess[mess["kind"] == "duplicate_row"].groupby("form").size()
    for form in ("dm", "rand", "bl", "vs", "ex", "tr", "rs", "ae", "lb", "qs", "cm", "ds", "bs"):
        n = con.execute(f"select count(*), sum(_duplicate_count) from staging.stg_crf__{form}").fetchone()
        delivered = _landing_rows(demo, form)
        assert n[0] == delivered - duplicates.get(form, 0), form
        assert n[1] == delivered, form
    assert con.execute("select count(*) from marts.adverse_events").fetchone()[0] == _landing_rows(demo, "ae") - (
        duplicates.get("ae", 0)
    )


def _imputed(clean: str, written: str, rule: str) -> dt.date | None:
    year, month, _ = (int(x) for x in clean.split("-"))
    if "UNK-UNK" in written or written.startswith("UNK"):
        return None  # month unknown: not imputed
    last = calendar.monthrange(year, month)[1]
    return dt.date(year, month, 1 if rule == "first" else last)


def test_partial_ae_dates_follow_the_imputation_rule(con, mess: pd.DataFrame) -> None:
    partial = mess[(mess["kind"] == "partial_date") & (mess["form"] == "ae")]
    assert len(partial) > 0
    ae = df(
        con,
        "select subject_id, start_dtc, start_date, start_date_flag, end_dtc, end_date, end_date_flag "
        "from staging.stg_crf__ae",
    )
    for row in partial.itertuples():
        which, rule = ("start", "first") if row.column == "AESTDTC" else ("end", "last")
        hit = ae[(ae["subject_id"] == subject_id(row.SUBJID)) & (ae[f"{which}_dtc"] == row.written_value.strip())]
        assert len(hit) >= 1, row
        expected = _imputed(row.clean_value, row.written_value, rule)
        got = hit.iloc[0]
        if expected is None:
            assert pd.isna(got[f"{which}_date"]) and got[f"{which}_date_flag"] == "M"
        else:
            assert as_date(pd.Series([got[f"{which}_date"]]))[0] == expected and got[f"{which}_date_flag"] == "D"


def test_treatment_emergent_flag_uses_the_dosing_window(con) -> None:
    ae = df(
        con,
        """
        select a.*, s.treatment_start_date, s.treatment_end_date
        from marts.adverse_events a join marts.adsl s using (subject_id)""",
    )
    dated = ae[ae["analysis_start_date"].notna()]
    window = (dated["analysis_start_date"] >= dated["treatment_start_date"]) & (
        dated["analysis_start_date"] <= dated["treatment_end_date"] + pd.Timedelta(days=30)
    )
    assert ((dated["treatment_emergent_fl"] == "Y") == window).all()
    assert (ae.loc[ae["analysis_start_date"].isna(), "treatment_emergent_fl"] == "Y").all()


def test_labs_are_in_standard_units_and_match_the_true_values(con, demo: DemoWarehouse) -> None:
    truth = pd.read_csv(demo.truth / "lab_values.csv.gz", dtype={"SUBJID": str})
    truth["subject_id"] = truth["SUBJID"].map(subject_id)
    labs = df(
        con,
        "select subject_id, visit, cast(collection_date as varchar) as LBDTC, test_code as LBTESTCD, "
        "standard_value, standard_unit, reported_unit, conversion_factor, result_comparator from marts.labs",
    )
    joined = truth.merge(
        labs,
        left_on=["subject_id", "VISIT", "LBDTC", "LBTESTCD"],
        right_on=["subject_id", "visit", "LBDTC", "LBTESTCD"],
        how="outer",
        indicator=True,
    )
    assert (joined["_merge"] == "both").all()
    units = {"ALT": "U/L", "AST": "U/L", "BILI": "umol/L", "ALB": "g/L", "PLAT": "10^9/L", "INR": "ratio",
             "AFP": "ng/mL", "CREAT": "umol/L"}  # fmt: skip
    assert (joined["standard_unit"] == joined["LBTESTCD"].map(units)).all()
    factors = {("BILI", "mg/dL"): 17.1, ("ALB", "g/dL"): 10.0, ("AFP", "IU/mL"): 1.21}
    for (test, unit), factor in factors.items():
        rows = joined[(joined["LBTESTCD"] == test) & (joined["reported_unit"] == unit)]
        assert len(rows) > 0, (test, unit)
        assert (rows["conversion_factor"] == factor).all()
    measured = joined[joined["standard_value"].notna() & joined["result_comparator"].isna()]
    relative = (measured["standard_value"] - measured["true_value"]).abs() / measured["true_value"].abs()
    assert relative.max() < 0.05
    censored = joined[joined["result_comparator"] == "<"]
    assert (censored["true_value"] < censored["standard_value"] + 1e-9).all()


def test_baseline_lab_flags_one_per_patient_and_test(con) -> None:
    counts = df(con, "select subject_id, test_code, count(*) as n from marts.labs where baseline_fl = 'Y' group by all")
    assert (counts["n"] == 1).all()
    post = df(con, "select * from marts.labs where change_from_baseline is not null")
    assert np.allclose(post["change_from_baseline"], post["standard_value"] - post["baseline_value"])


# ---------------------------------------------------------------------------------------------- samples


def test_sequenced_samples_link_to_patients_and_controls_stay_apart(con, demo: DemoWarehouse) -> None:
    truth = pd.read_csv(demo.truth / "sequencing_samples.csv", dtype=str, keep_default_na=False)
    linked = truth[(truth["role"] == "SAMPLE") & (truth["orphan"] == "False")]
    reads = df(
        con,
        "select batch_id, sample_id, specimen_barcode, subject_id, sum(read_count) as mart_reads "
        "from marts.taxa_counts group by all",
    )
    joined = linked.merge(reads, left_on=["batch", "sample_id"], right_on=["batch_id", "sample_id"], how="left")
    assert joined["mart_reads"].notna().all()
    assert (joined["specimen_barcode_x"] == joined["specimen_barcode_y"]).all()
    assert (joined["SUBJID"].map(subject_id) == joined["subject_id"]).all()
    assert (joined["mart_reads"] == joined["reads"].astype(int)).all()
    controls = df(con, "select batch_id, sample_id, sample_role from marts.sequencing_controls")
    assert sorted(map(tuple, controls.values.tolist())) == sorted(
        map(tuple, truth.loc[truth["role"] != "SAMPLE", ["batch", "sample_id", "role"]].values.tolist())
    )
    orphans = df(con, "select * from marts.unlinked_omics_samples")
    truth_orphans = truth[truth["orphan"] == "True"]
    assert orphans[["batch_id", "omics_sample_id", "issue"]].values.tolist() == [
        [b, s, "ORPHAN_BARCODE"] for b, s in truth_orphans[["batch", "sample_id"]].values.tolist()
    ]
    sample_ids = set(df(con, "select distinct sample_id from marts.taxa_counts")["sample_id"])
    assert not sample_ids & set(truth.loc[truth["role"] != "SAMPLE", "sample_id"])


def test_samples_mart_has_every_logged_specimen_with_visit_and_depth(con, demo: DemoWarehouse) -> None:
    samples = df(con, "select * from marts.samples")
    assert len(samples) == _landing_rows(demo, "bs")
    assert samples["specimen_barcode"].is_unique
    faeces = samples[samples["specimen_type"] == "FAECES"]
    assert set(faeces["nominal_visit"]) <= {"BASELINE", "END OF COURSE 1", "END OF COURSE 2", "END OF COURSE 3",
                                            "END OF COURSE 4", "PROGRESSION"}  # fmt: skip
    assert (faeces["sequenced_fl"] == "Y").mean() > 0.9
    depth = df(
        con,
        "select specimen_barcode, max(reads) as depth from (select specimen_barcode, batch_id, sample_id, "
        "sum(read_count) as reads from marts.taxa_counts group by all) group by all",
    )
    joined = samples.merge(depth, on="specimen_barcode")
    assert (joined["sequencing_depth"] == joined["depth"]).all()
    assert (samples.loc[samples["nominal_visit"].str.startswith("END OF COURSE"), "in_window_fl"] == "Y").all()


def test_metabolomics_keeps_qcs_and_blanks_apart(con, demo: DemoWarehouse) -> None:
    injections = pd.concat(
        pd.read_csv(p, dtype=str, keep_default_na=False)
        for p in sorted(demo.landing.glob("metabolomics/*/injections.csv"))
    )
    qc = df(con, "select * from marts.metabolomics_qc_injections")
    assert len(qc) == (injections["sample_type"].str.upper() != "SAMPLE").sum()
    patient = df(con, "select distinct injection_id from marts.metabolite_intensities")
    assert set(patient["injection_id"]) <= set(injections.loc[injections["sample_type"] == "SAMPLE", "injection_id"])
    assert not set(patient["injection_id"]) & set(qc["injection_id"])
    features = df(con, "select * from marts.metabolite_features")
    truth = pd.read_csv(demo.truth / "metabolite_features.csv", dtype={"kegg_id": str})
    one = features.merge(truth, on=["feature_id", "ion_mode"], suffixes=("", "_truth"))
    assert len(one) == len(features)
    assert np.allclose(one["mz"], one["mz_truth"], atol=0.051)  # delivered to 1 decimal


def test_taxonomy_ranks_are_parsed_and_unassigned_ranks_are_null(con, demo: DemoWarehouse) -> None:
    taxonomy = df(con, "select * from marts.taxonomy")
    for rank in ("kingdom", "phylum", "class", "order", "family", "genus", "species"):
        values = taxonomy[rank].dropna()
        assert not values.str.contains(r"^[a-z]__|\(\d+\)|unclassified|uncultured", regex=True).any(), rank
    fmap = pd.read_csv(demo.truth / "feature_map.csv", dtype=str)
    taxa = pd.read_csv(demo.truth / "taxa.csv", dtype=str, keep_default_na=False)
    joined = taxonomy.merge(fmap, left_on=["batch_id", "feature_id"], right_on=["batch", "feature_id"]).merge(
        taxa, on="asv_id"
    )
    assert len(joined) == len(taxonomy)
    resolved = joined["genus"].notna()
    assert resolved.mean() > 0.5
    assert (joined.loc[resolved, "genus"] == joined.loc[resolved, "true_genus"]).all()
    assert (joined.loc[resolved, "family"] == joined.loc[resolved, "true_family"]).all()
    assert set(joined.loc[joined["taxonomy_style"] == "MOTHUR", "species"].dropna()) == set()
    unassigned = joined[joined["taxonomy_delivered"] == "Unassigned"]
    assert unassigned[["kingdom", "phylum", "genus"]].isna().all().all()


# ---------------------------------------------------------------------------------------------- privacy


def _tables(con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...]) -> list[tuple[str, str]]:
    placeholders = ", ".join("?" for _ in schemas)
    return con.execute(
        f"select table_schema, table_name from information_schema.tables where table_schema in ({placeholders}) "
        "order by 1, 2",
        list(schemas),
    ).fetchall()


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[tuple[str, str]]:
    return con.execute(
        "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchall()


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def test_no_direct_identifier_in_any_schema(con, demo: DemoWarehouse) -> None:
    # The values as delivered (the loader stores none of them: raw.crf_dm's identifier columns are NULL).
    (dm_file,) = (demo.landing / "crf").glob("dm*.csv*")
    delivered = pd.read_csv(dm_file, dtype=str, keep_default_na=False)
    identifiers = pd.DataFrame(
        {
            "mrn": delivered["MRN"].str.strip(),
            "name": delivered["PATNAME"].str.strip(),
            "initials": delivered["INITIALS"].str.strip(),
            "brthdtc": delivered["BRTHDTC"].str.strip(),
            "SUBJID": delivered["SUBJID"],
        }
    )
    stored = df(con, "select count(MRN) + count(PATNAME) + count(INITIALS) + count(BRTHDTC) as n from raw.crf_dm")
    assert stored["n"].tolist() == [0]
    forbidden = sorted(
        {v.upper() for v in pd.concat([identifiers["mrn"], identifiers["name"], identifiers["brthdtc"]])}
        - {"", "ND", "NA", "N/A", "UNK", "NK", "NOT DONE"}  # missing markers are raw cells, not identifiers
    )
    birth_dates = sorted(set(pd.to_datetime(identifiers["brthdtc"], errors="coerce").dt.date.dropna()))
    initials = pd.DataFrame(
        {
            "subject_id": identifiers["SUBJID"].str.strip().map(subject_id),
            "initials": identifiers["initials"].str.upper(),
        }
    )
    con.register("_initials", initials)
    con.register("_forbidden", pd.DataFrame({"value": forbidden}))
    con.register("_birth_dates", pd.DataFrame({"value": pd.to_datetime(pd.Series(birth_dates)).dt.date}))
    tables = _tables(con, ("raw", "staging", "intermediate", "marts", "analysis"))
    assert tables
    for schema, table in tables:
        columns = _columns(con, schema, table)
        names = {c.upper() for c, _ in columns}
        if (schema, table) != ("raw", "crf_dm"):  # the contract's (always NULL) identifier columns, checked above
            assert not names & {"MRN", "PATNAME", "INITIALS", "BRTHDTC"}, (schema, table)
            assert not [c for c in names if "BIRTH" in c or "BRTH" in c], (schema, table)
        # One scan per relation: per column, the number of identifier values, of birth dates and (for tables
        # keyed by subject) of values equal to that subject's initials.
        probes: list[str] = []
        has_subject = "subject_id" in {c for c, _ in columns}
        for column, dtype in columns:
            q = "t." + _quoted(column)
            if dtype == "VARCHAR":
                probes.append(f"count(*) filter (where upper(trim({q})) in (select value from _forbidden))")
                if has_subject and column != "subject_id":
                    probes.append(f"count(*) filter (where upper(trim({q})) = i.initials) * 2 > count({q})")
            elif dtype == "DATE":
                probes.append(f"count(*) filter (where {q} in (select value from _birth_dates))")
        if not probes:
            continue
        join = "left join _initials as i on t.subject_id = i.subject_id" if has_subject else ""
        found = con.execute(
            f"select {', '.join(probes)} from {_quoted(schema)}.{_quoted(table)} as t {join}"
        ).fetchone()
        assert not any(found), (schema, table, probes, found)


#: Columns where a value 'capsule' is the dose unit of the (blinded) study capsules, not an arm.
DOSE_UNIT_COLUMNS = {"EXDOSU", "dose_unit"}
#: Relations allowed to be named after the arm: they hold the placeholder only (checked below).
ARM_NAMED_TABLES = {"int_subjects__arm"}


def test_blinded_warehouse_holds_no_arm_information(con) -> None:
    assert (
        con.execute("select count(*) from information_schema.schemata where schema_name = 'restricted'").fetchone()[0]
        == 0
    )
    for schema, table in _tables(con, ("raw", "staging", "intermediate", "marts", "analysis", "main")):
        if re.search(r"arm|trt|randomi[sz]ation_list", table, re.I):
            assert table in ARM_NAMED_TABLES, (schema, table)
        probes: list[str] = []
        labels: list[str] = []
        for column, dtype in _columns(con, schema, table):
            if dtype != "VARCHAR":
                continue
            q = _quoted(column)
            arm_value = "" if column in DOSE_UNIT_COLUMNS else f" or upper(trim({q})) = 'CAPSULE'"
            probes.append(
                f"count(*) filter (where upper({q}) like '%PLACEBO%' or upper({q}) like '%UNBLINDED%'{arm_value})"
            )
            labels.append(column)
            if re.search(r"(^|_)(arm|trt)", column, re.I):
                probes.append(f"count(*) filter (where {q} is not null and {q} <> 'BLINDED')")
                labels.append(f"{column} (not BLINDED)")
        if not probes:
            continue
        found = con.execute(f"select {', '.join(probes)} from {_quoted(schema)}.{_quoted(table)}").fetchone()
        assert not any(found), (schema, table, [label for label, n in zip(labels, found, strict=True) if n])


def test_tumour_assessment_windows_match_the_schedule(con, demo: DemoWarehouse) -> None:
    visits = pd.read_csv(demo.truth / "visits.csv", dtype={"SUBJID": str})
    scheduled = visits[visits["nominal_day"].notna() & visits["actual_day"].notna()].copy()
    scheduled["subject_id"] = scheduled["SUBJID"].map(subject_id)
    responses = df(
        con, "select subject_id, visit, nominal_day, days_from_nominal, in_window_fl from marts.investigator_responses"
    )
    joined = scheduled.merge(responses, left_on=["subject_id", "VISIT"], right_on=["subject_id", "visit"])
    assert len(joined) > 0
    assert (joined["nominal_day_x"] == joined["nominal_day_y"]).all()
    assert (joined["actual_day"] - joined["nominal_day_x"] == joined["days_from_nominal"]).all()
    late = joined["status"] == "LATE"
    assert (joined.loc[~late, "in_window_fl"] == "Y").all()
