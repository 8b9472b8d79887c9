"""Marts-layer suites: the contract the endpoint and omics assets rely on, and plausibility checks.

One **critical** suite per mart, keyed by the table name (``mart_suites()["adsl"]``, suite ``marts.adsl``): the
documented columns are present (the dbt YAML is the source), keys are unique and filled, every patient record
belongs to a randomised patient, codes are in their value sets, dates are not before the earliest possible
trial date nor after the data cut-off (the marts are filtered by it, so this guards that filter) and cross-field
rules hold (death not before randomisation, AE end not before its start, nodal targets measured on the short
axis, the weight-band flags agree with the weights, ...). A failure means an endpoint computed from the mart
would be wrong, so these block.

Some marts also have a **warning** suite keyed ``"<table>.<aspect>"`` (e.g. ``"labs.plausibility"``, suite
``marts.labs.plausibility``; the table is the part before the dot): physiologically implausible lab values,
lenvatinib doses off the weight band without a documented reduction, shallow libraries, libraries dominated
by unassigned reads, unstable pooled QCs, open omics linkage issues. Their flagged rows are quarantined for
data management; they do not stop the run.

Cross-table rules are evaluated in SQL: the suite's ``query`` joins and exposes a boolean flag column named
after the rule (``patient_randomised``, ``death_fl_consistent``, ...), and the suite expects it to be true, so
a failure names the rule and the keys of the offending rows. Arm codes never reach a frame: ``adsl`` is read
without ``arm_code`` and only a flag says whether the code fits the build (``BLINDED`` in a blinded warehouse,
``CAPSULE``/``PLACEBO`` in an unblinded one).

Frames are what ``duckdb``'s ``.df()`` returns for ``query`` (dates as ``datetime64``, nullable integers as
pandas' nullable types).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from analysis import contract
from expectations.runner import SuiteSpec

MARTS_DIR = Path(__file__).resolve().parents[2] / "dbt_project" / "models" / "marts"

#: No trial date in a mart predates the study (:data:`analysis.contract.STUDY_START`, the same bound the raw
#: suites apply to the export): an earlier one is a year typo or a wrong century, not history.
EARLIEST_DATE = datetime.datetime.combine(contract.STUDY_START, datetime.time())
#: Screening records (baseline scans, labs, stool, questionnaires) lie at most this many days before
#: randomisation: the protocol's 28-day screening window with margin for re-scans.
SCREENING_DAYS = 60
#: Lenvatinib weight band (dbt vars ``weight_band_threshold_kg``): 8 mg/day at <= 60 kg, 12 mg/day above.
WEIGHT_BAND_KG = 60
LENVATINIB_LOW_MG = 8
LENVATINIB_HIGH_MG = 12
PD1_DOSE_MG = 200
CAPSULES_PER_DAY = 6
#: Microbiome QC thresholds, the same as ``analysis.microbiome.pipeline.MicrobiomeConfig`` (``low_depth``,
#: ``max_unassigned``) so that the mart warning and the analysis QC flag agree (a test checks they match).
MIN_LIBRARY_SIZE = 5000
MAX_UNASSIGNED_SHARE = 0.1
#: Pooled-QC RSD (%) above which a feature is unreliable (MetaboAnalyst's and the pipeline's 30 %), and the
#: share of features a healthy batch keeps below it before drift correction (clean batches keep ~96 %).
MAX_QC_RSD_PCT = 30.0
MIN_STABLE_QC_FEATURES = 0.85

#: Broad physiological bounds per lab test in the warehouse's standard units (``labs.standard_unit``): values
#: outside are either impossible or a unit error (bilirubin in mg/dL read as umol/L falls below 1, albumin
#: in g/dL read as g/L below 10).
LAB_BOUNDS: dict[str, tuple[str, float, float]] = {
    "BILI": ("umol/L", 1.0, 850.0),
    "ALB": ("g/L", 10.0, 60.0),
    "ALT": ("U/L", 1.0, 10000.0),
    "AST": ("U/L", 1.0, 10000.0),
    "PLAT": ("10^9/L", 1.0, 1500.0),
    "INR": ("ratio", 0.5, 10.0),
    "CREAT": ("umol/L", 10.0, 2000.0),
    "AFP": ("ng/mL", 0.0, 1.0e7),
}
#: adsl's baseline lab columns and their test codes (same bounds).
ADSL_LAB_COLUMNS: dict[str, str] = {
    "bilirubin_umol_l": "BILI",
    "albumin_g_l": "ALB",
    "inr": "INR",
    "platelets_10e9_l": "PLAT",
    "alt_u_l": "ALT",
    "ast_u_l": "AST",
    "creatinine_umol_l": "CREAT",
    "afp_ng_ml": "AFP",
}

#: Type names GX reports for pandas columns read from DuckDB.
INTEGER_TYPES = ["int8", "int16", "int32", "int64", "Int8", "Int16", "Int32", "Int64"]
DATE_TYPES = ["datetime64", "datetime64[us]", "datetime64[ns]", "datetime64[ms]", "datetime64[s]"]

DATE_FLAGS = ["D", "M", "Y", "X"]
YES_NO = ["Y", "N"]
#: The RECIST/mRECIST response codes as the marts spell them (investigator_responses).
OVERALL_RESPONSES = ["CR", "PR", "SD", "NON-CR/NON-PD", "PD", "NE"]
TARGET_RESPONSES = ["CR", "PR", "SD", "PD", "NE", "NA"]
NON_TARGET_RESPONSES = ["CR", "NON-CR/NON-PD", "PD", "NE", "NA"]

#: SQL: true in an unblinded warehouse (only those hold the restricted randomisation list).
UNBLINDED_SQL = "exists (select 1 from information_schema.tables where table_schema = 'restricted')"
#: SQL: the row's subject is a randomised patient of adsl (needs a left join ``adsl`` aliased ``a``).
RANDOMISED_SQL = "coalesce(a.randomisation_date is not null, false) as patient_randomised"

Build = Callable[[Any], list[Any]]


# ------------------------------------------------------------------------------------------------ helpers


def _ts(value: datetime.date | None) -> datetime.datetime | None:
    # GX compares datetime64 columns with datetimes, not dates (a date bound raises inside GX).
    return None if value is None else datetime.datetime(value.year, value.month, value.day)


def latest_date(cutoff: datetime.date | None) -> datetime.datetime:
    """The latest acceptable record date: the data cut-off, else today (nothing can be dated in the future)."""
    return _ts(cutoff) or _ts(datetime.date.today())  # type: ignore[return-value]


@cache
def documented_columns() -> dict[str, tuple[str, ...]]:
    """Columns of every mart as its dbt YAML documents them (the enforced contract), keyed by model."""
    import yaml

    columns: dict[str, tuple[str, ...]] = {}
    for path in sorted(MARTS_DIR.glob("*/_*.yml")):
        for model in yaml.safe_load(path.read_text()).get("models", []):
            columns[model["name"]] = tuple(c["name"] for c in model.get("columns", []))
    return columns


def _dates(gxe: Any, columns: Sequence[str], cutoff: datetime.date | None) -> list[Any]:
    """Dates within the trial: not before :data:`EARLIEST_DATE`, not after the cut-off (or today)."""
    latest = latest_date(cutoff)
    return [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=EARLIEST_DATE, max_value=latest) for c in columns]


def _true(gxe: Any, *flags: str) -> list[Any]:
    """The SQL rule flags hold on every row (flags are computed null-safe: NULL never means true)."""
    return [gxe.ExpectColumnValuesToBeInSet(column=f, value_set=[True]) for f in flags]


def _keys(gxe: Any, keys: Sequence[str], nullable: Sequence[str] = ()) -> list[Any]:
    """Keys filled (except ``nullable`` parts, e.g. the second group of a one-sample test) and unique."""
    checks = [gxe.ExpectColumnValuesToNotBeNull(column=k) for k in keys if k not in nullable]
    if len(keys) == 1:
        checks.append(gxe.ExpectColumnValuesToBeUnique(column=keys[0]))
    else:
        checks.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=list(keys)))
    return checks


def _documented(gxe: Any, table: str, without: Sequence[str] = ()) -> Any:
    # exact_match=False: the suite's query adds rule flags; a documented column missing is the break.
    columns = [c for c in documented_columns()[table] if c not in without]
    return gxe.ExpectTableColumnsToMatchSet(column_set=columns, exact_match=False)


def _spec(
    table: str,
    query: str,
    build: Build,
    row_id: Sequence[str],
    description: str,
    *,
    aspect: str = "",
    critical: bool = True,
) -> SuiteSpec:
    def expectations() -> list[Any]:
        import great_expectations.expectations as gxe

        return build(gxe)

    name = f"marts.{table}" + (f".{aspect}" if aspect else "")
    return SuiteSpec(name, query, expectations, critical=critical, row_id=tuple(row_id), description=description)


def _with_adsl(table: str, extra: str = "") -> str:
    """Rows of a patient-level mart with the ``patient_randomised`` flag (and ``extra`` select items)."""
    return (
        f"select t.*, {RANDOMISED_SQL}{', ' + extra if extra else ''} "
        f"from marts.{table} t left join marts.adsl a on a.subject_id = t.subject_id"
    )


# ------------------------------------------------------------------------------------------------ clinical


def _adsl(cutoff: datetime.date | None) -> list[SuiteSpec]:
    band = (
        f"case when baseline_weight_kg is null then null when baseline_weight_kg <= {WEIGHT_BAND_KG} "
        f"then '<={WEIGHT_BAND_KG} kg' else '>{WEIGHT_BAND_KG} kg' end"
    )
    dose = (
        f"case when baseline_weight_kg is null then null when baseline_weight_kg <= {WEIGHT_BAND_KG} "
        f"then {LENVATINIB_LOW_MG} else {LENVATINIB_HIGH_MG} end"
    )
    # NACTDT recomputed independently of dbt: a therapy delivered with only a year counts from 1 January of that
    # year (the mart keeps no date for it, so the delivered string is read back from staging through lineage).
    within = f"and nact_start <= date '{cutoff.isoformat()}'" if cutoff else ""
    query = f"""
        with delivered as (
            select _source_file, _row_number,
                try_cast(regexp_extract(start_dtc, '(\\d{{4}})', 1) as integer) as start_year
            from staging.stg_crf__cm
        ),
        therapies as (
            select t.subject_id, coalesce(t.start_date, make_date(d.start_year, 1, 1)) as nact_start
            from marts.subsequent_therapy t
            left join delivered d on d._source_file = t.source_file and d._row_number = t.source_row
            where t.after_randomisation_fl = 'Y'
        ),
        nact as (
            select subject_id, min(nact_start) as first_nact from therapies where true {within} group by subject_id
        )
        select a.* exclude (arm_code),
            case when {UNBLINDED_SQL} then coalesce(a.arm_code in ('CAPSULE', 'PLACEBO'), false)
                 else coalesce(a.arm_code = 'BLINDED', false) end as arm_code_valid,
            coalesce((a.death_fl = 'Y') = (a.death_date is not null), false) as death_fl_consistent,
            (a.weight_band is not distinct from {band})
                and (a.planned_lenvatinib_dose_mg is not distinct from {dose}) as weight_band_consistent,
            a.nact_date is not distinct from n.first_nact as nact_date_consistent
        from marts.adsl a left join nact n on n.subject_id = a.subject_id
    """

    def build(gxe: Any) -> list[Any]:
        return [
            _documented(gxe, "adsl", without=["arm_code"]),
            *_keys(gxe, ["subject_id"]),
            *_keys(gxe, ["randno"]),
            gxe.ExpectColumnValuesToNotBeNull(column="randomisation_date"),
            gxe.ExpectColumnValuesToBeInTypeList(column="randomisation_date", type_list=DATE_TYPES),
            *_dates(gxe, ["randomisation_date", "treatment_end_date", "death_date", "last_known_alive_date"], cutoff),
            *_dates(gxe, ["end_of_study_date", "nact_date"], cutoff),
            # Death, last contact and first dose cannot precede randomisation; nobody is seen alive after death.
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="death_date",
                column_B="randomisation_date",
                or_equal=True,
                ignore_row_if="either_value_is_missing",
            ),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="death_date",
                column_B="last_known_alive_date",
                or_equal=True,
                ignore_row_if="either_value_is_missing",
            ),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="last_known_alive_date",
                column_B="randomisation_date",
                or_equal=True,
                ignore_row_if="either_value_is_missing",
            ),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="treatment_start_date",
                column_B="randomisation_date",
                or_equal=True,
                ignore_row_if="either_value_is_missing",
            ),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="treatment_end_date",
                column_B="treatment_start_date",
                or_equal=True,
                ignore_row_if="either_value_is_missing",
            ),
            gxe.ExpectColumnValuesToBeInSet(column="planned_lenvatinib_dose_mg", value_set=[8, 12]),
            gxe.ExpectColumnValuesToBeInSet(column="ecog", value_set=[0, 1, 2, 3, 4]),
            gxe.ExpectColumnValuesToBeBetween(column="child_pugh_score", min_value=5, max_value=15),
            gxe.ExpectColumnValuesToBeInSet(column="albi_grade", value_set=[1, 2, 3]),
            *[gxe.ExpectColumnValuesToBeInSet(column=c, value_set=YES_NO) for c in ("itt_fl", "safety_fl", "death_fl")],
            *_true(gxe, "arm_code_valid", "death_fl_consistent", "weight_band_consistent", "nact_date_consistent"),
        ]

    def plausibility(gxe: Any) -> list[Any]:
        return [
            gxe.ExpectColumnValuesToBeBetween(column="age_years", min_value=18, max_value=100),
            gxe.ExpectColumnValuesToBeBetween(column="baseline_weight_kg", min_value=30, max_value=200),
            gxe.ExpectColumnValuesToBeBetween(column="baseline_height_cm", min_value=120, max_value=220),
            *[
                gxe.ExpectColumnValuesToBeBetween(column=c, min_value=LAB_BOUNDS[t][1], max_value=LAB_BOUNDS[t][2])
                for c, t in ADSL_LAB_COLUMNS.items()
            ],
            # Diagnosis precedes treatment; a diagnosis after randomisation is a transcription error.
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="randomisation_date",
                column_B="diagnosis_date",
                or_equal=True,
                ignore_row_if="either_value_is_missing",
            ),
        ]

    return [
        _spec(
            "adsl",
            query,
            build,
            ["subject_id"],
            "Subject level: one row per randomised patient, dates in order, arm code fits the build, derived "
            "flags (death, weight band, NACT) agree with their sources.",
        ),
        _spec(
            "adsl",
            "select * exclude (arm_code) from marts.adsl",
            plausibility,
            ["subject_id"],
            "Plausible demographics and baseline labs (quarantine implausible patients for query).",
            aspect="plausibility",
            critical=False,
        ),
    ]


def _adverse_events(cutoff: datetime.date | None) -> list[SuiteSpec]:
    keys = ["subject_id", "ae_spid"]
    query = _with_adsl(
        "adverse_events",
        "coalesce((t.outcome = 'FATAL') = (t.ctcae_grade = 5), true) as fatal_is_grade_5, "
        "coalesce(t.start_date <= a.death_date, true) as starts_before_death",
    )

    def build(gxe: Any) -> list[Any]:
        return [
            _documented(gxe, "adverse_events"),
            *_keys(gxe, keys),
            gxe.ExpectColumnValuesToBeInSet(column="ctcae_grade", value_set=[1, 2, 3, 4, 5]),
            gxe.ExpectColumnValuesToBeInTypeList(column="ctcae_grade", type_list=INTEGER_TYPES),
            *_dates(gxe, ["start_date", "end_date", "analysis_start_date"], cutoff),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="end_date", column_B="start_date", or_equal=True, ignore_row_if="either_value_is_missing"
            ),
            *[
                gxe.ExpectColumnValuesToBeInSet(column=c, value_set=DATE_FLAGS)
                for c in ("start_date_flag", "end_date_flag")
            ],
            *[
                gxe.ExpectColumnValuesToBeInSet(column=c, value_set=YES_NO)
                for c in ("serious_fl", "treatment_emergent_fl")
            ],
            *_true(gxe, "patient_randomised", "fatal_is_grade_5", "starts_before_death"),
        ]

    return [
        _spec(
            "adverse_events",
            query,
            build,
            keys,
            "AEs of randomised patients: CTCAE grade 1-5 (grade 5 = fatal outcome), end not before start, none "
            "starting after death or the cut-off.",
        )
    ]


def _labs(cutoff: datetime.date | None) -> list[SuiteSpec]:
    keys = ["subject_id", "test_code", "collection_date", "visit"]
    units = " or ".join(
        f"(t.test_code = '{code}' and t.standard_unit = '{unit}')" for code, (unit, _, _) in LAB_BOUNDS.items()
    )
    query = _with_adsl(
        "labs",
        f"coalesce({units}, false) as standard_unit_valid, "
        "count(*) filter (where t.baseline_fl = 'Y') over (partition by t.subject_id, t.test_code) <= 1 "
        "as one_baseline",
    )

    def build(gxe: Any) -> list[Any]:
        return [
            _documented(gxe, "labs"),
            *_keys(gxe, keys),
            gxe.ExpectColumnValuesToBeInSet(column="test_code", value_set=list(LAB_BOUNDS)),
            gxe.ExpectColumnValuesToBeInSet(column="ctcae_grade", value_set=[0, 1, 2, 3, 4]),
            gxe.ExpectColumnValuesToBeBetween(column="standard_value", min_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="study_day", min_value=-SCREENING_DAYS),
            *_dates(gxe, ["collection_date"], cutoff),
            gxe.ExpectColumnValuesToBeInSet(column="baseline_fl", value_set=YES_NO),
            *_true(gxe, "patient_randomised", "standard_unit_valid", "one_baseline"),
        ]

    def plausibility(gxe: Any) -> list[Any]:
        return [
            gxe.ExpectColumnValuesToBeBetween(
                column="standard_value",
                min_value=low,
                max_value=high,
                row_condition=f'test_code=="{code}"',
                condition_parser="pandas",
                description=f"{code} within {low:g}-{high:g} {unit}",
            )
            for code, (unit, low, high) in LAB_BOUNDS.items()
        ]

    return [
        _spec(
            "labs",
            query,
            build,
            keys,
            "Labs of randomised patients in the standard unit of each test, CTCAE grade 0-4, one baseline per "
            "test, within the screening window and the cut-off.",
        ),
        _spec(
            "labs",
            "select subject_id, test_code, collection_date, visit, standard_value, standard_unit from marts.labs",
            plausibility,
            keys,
            "Lab values within broad physiological bounds (a unit error or a typo otherwise).",
            aspect="plausibility",
            critical=False,
        ),
    ]


def _exposure(cutoff: datetime.date | None) -> list[SuiteSpec]:
    keys = ["subject_id", "drug", "drug_record_number"]
    # The band dose from the patient's baseline weight, independently of the dbt weight-band model.
    band_dose = (
        f"case when a.baseline_weight_kg is null then null when a.baseline_weight_kg <= {WEIGHT_BAND_KG} "
        f"then {LENVATINIB_LOW_MG} else {LENVATINIB_HIGH_MG} end"
    )
    planned = (
        f"case t.drug when 'LENVATINIB' then {band_dose} when 'PD-1 ANTIBODY' then {PD1_DOSE_MG} "
        f"when 'STUDY CAPSULES' then {CAPSULES_PER_DAY} end"
    )
    deviation = (
        f"case when t.drug <> 'LENVATINIB' or t.dose is null or ({band_dose}) is null then null "
        f"when (t.drug_record_number = 1 and t.dose <> {band_dose}) or t.dose > {band_dose} then 'Y' else 'N' end"
    )
    query = _with_adsl(
        "exposure",
        f"t.planned_dose is not distinct from {planned} as planned_dose_matches_protocol, "
        f"t.dose_band_deviation_fl is not distinct from {deviation} as dose_band_deviation_fl_consistent",
    )
    # Warning: lenvatinib starts at the band dose; any later lower dose follows a documented reduction or
    # interruption (an adjustment reason on this or an earlier record of the drug).
    band_query = f"""
        select t.subject_id, t.drug, t.drug_record_number, t.dose, a.baseline_weight_kg,
            coalesce(case
                when t.drug_record_number = 1 then t.dose = {band_dose}
                else t.dose = {band_dose} or (t.dose < {band_dose} and bool_or(t.adjustment_reason is not null)
                    over (partition by t.subject_id, t.drug order by t.drug_record_number))
            end, false) as lenvatinib_dose_matches_band
        from marts.exposure t left join marts.adsl a on a.subject_id = t.subject_id
        where t.drug = 'LENVATINIB'
    """

    def build(gxe: Any) -> list[Any]:
        return [
            _documented(gxe, "exposure"),
            *_keys(gxe, keys),
            gxe.ExpectColumnValuesToBeInSet(column="drug", value_set=["LENVATINIB", "PD-1 ANTIBODY", "STUDY CAPSULES"]),
            gxe.ExpectColumnValuesToNotBeNull(column="start_date"),
            *_dates(gxe, ["start_date", "end_date"], cutoff),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="end_date", column_B="start_date", or_equal=True, ignore_row_if="either_value_is_missing"
            ),
            gxe.ExpectColumnValuesToBeBetween(column="dose", min_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="capsules_taken", min_value=0, max_value=90),
            gxe.ExpectColumnValuesToBeBetween(column="capsule_compliance", min_value=0, max_value=1.5),
            gxe.ExpectColumnValuesToBeInSet(column="dose_band_deviation_fl", value_set=YES_NO),
            *_true(gxe, "patient_randomised", "planned_dose_matches_protocol", "dose_band_deviation_fl_consistent"),
        ]

    def band(gxe: Any) -> list[Any]:
        return _true(gxe, "lenvatinib_dose_matches_band")

    return [
        _spec(
            "exposure",
            query,
            build,
            keys,
            "Dosing of randomised patients: protocol doses (lenvatinib 8 mg <= 60 kg / 12 mg > 60 kg, PD-1 200 mg, "
            "6 capsules/day) and the weight-band deviation flag agree with the baseline weight.",
        ),
        _spec(
            "exposure",
            band_query,
            band,
            keys,
            "Lenvatinib protocol deviations: a starting dose off the weight band, or a lower dose without a "
            "documented reduction or interruption (flagged in dose_band_deviation_fl; for medical review).",
            aspect="dose_band",
            critical=False,
        ),
    ]


def _tumor_measurements(cutoff: datetime.date | None) -> list[SuiteSpec]:
    keys = ["subject_id", "visit", "lesion_id"]
    # RECIST 1.1: a nodal target is measured on its short axis, any other target on its long axis.
    axis_rule = (
        "case when t.lesion_category <> 'TARGET' or t.diameter_mm is null then true "
        "when t.is_nodal = 'Y' then t.axis = 'SHORT' else t.axis = 'LONG' end"
    )
    query = _with_adsl("tumor_measurements", f"coalesce({axis_rule}, false) as axis_matches_lesion")

    def build(gxe: Any) -> list[Any]:
        return [
            _documented(gxe, "tumor_measurements"),
            *_keys(gxe, keys),
            gxe.ExpectColumnValuesToBeInSet(column="lesion_category", value_set=["TARGET", "NON-TARGET", "NEW"]),
            gxe.ExpectColumnValuesToBeInSet(column="is_nodal", value_set=YES_NO),
            gxe.ExpectColumnValuesToBeInSet(column="axis", value_set=["LONG", "SHORT"]),
            gxe.ExpectColumnValuesToBeBetween(column="diameter_mm", min_value=0, max_value=500),
            gxe.ExpectColumnValuesToBeBetween(column="viable_diameter_mm", min_value=0, max_value=500),
            gxe.ExpectColumnValuesToBeBetween(column="sum_of_diameters_mm", min_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="study_day", min_value=-SCREENING_DAYS),
            *_dates(gxe, ["assessment_date"], cutoff),
            gxe.ExpectColumnValuesToBeInSet(column="baseline_fl", value_set=YES_NO),
            *_true(gxe, "patient_randomised", "axis_matches_lesion"),
        ]

    return [
        _spec(
            "tumor_measurements",
            query,
            build,
            keys,
            "Lesion measurements of randomised patients: one per lesion and visit, nodal targets on the short "
            "axis and others on the long axis, non-negative diameters, within screening and cut-off.",
        )
    ]


def _investigator_responses(cutoff: datetime.date | None) -> list[SuiteSpec]:
    keys = ["subject_id", "visit"]
    query = _with_adsl("investigator_responses")

    def build(gxe: Any) -> list[Any]:
        return [
            _documented(gxe, "investigator_responses"),
            *_keys(gxe, keys),
            gxe.ExpectColumnValuesToNotBeNull(column="overall_response"),
            gxe.ExpectColumnValuesToBeInSet(column="overall_response", value_set=OVERALL_RESPONSES),
            gxe.ExpectColumnValuesToBeInSet(column="target_response", value_set=TARGET_RESPONSES),
            gxe.ExpectColumnValuesToBeInSet(column="non_target_response", value_set=NON_TARGET_RESPONSES),
            gxe.ExpectColumnValuesToBeInSet(column="new_lesions", value_set=YES_NO),
            # Responses are post-baseline: an assessment before randomisation cannot count towards BOR.
            gxe.ExpectColumnValuesToBeBetween(column="study_day", min_value=1),
            *_dates(gxe, ["assessment_date"], cutoff),
            *_true(gxe, "patient_randomised"),
        ]

    return [
        _spec(
            "investigator_responses",
            query,
            build,
            keys,
            "Investigator responses of randomised patients: RECIST codes as the marts spell them, post-baseline, "
            "not after the cut-off.",
        )
    ]


def _qol_items(cutoff: datetime.date | None) -> list[SuiteSpec]:
    keys = ["subject_id", "visit", "item_code"]
    # QLQ-C30: items 1-28 are scored 1-4, items 29-30 (global health) 1-7.
    query = _with_adsl(
        "qol_items",
        "coalesce(t.response between 1 and case when t.item_number >= 29 then 7 else 4 end, true) "
        "as response_in_item_range",
    )

    def build(gxe: Any) -> list[Any]:
        return [
            _documented(gxe, "qol_items"),
            *_keys(gxe, keys),
            gxe.ExpectColumnValuesToBeBetween(column="item_number", min_value=1, max_value=30),
            gxe.ExpectColumnValuesToBeBetween(column="study_day", min_value=-SCREENING_DAYS),
            *_dates(gxe, ["questionnaire_date"], cutoff),
            *_true(gxe, "patient_randomised", "response_in_item_range"),
        ]

    return [
        _spec(
            "qol_items",
            query,
            build,
            keys,
            "QLQ-C30 answers of randomised patients: items 1-30, responses 1-4 (items 29-30: 1-7).",
        )
    ]


def _subsequent_therapy(cutoff: datetime.date | None) -> list[SuiteSpec]:
    keys = ["subject_id", "source_file", "source_row"]
    # The mart keeps no date when the month is unknown (flag M), but the delivered string still has the year
    # (``2025-UNK-UNK``): read it back through the lineage from staging, which holds the string as delivered.
    query = r"""
        with delivered as (
            select _source_file, _row_number,
                try_cast(regexp_extract(start_dtc, '(\d{4})', 1) as integer) as start_year
            from staging.stg_crf__cm
        )
        select t.*,
            coalesce(a.randomisation_date is not null, false) as patient_randomised,
            coalesce(case
                when t.start_date is not null
                    then (t.after_randomisation_fl = 'Y') = (t.start_date >= a.randomisation_date)
                -- month unknown: a later year is certainly after randomisation, an earlier one certainly before
                when d.start_year > year(a.randomisation_date) then t.after_randomisation_fl = 'Y'
                when d.start_year < year(a.randomisation_date) then t.after_randomisation_fl = 'N'
            end, true) as after_randomisation_fl_consistent,
            case
                when t.start_date_flag is null then true
                -- day unknown: undetermined only in the randomisation month (the date is its first day)
                when t.start_date is not null
                    then date_trunc('month', t.start_date) <> date_trunc('month', a.randomisation_date)
                else coalesce(d.start_year <> year(a.randomisation_date), false)
            end as nact_status_determined
        from marts.subsequent_therapy t
        left join marts.adsl a on a.subject_id = t.subject_id
        left join delivered d on d._source_file = t.source_file and d._row_number = t.source_row
    """

    def build(gxe: Any) -> list[Any]:
        return [
            _documented(gxe, "subsequent_therapy"),
            *_keys(gxe, keys),
            gxe.ExpectColumnValuesToNotBeNull(column="therapy"),
            gxe.ExpectColumnValuesToBeInSet(column="after_randomisation_fl", value_set=YES_NO),
            *_dates(gxe, ["start_date"], cutoff),
            *_true(gxe, "patient_randomised", "after_randomisation_fl_consistent"),
        ]

    def nact_status(gxe: Any) -> list[Any]:
        return _true(gxe, "nact_status_determined")

    return [
        _spec(
            "subsequent_therapy",
            query,
            build,
            keys,
            "New anti-cancer therapies of randomised patients; the NACT flag (after_randomisation_fl, which "
            "censors PFS) agrees with the start date, or with the delivered year when the month is unknown.",
        ),
        _spec(
            "subsequent_therapy",
            query,
            nact_status,
            keys,
            "Therapies whose partial start date may fall either side of randomisation (NACT status undetermined): "
            "query the site for the full date.",
            aspect="nact_status",
            critical=False,
        ),
    ]


# ------------------------------------------------------------------------------------------------ omics


def _samples(cutoff: datetime.date | None) -> list[SuiteSpec]:
    keys = ["specimen_barcode"]
    query = _with_adsl(
        "samples",
        "coalesce((t.sequenced_fl = 'Y') = (t.sequencing_libraries > 0), false) as sequenced_fl_consistent, "
        "coalesce((t.profiled_fl = 'Y') = (t.metabolomics_injections > 0), false) as profiled_fl_consistent",
    )

    def build(gxe: Any) -> list[Any]:
        return [
            _documented(gxe, "samples"),
            *_keys(gxe, keys),
            gxe.ExpectColumnValuesToNotBeNull(column="subject_id"),
            gxe.ExpectColumnValuesToBeInSet(column="specimen_type", value_set=["FAECES", "SERUM"]),
            gxe.ExpectColumnValuesToBeBetween(column="study_day", min_value=-SCREENING_DAYS),
            *_dates(gxe, ["collection_date"], cutoff),
            gxe.ExpectColumnValuesToBeBetween(column="sequencing_depth", min_value=1),
            *_true(gxe, "patient_randomised", "sequenced_fl_consistent", "profiled_fl_consistent"),
        ]

    def depth(gxe: Any) -> list[Any]:
        return [gxe.ExpectColumnValuesToBeBetween(column="sequencing_depth", min_value=MIN_LIBRARY_SIZE)]

    return [
        _spec(
            "samples",
            query,
            build,
            keys,
            "Biospecimens: one per barcode, each of a randomised patient, FAECES or SERUM, within screening and "
            "cut-off; omics status flags agree with the linked libraries and injections.",
        ),
        _spec(
            "samples",
            "select specimen_barcode, sequencing_depth from marts.samples",
            depth,
            keys,
            f"Sequenced specimens have at least {MIN_LIBRARY_SIZE} reads in their deepest library.",
            aspect="depth",
            critical=False,
        ),
    ]


def _taxa_counts() -> list[SuiteSpec]:
    keys = ["batch_id", "sample_id", "feature_id"]
    query = """
        select c.*,
            coalesce(s.subject_id = c.subject_id, false) as specimen_of_patient,
            coalesce(a.randomisation_date is not null, false) as patient_randomised,
            x.feature_id is not null as feature_in_taxonomy,
            abs(sum(c.relative_abundance) over (partition by c.batch_id, c.sample_id) - 1) < 1e-6
                as abundances_sum_to_one
        from marts.taxa_counts c
        left join marts.samples s on s.specimen_barcode = c.specimen_barcode
        left join marts.adsl a on a.subject_id = c.subject_id
        left join marts.taxonomy x on x.batch_id = c.batch_id and x.feature_id = c.feature_id
    """
    library_query = """
        select c.batch_id, c.sample_id, sum(c.read_count) as library_size,
            sum(case when x.phylum is null then c.read_count else 0 end) / sum(c.read_count) as unassigned_phylum_share
        from marts.taxa_counts c
        left join marts.taxonomy x on x.batch_id = c.batch_id and x.feature_id = c.feature_id
        group by c.batch_id, c.sample_id
    """

    def build(gxe: Any) -> list[Any]:
        return [
            _documented(gxe, "taxa_counts"),
            *_keys(gxe, keys),
            gxe.ExpectColumnValuesToNotBeNull(column="specimen_barcode"),
            # Sparse counts: zeros are not stored, every count is a positive integer.
            gxe.ExpectColumnValuesToBeBetween(column="read_count", min_value=1),
            gxe.ExpectColumnValuesToBeInTypeList(column="read_count", type_list=INTEGER_TYPES),
            gxe.ExpectColumnValuesToBeBetween(column="relative_abundance", min_value=0, max_value=1, strict_min=True),
            *_true(gxe, "specimen_of_patient", "patient_randomised", "feature_in_taxonomy", "abundances_sum_to_one"),
        ]

    def libraries(gxe: Any) -> list[Any]:
        return [
            gxe.ExpectColumnValuesToBeBetween(column="library_size", min_value=MIN_LIBRARY_SIZE),
            gxe.ExpectColumnValuesToBeBetween(column="unassigned_phylum_share", max_value=MAX_UNASSIGNED_SHARE),
        ]

    return [
        _spec(
            "taxa_counts",
            query,
            build,
            keys,
            "16S counts of patient libraries: positive integers, each library of a logged specimen of a randomised "
            "patient, every feature in the taxonomy, relative abundances summing to 1 per library.",
        ),
        _spec(
            "taxa_counts",
            library_query,
            libraries,
            ["batch_id", "sample_id"],
            f"Per library: at least {MIN_LIBRARY_SIZE} reads and at most {MAX_UNASSIGNED_SHARE:.0%} of reads "
            "without a phylum (shallow or off-target libraries).",
            aspect="libraries",
            critical=False,
        ),
    ]


def _taxonomy() -> list[SuiteSpec]:
    keys = ["batch_id", "feature_id"]

    def build(gxe: Any) -> list[Any]:
        return [
            _documented(gxe, "taxonomy"),
            *_keys(gxe, keys),
            gxe.ExpectColumnValuesToNotBeNull(column="taxonomy_string"),
            gxe.ExpectColumnValuesToBeInSet(
                column="taxonomy_style", value_set=["SILVA", "GREENGENES", "PREFIXED", "MOTHUR", "UNASSIGNED", "OTHER"]
            ),
            gxe.ExpectColumnValuesToBeInSet(column="kingdom", value_set=["Bacteria", "Archaea"]),
        ]

    return [
        _spec(
            "taxonomy",
            "select * from marts.taxonomy",
            build,
            keys,
            "Taxonomy: one per feature, parsed string style known, prokaryote kingdoms only.",
        )
    ]


def _sequencing_controls() -> list[SuiteSpec]:
    keys = ["batch_id", "sample_id"]

    def build(gxe: Any) -> list[Any]:
        return [
            _documented(gxe, "sequencing_controls"),
            *_keys(gxe, keys),
            gxe.ExpectColumnValuesToBeInSet(column="sample_role", value_set=["NEGATIVE_CONTROL", "MOCK"]),
            gxe.ExpectColumnValuesToBeBetween(column="library_size", min_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="n_features", min_value=0),
        ]

    return [
        _spec(
            "sequencing_controls",
            "select * from marts.sequencing_controls",
            build,
            keys,
            "Control libraries: negative controls and mock communities, one per batch and sample id.",
        )
    ]


def _sequencing_control_counts() -> list[SuiteSpec]:
    keys = ["batch_id", "sample_id", "feature_id"]
    query = """
        select c.*, coalesce(s.sample_role = c.sample_role, false) as control_listed
        from marts.sequencing_control_counts c
        left join marts.sequencing_controls s on s.batch_id = c.batch_id and s.sample_id = c.sample_id
    """

    def build(gxe: Any) -> list[Any]:
        return [
            _documented(gxe, "sequencing_control_counts"),
            *_keys(gxe, keys),
            gxe.ExpectColumnValuesToBeBetween(column="read_count", min_value=1),
            *_true(gxe, "control_listed"),
        ]

    return [
        _spec(
            "sequencing_control_counts",
            query,
            build,
            keys,
            "Control counts: positive, each of a listed control library with the same role.",
        )
    ]


def _metabolite_features() -> list[SuiteSpec]:
    keys = ["batch_id", "feature_id", "ion_mode"]

    def build(gxe: Any) -> list[Any]:
        return [
            _documented(gxe, "metabolite_features"),
            *_keys(gxe, keys),
            gxe.ExpectColumnValuesToBeInSet(column="ion_mode", value_set=["POS", "NEG"]),
            gxe.ExpectColumnValuesToNotBeNull(column="mz"),
            gxe.ExpectColumnValuesToBeBetween(column="mz", min_value=0, strict_min=True),
            gxe.ExpectColumnValuesToBeBetween(column="rt_min", min_value=0),
        ]

    def identifiers(gxe: Any) -> list[Any]:
        # Several ids are separated by ';'. Invalid tokens are listed by analysis.metabolite_annotation_invalid.
        return [
            gxe.ExpectColumnValuesToMatchRegex(column="kegg_id", regex=r"^C\d{5}(;C\d{5})*$"),
            gxe.ExpectColumnValuesToMatchRegex(column="hmdb_id", regex=r"^HMDB\d{5,7}(;HMDB\d{5,7})*$"),
            gxe.ExpectColumnValuesToBeBetween(column="mz", min_value=30, max_value=2000),
        ]

    return [
        _spec(
            "metabolite_features",
            "select * from marts.metabolite_features",
            build,
            keys,
            "Metabolomics features: one per batch, feature id and ion mode, positive m/z, non-negative RT.",
        ),
        _spec(
            "metabolite_features",
            "select batch_id, feature_id, ion_mode, mz, kegg_id, hmdb_id from marts.metabolite_features",
            identifiers,
            keys,
            "Annotation ids in KEGG COMPOUND / HMDB syntax and m/z in the instruments' range.",
            aspect="identifiers",
            critical=False,
        ),
    ]


def _metabolite_intensities() -> list[SuiteSpec]:
    keys = ["batch_id", "feature_id", "ion_mode", "injection_id"]
    query = """
        select i.*,
            coalesce(s.subject_id = i.subject_id, false) as specimen_of_patient,
            coalesce(s.specimen_type = i.matrix, false) as matrix_matches_specimen,
            coalesce(a.randomisation_date is not null, false) as patient_randomised,
            f.feature_id is not null as feature_listed
        from marts.metabolite_intensities i
        left join marts.samples s on s.specimen_barcode = i.specimen_barcode
        left join marts.adsl a on a.subject_id = i.subject_id
        left join marts.metabolite_features f
            on f.batch_id = i.batch_id and f.feature_id = i.feature_id and f.ion_mode = i.ion_mode
    """

    def build(gxe: Any) -> list[Any]:
        return [
            _documented(gxe, "metabolite_intensities"),
            *_keys(gxe, keys),
            gxe.ExpectColumnValuesToBeBetween(column="intensity", min_value=0, strict_min=True),
            gxe.ExpectColumnValuesToBeInSet(column="matrix", value_set=["FAECES", "SERUM"]),
            *_true(gxe, "specimen_of_patient", "matrix_matches_specimen", "patient_randomised", "feature_listed"),
        ]

    return [
        _spec(
            "metabolite_intensities",
            query,
            build,
            keys,
            "Metabolomics intensities of patient injections: positive, each of a logged specimen of a randomised "
            "patient with the injection's matrix, every feature listed.",
        )
    ]


def _metabolomics_qc_injections() -> list[SuiteSpec]:
    keys = ["batch_id", "injection_id"]

    def build(gxe: Any) -> list[Any]:
        return [
            _documented(gxe, "metabolomics_qc_injections"),
            *_keys(gxe, keys),
            gxe.ExpectColumnValuesToBeInSet(column="sample_type", value_set=["QC", "BLANK"]),
            gxe.ExpectColumnValuesToBeInSet(column="matrix", value_set=["FAECES", "SERUM"]),
            gxe.ExpectColumnValuesToBeBetween(column="run_order", min_value=1),
        ]

    return [
        _spec(
            "metabolomics_qc_injections",
            "select * from marts.metabolomics_qc_injections",
            build,
            keys,
            "Pooled-QC and blank injections, one per batch and injection id.",
        )
    ]


def _metabolomics_qc_intensities() -> list[SuiteSpec]:
    keys = ["batch_id", "feature_id", "ion_mode", "injection_id"]
    query = """
        select q.*, coalesce(j.sample_type = q.sample_type, false) as injection_listed
        from marts.metabolomics_qc_intensities q
        left join marts.metabolomics_qc_injections j on j.batch_id = q.batch_id and j.injection_id = q.injection_id
    """
    rsd_query = """
        select batch_id, feature_id, ion_mode, count(*) as n_qc,
            100 * stddev_samp(intensity) / avg(intensity) as qc_rsd_pct
        from marts.metabolomics_qc_intensities where sample_type = 'QC'
        group by batch_id, feature_id, ion_mode
    """

    def build(gxe: Any) -> list[Any]:
        return [
            _documented(gxe, "metabolomics_qc_intensities"),
            *_keys(gxe, keys),
            gxe.ExpectColumnValuesToBeBetween(column="intensity", min_value=0, strict_min=True),
            *_true(gxe, "injection_listed"),
        ]

    def rsd(gxe: Any) -> list[Any]:
        # A few unstable features are normal (drift correction and the RSD filter handle them); a batch where
        # many pooled QCs disagree is an instrument fault.
        return [
            gxe.ExpectColumnValuesToBeBetween(
                column="qc_rsd_pct", min_value=0, max_value=MAX_QC_RSD_PCT, mostly=MIN_STABLE_QC_FEATURES
            ),
            gxe.ExpectColumnValuesToBeBetween(column="n_qc", min_value=3),
        ]

    return [
        _spec(
            "metabolomics_qc_intensities",
            query,
            build,
            keys,
            "QC/blank intensities: positive, each of a listed QC or blank injection of the same type.",
        ),
        _spec(
            "metabolomics_qc_intensities",
            rsd_query,
            rsd,
            ["batch_id", "feature_id", "ion_mode"],
            f"Pooled-QC RSD before drift correction: at least {MIN_STABLE_QC_FEATURES:.0%} of features below "
            f"{MAX_QC_RSD_PCT:g} %, at least 3 QC injections per feature.",
            aspect="qc_rsd",
            critical=False,
        ),
    ]


def _unlinked_omics_samples() -> list[SuiteSpec]:
    keys = ["platform", "batch_id", "omics_sample_id"]
    issues = ["ORPHAN_BARCODE", "NO_BARCODE", "NOT_IN_MANIFEST", "NOT_IN_TABLE"]
    query = """
        select u.*, s.specimen_barcode is null as barcode_not_logged
        from marts.unlinked_omics_samples u left join marts.samples s on s.specimen_barcode = u.specimen_barcode
    """

    def build(gxe: Any) -> list[Any]:
        return [
            _documented(gxe, "unlinked_omics_samples"),
            *_keys(gxe, keys),
            gxe.ExpectColumnValuesToBeInSet(column="platform", value_set=["SEQUENCING", "METABOLOMICS"]),
            gxe.ExpectColumnValuesToBeInSet(column="issue", value_set=issues),
            # The listing is the follow-up of samples that did not link: an orphan's barcode is not logged.
            gxe.ExpectColumnValuesToBeInSet(
                column="barcode_not_logged",
                value_set=[True],
                row_condition='issue=="ORPHAN_BARCODE"',
                condition_parser="pandas",
            ),
        ]

    def open_issues(gxe: Any) -> list[Any]:
        # Every row is an open data-management query (by design the demo has one orphan library).
        return [gxe.ExpectColumnValuesToNotBeInSet(column="issue", value_set=issues)]

    return [
        _spec(
            "unlinked_omics_samples",
            query,
            build,
            keys,
            "Omics samples that did not link to a logged specimen: known platform and issue, one row each.",
        ),
        _spec(
            "unlinked_omics_samples",
            "select platform, batch_id, omics_sample_id, issue from marts.unlinked_omics_samples",
            open_issues,
            keys,
            "Open omics linkage issues (orphan barcodes, libraries/injections missing from manifests or tables) "
            "awaiting data-management follow-up.",
            aspect="open_issues",
            critical=False,
        ),
    ]


# ------------------------------------------------------------------------------------------------ registry


def mart_suites(cutoff: datetime.date | None = None) -> dict[str, SuiteSpec]:
    """Suites of the marts: ``<table>`` (critical) for every mart and ``<table>.<aspect>`` (warnings)."""
    specs = [
        *_adsl(cutoff),
        *_adverse_events(cutoff),
        *_labs(cutoff),
        *_exposure(cutoff),
        *_tumor_measurements(cutoff),
        *_investigator_responses(cutoff),
        *_qol_items(cutoff),
        *_subsequent_therapy(cutoff),
        *_samples(cutoff),
        *_taxa_counts(),
        *_taxonomy(),
        *_sequencing_controls(),
        *_sequencing_control_counts(),
        *_metabolite_features(),
        *_metabolite_intensities(),
        *_metabolomics_qc_injections(),
        *_metabolomics_qc_intensities(),
        *_unlinked_omics_samples(),
    ]
    return {spec.name.removeprefix("marts."): spec for spec in specs}
