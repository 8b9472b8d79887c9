"""Analysis-layer suites: the endpoint, microbiome and metabolomics tables the assets write to schema ``analysis``.

One **critical** suite per table, keyed by the table name (``analysis_suites()["km_estimates"]``, suite
``analysis.km_estimates``): the columns the checks need are present, keys are unique and filled, patient rows
belong to randomised patients, probabilities, p- and q-values, proportions and coverages lie in [0, 1], BH
q-values are not below their p-values, confidence intervals contain their estimates, hazard ratios are
positive, Kaplan-Meier curves never rise, ordination proportions explained sum to at most 1, derived flags
agree with what they are derived from (responder = CR/PR, Child-Pugh class from the score, ...), dates are not
after the data cut-off, and blinding holds: a blinded warehouse has no ``arm`` column, only ``POOLED`` groups and
empty arm-comparison tables.

A few QC tables also have a **warning** suite keyed ``"<table>.<aspect>"`` (suite
``analysis.<table>.<aspect>``): contaminated negative controls, a mock community not recovered, flagged
patient libraries, metabolomics features still unstable after drift correction. Their rows are for review and
quarantine; they do not stop the run.

Rules over several rows or tables are computed in ``query`` as boolean flag columns named after the rule and
expected true. Arm columns never reach a frame (``columns(lambda c: c not in ('arm', 'arm_code'))``) and, in a
blinded warehouse, a group label other than ``POOLED`` is masked before it could appear in a failure sample.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from expectations.runner import SuiteSpec
from expectations.suites.marts import (
    INTEGER_TYPES,
    MAX_QC_RSD_PCT,
    OVERALL_RESPONSES,
    UNBLINDED_SQL,
    _keys,
    _true,
    latest_date,
)

#: BOR codes: the time-point responses plus MISSING (no post-baseline assessment).
BOR_CODES = [*OVERALL_RESPONSES, "MISSING"]
#: Floating-point slack for sums and monotonicity of computed probabilities (R's summary() rounds to 5 decimals).
EPS = 1e-4
#: A mock community is considered recovered with at least 6 of its 8 genera and a Bray-Curtis distance to the
#: theoretical composition of at most 0.25 (clean runs: 8/8 and < 0.02).
MIN_MOCK_RECOVERED = 0.75
MAX_MOCK_BRAYCURTIS = 0.25

Checks = Callable[[Any], list[Any]]


@dataclass(frozen=True)
class Table:
    """How to validate one analysis table."""

    keys: tuple[str, ...]
    checks: Checks
    description: str
    #: Select items (SQL over the table aliased ``t`` and, with ``patient``, adsl aliased ``a``) adding rule flags.
    flags: str = ""
    #: Rows are patients' rows (``subject_id``): expose ``patient_randomised`` from adsl.
    patient: bool = False
    #: ``subject_id`` may be NULL (e.g. pooled QC injections): only non-NULL ones must be randomised.
    patient_optional: bool = False
    #: The table has a ``group`` column (POOLED, or CAPSULE/PLACEBO in unblinded runs).
    grouped: bool = False
    #: Arm comparisons: written empty in a blinded warehouse.
    arm_only: bool = False
    nullable: tuple[str, ...] = ()
    #: (p-value, BH q-value) column pairs: both in [0, 1], q not below p.
    pq: tuple[tuple[str, str], ...] = ()
    #: Date columns that must not be after the data cut-off.
    dates: tuple[str, ...] = ()
    critical: bool = True
    aspect: str = ""
    #: Replaces the generated query (warning suites on a projection or an aggregate).
    query: str = ""


# ------------------------------------------------------------------------------------------------ helpers


def _unit(gxe: Any, *columns: str) -> list[Any]:
    """Probabilities, proportions, p/q-values, coverages: within [0, 1]."""
    return [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=1) for c in columns]


def _non_negative(gxe: Any, *columns: str) -> list[Any]:
    return [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0) for c in columns]


def _counts(gxe: Any, *columns: str) -> list[Any]:
    """Counts: non-negative (their integer type is checked where a float would change a result, _integers)."""
    return [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0) for c in columns]


def _integers(gxe: Any, *columns: str) -> list[Any]:
    """Integer-typed columns (a float AVAL or CNSR would mean a changed derivation, not a rounding)."""
    return [gxe.ExpectColumnValuesToBeInTypeList(column=c, type_list=INTEGER_TYPES) for c in columns]


def _ordered(gxe: Any, low: str, high: str) -> Any:
    """``low <= high`` where both are known (CI bounds around estimates, p <= q, first <= last)."""
    return gxe.ExpectColumnPairValuesAToBeGreaterThanB(
        column_A=high, column_B=low, or_equal=True, ignore_row_if="either_value_is_missing"
    )


def _ci(gxe: Any, lower: str, estimate: str, upper: str) -> list[Any]:
    return [_ordered(gxe, lower, estimate), _ordered(gxe, estimate, upper)]


def _pq_flag(p: str, q: str) -> str:
    """SQL flag: Benjamini-Hochberg never lowers a p-value (up to the last bits of a float)."""
    return f"coalesce(t.{q} >= t.{p} * (1 - 1e-12), true) as {q}_not_below_{p}"


def _pq_checks(gxe: Any, pairs: Sequence[tuple[str, str]]) -> list[Any]:
    return [check for p, q in pairs for check in (*_unit(gxe, p, q), *_true(gxe, f"{q}_not_below_{p}"))]


def _referenced(expectations: Sequence[Any]) -> list[str]:
    """Columns the expectations use: the table's schema contract (plus the suite's own flag columns)."""
    found: list[str] = []
    for expectation in expectations:
        kwargs = expectation.model_dump() if hasattr(expectation, "model_dump") else expectation.dict()
        for name in ("column", "column_A", "column_B"):
            if kwargs.get(name):
                found.append(kwargs[name])
        found.extend(kwargs.get("column_list") or [])
    return sorted(set(found))


def _query(table: str, spec: Table) -> str:
    if spec.query:
        return spec.query
    arm_columns = (
        "(select count(*) from information_schema.columns where table_schema = 'analysis' "
        f"and table_name = '{table}' and column_name in ('arm', 'arm_code'))"
    )
    items = ['t.* exclude ("group")' if spec.grouped else "t.*"]
    if spec.patient:
        # Patient-level tables carry the arm in unblinded runs only.
        items.append(f"({UNBLINDED_SQL} or {arm_columns} = 0) as no_arm_in_blinded_run")
    items += [_pq_flag(p, q) for p, q in spec.pq]
    source = "select columns(lambda c: c not in ('arm', 'arm_code')) from analysis." + table
    if spec.grouped:
        # A blinded run pools everything; any other label is masked so that no failure sample shows it.
        items.append(
            f'case when {UNBLINDED_SQL} or t."group" = \'POOLED\' then t."group" else \'MASKED\' end as "group"'
        )
        items.append(f"({UNBLINDED_SQL} or t.\"group\" = 'POOLED') as group_fits_blinding")
    if spec.arm_only:
        items.append(f"{UNBLINDED_SQL} as unblinded_run")
    join = ""
    if spec.patient:
        join = " left join marts.adsl a on a.subject_id = t.subject_id"
        randomised = "coalesce(a.randomisation_date is not null, false)"
        if spec.patient_optional:
            randomised = f"(t.subject_id is null or {randomised})"
        items.append(f"{randomised} as patient_randomised")
    if spec.flags:
        items.append(spec.flags)
    return f"with t as ({source}) select {', '.join(items)} from t{join}"


def _suite(table: str, spec: Table, cutoff: datetime.date | None) -> SuiteSpec:
    def expectations() -> list[Any]:
        import great_expectations.expectations as gxe

        checks = [*spec.checks(gxe), *_pq_checks(gxe, spec.pq)]
        checks += [gxe.ExpectColumnValuesToBeBetween(column=c, max_value=latest_date(cutoff)) for c in spec.dates]
        if spec.query:
            return [*_keys(gxe, spec.keys, spec.nullable), *checks]
        flags = ["group_fits_blinding"] if spec.grouped else []
        flags += ["unblinded_run"] if spec.arm_only else []
        flags += ["no_arm_in_blinded_run", "patient_randomised"] if spec.patient else []
        checks += _true(gxe, *flags)
        schema = gxe.ExpectTableColumnsToMatchSet(
            column_set=sorted(set(_referenced(checks)) | set(spec.keys)), exact_match=False
        )
        return [schema, *_keys(gxe, spec.keys, spec.nullable), *checks]

    name = f"analysis.{table}" + (f".{spec.aspect}" if spec.aspect else "")
    return SuiteSpec(
        name,
        _query(table, spec),
        expectations,
        critical=spec.critical,
        row_id=spec.keys,
        description=spec.description,
    )


def _tte_flags() -> str:
    # ADTTE: AVAL in days counts both ends (admiral's default), so it is ADT - STARTDT + 1.
    return 'coalesce(t."AVAL" = date_diff(\'day\', t."STARTDT", t."ADT") + 1, false) as aval_matches_dates'


def _tte_checks(gxe: Any) -> list[Any]:
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="AVAL"),
        *_counts(gxe, "AVAL", "CNSR"),
        *_integers(gxe, "AVAL", "CNSR"),
        _ordered(gxe, "STARTDT", "ADT"),
        gxe.ExpectColumnValuesToNotBeNull(column="EVNTDESC"),
        *_true(gxe, "aval_matches_dates"),
    ]


def _survival_summary_checks(gxe: Any) -> list[Any]:
    return [
        *_counts(gxe, "n", "events", "censored"),
        *_non_negative(gxe, "median"),
        *_ci(gxe, "lcl", "median", "ucl"),
        *_unit(gxe, "surv_6m", "surv_12m", "lcl_6m", "ucl_6m", "lcl_12m", "ucl_12m"),
        *_ci(gxe, "lcl_6m", "surv_6m", "ucl_6m"),
        *_ci(gxe, "lcl_12m", "surv_12m", "ucl_12m"),
        # The 12-month rate of a survival curve cannot exceed its 6-month rate.
        _ordered(gxe, "surv_12m", "surv_6m"),
        *_true(gxe, "events_plus_censored_is_n"),
    ]


KM_WINDOW = '(partition by t."PARAMCD", t."group" order by t.time)'
SURVIVAL_SUMMARY_FLAGS = "coalesce(t.events + t.censored = t.n, false) as events_plus_censored_is_n"


# ------------------------------------------------------------------------------------------------ efficacy


def _efficacy() -> dict[str, Table]:
    return {
        "recist_timepoint_responses": Table(
            keys=("subject_id", "criterion", "visit"),
            patient=True,
            dates=("assessment_date",),
            # RECIST/mRECIST: progression of any component (target, non-target, new lesion) is overall PD.
            flags="coalesce(not (t.tl_response = 'PD' or t.ntl_response = 'PD' or t.new_lesion = 'Y') "
            "or t.overall_response = 'PD', false) as pd_component_gives_pd",
            checks=lambda gxe: [
                gxe.ExpectColumnValuesToBeInSet(column="criterion", value_set=["RECIST 1.1", "mRECIST"]),
                gxe.ExpectColumnValuesToBeInSet(column="overall_response", value_set=OVERALL_RESPONSES),
                gxe.ExpectColumnValuesToNotBeNull(column="overall_response"),
                gxe.ExpectColumnValuesToBeInSet(column="tl_response", value_set=["CR", "PR", "SD", "PD", "NE", "NA"]),
                gxe.ExpectColumnValuesToBeInSet(
                    column="ntl_response", value_set=["CR", "NON-CR/NON-PD", "PD", "NE", "NA"]
                ),
                *_non_negative(gxe, "sod", "nadir", "base"),
                _ordered(gxe, "nadir", "base"),
                *_true(gxe, "pd_component_gives_pd"),
            ],
            description="Derived time-point responses of randomised patients: response codes, non-negative sums, "
            "nadir not above baseline, any progressing component gives overall PD.",
        ),
        "best_overall_response": Table(
            keys=("criterion", "evaluator", "confirmed", "subject_id"),
            patient=True,
            dates=("bor_date",),
            flags="coalesce(t.responder = (t.bor in ('CR', 'PR')), false) as responder_is_cr_pr, "
            "coalesce(t.disease_control = (t.bor in ('CR', 'PR', 'SD', 'NON-CR/NON-PD')), false) "
            "as disease_control_is_cr_pr_sd",
            checks=lambda gxe: [
                gxe.ExpectColumnValuesToBeInSet(column="bor", value_set=BOR_CODES),
                gxe.ExpectColumnValuesToBeInSet(column="evaluator", value_set=["DERIVED", "INVESTIGATOR"]),
                *_true(gxe, "responder_is_cr_pr", "disease_control_is_cr_pr_sd"),
            ],
            description="BOR per patient, criterion, evaluator and confirmation; responder and disease-control "
            "flags agree with the BOR.",
        ),
        "response_concordance": Table(
            keys=("level",),
            checks=lambda gxe: [
                *_counts(gxe, "n", "n_agree"),
                _ordered(gxe, "n_agree", "n"),
                *_unit(gxe, "agreement"),
                gxe.ExpectColumnValuesToBeBetween(column="kappa", min_value=-1, max_value=1),
            ],
            description="Derived vs investigator agreement: proportions in [0, 1], kappa in [-1, 1].",
        ),
        "response_concordance_by_patient": Table(
            keys=("subject_id",),
            patient=True,
            flags="coalesce(t.bor_agree = (t.bor_derived = t.bor_investigator), false) as bor_agree_consistent, "
            "coalesce(t.cbor_agree = (t.cbor_derived = t.cbor_investigator), false) as cbor_agree_consistent",
            checks=lambda gxe: [
                gxe.ExpectColumnValuesToBeInSet(column="bor_derived", value_set=BOR_CODES),
                gxe.ExpectColumnValuesToBeInSet(column="bor_investigator", value_set=BOR_CODES),
                *_true(gxe, "bor_agree_consistent", "cbor_agree_consistent"),
            ],
            description="Per-patient BOR from both sources; agreement flags agree with the BORs.",
        ),
        "response_discordant_visits": Table(
            keys=("subject_id", "visit"),
            patient=True,
            dates=("derived_date", "investigator_date"),
            checks=lambda gxe: [
                gxe.ExpectColumnValuesToBeInSet(
                    column="status", value_set=["derived only", "investigator only", "both"]
                ),
                # The listing holds disagreements only.
                gxe.ExpectColumnValuesToBeInSet(column="agree", value_set=[False]),
            ],
            description="QA listing of visits where the derived and investigator responses differ.",
        ),
        "adtte": Table(
            keys=("subject_id", "PARAMCD"),
            patient=True,
            dates=("ADT",),
            flags=_tte_flags(),
            checks=_tte_checks,
            description="Time-to-event dataset: one row per patient and parameter, ADT not before STARTDT, AVAL "
            "= ADT - STARTDT + 1 days, integer CNSR codes.",
        ),
        "km_estimates": Table(
            keys=("PARAMCD", "group", "time"),
            grouped=True,
            flags=f"coalesce(t.surv <= lag(t.surv) over {KM_WINDOW} + 1e-12, true) as survival_non_increasing, "
            f"coalesce(t.n_risk <= lag(t.n_risk) over {KM_WINDOW}, true) as at_risk_non_increasing",
            checks=lambda gxe: [
                *_non_negative(gxe, "time"),
                *_unit(gxe, "surv", "lower", "upper"),
                *_ci(gxe, "lower", "surv", "upper"),
                *_counts(gxe, "n_risk", "n_event", "n_censor"),
                *_true(gxe, "survival_non_increasing", "at_risk_non_increasing"),
            ],
            description="Kaplan-Meier estimates: survival in [0, 1] inside its CI, never rising, numbers at risk "
            "never rising.",
        ),
        "survival_summary": Table(
            keys=("PARAMCD", "group"),
            grouped=True,
            flags=SURVIVAL_SUMMARY_FLAGS,
            checks=_survival_summary_checks,
            description="Survival summaries: events + censored = n, medians and landmark rates inside their CIs, "
            "12-month rate not above the 6-month rate.",
        ),
        "survival_comparisons": Table(
            keys=("PARAMCD", "group", "reference", "stratified"),
            grouped=True,
            arm_only=True,
            checks=lambda gxe: [
                *_unit(gxe, "logrank_p", "hr_p"),
                *_non_negative(gxe, "logrank_chi2"),
                gxe.ExpectColumnValuesToBeBetween(column="hr", min_value=0, strict_min=True),
                gxe.ExpectColumnValuesToBeBetween(column="hr_lcl", min_value=0, strict_min=True),
                *_ci(gxe, "hr_lcl", "hr", "hr_ucl"),
            ],
            description="Arm comparisons (unblinded only; empty when blinded): p-values in [0, 1], chi2 >= 0, "
            "HR and CI positive with lower <= HR <= upper.",
        ),
        "response_rates": Table(
            keys=("criterion", "evaluator", "confirmed", "population", "endpoint", "group"),
            grouped=True,
            flags="coalesce(abs(t.rate - t.x / t.n) < 1e-9, t.n = 0) as rate_is_x_over_n",
            checks=lambda gxe: [
                *_counts(gxe, "n", "x"),
                *_integers(gxe, "n", "x"),
                _ordered(gxe, "x", "n"),
                *_unit(gxe, "rate", "lcl", "ucl"),
                *_ci(gxe, "lcl", "rate", "ucl"),
                gxe.ExpectColumnValuesToBeInSet(column="endpoint", value_set=["ORR", "DCR"]),
                *_true(gxe, "rate_is_x_over_n"),
            ],
            description="ORR/DCR: rate = x/n in [0, 1] inside its Clopper-Pearson CI.",
        ),
        "response_rate_differences": Table(
            keys=("criterion", "evaluator", "confirmed", "population", "endpoint", "group", "reference", "method"),
            grouped=True,
            arm_only=True,
            checks=lambda gxe: [
                gxe.ExpectColumnValuesToBeBetween(column="difference", min_value=-1, max_value=1),
                *_ci(gxe, "lcl", "difference", "ucl"),
            ],
            description="ORR/DCR differences (unblinded only; empty when blinded) in [-1, 1] inside their CI.",
        ),
    }


def _endpoint_run(cutoff: datetime.date | None) -> Table:
    # The run record says which cut-off and blinding the endpoint tables were computed with.
    expected_cutoff = f"date '{cutoff.isoformat()}'" if cutoff else "null"
    return Table(
        keys=("computed_at",),
        flags=f"t.blinded = not {UNBLINDED_SQL} as blinding_recorded, "
        f"t.cutoff_date is not distinct from {expected_cutoff} as cutoff_recorded",
        checks=lambda gxe: [
            gxe.ExpectTableRowCountToEqual(value=1),
            gxe.ExpectColumnValuesToNotBeNull(column="config_json"),
            *_true(gxe, "blinding_recorded", "cutoff_recorded"),
        ],
        description="One run record whose blinding and cut-off match this warehouse and validation.",
    )


# ------------------------------------------------------------------------------------------------ safety, QoL


def _pct_checks(gxe: Any) -> list[Any]:
    return [
        *_counts(gxe, "n", "n_population"),
        _ordered(gxe, "n", "n_population"),
        gxe.ExpectColumnValuesToBeBetween(column="pct", min_value=0, max_value=100),
        *_true(gxe, "pct_is_n_over_population"),
    ]


PCT_FLAGS = "coalesce(abs(t.pct - 100.0 * t.n / t.n_population) < 1e-6, t.n_population = 0) as pct_is_n_over_population"


def _safety() -> dict[str, Table]:
    grade = [0, 1, 2, 3, 4]
    return {
        "ae_summary": Table(
            keys=("category", "group"),
            grouped=True,
            flags=PCT_FLAGS,
            checks=_pct_checks,
            description="TEAE overview: subject counts within the safety population, pct = 100 n / N.",
        ),
        "ae_by_soc_term": Table(
            keys=("level", "soc", "term", "grade_group", "group"),
            grouped=True,
            flags=PCT_FLAGS,
            checks=_pct_checks,
            description="TEAEs by SOC and PT: subject counts within the population, pct = 100 n / N.",
        ),
        "lab_grades": Table(
            keys=("subject_id", "test_code", "lab_date", "visit"),
            patient=True,
            dates=("lab_date",),
            checks=lambda gxe: [
                *[gxe.ExpectColumnValuesToBeInSet(column=c, value_set=grade) for c in ("atoxgr", "atoxgrh", "atoxgrl")],
                *_non_negative(gxe, "value"),
                _ordered(gxe, "lln", "uln"),
                gxe.ExpectColumnValuesToBeInSet(column="bnrind", value_set=["LOW", "NORMAL", "HIGH"]),
            ],
            description="CTCAE lab grades of randomised patients: grades 0-4, LLN <= ULN, non-negative values.",
        ),
        "lab_toxicity": Table(
            keys=("subject_id", "test_code"),
            patient=True,
            checks=lambda gxe: [
                gxe.ExpectColumnValuesToBeInSet(column="baseline_grade", value_set=grade),
                gxe.ExpectColumnValuesToBeInSet(column="worst_grade", value_set=grade),
            ],
            description="Baseline and worst post-baseline grade per patient and test: grades 0-4.",
        ),
        "lab_toxicity_summary": Table(
            keys=("test_code", "group"),
            grouped=True,
            flags="coalesce(t.grade_0 + t.grade_1 + t.grade_2 + t.grade_3 + t.grade_4 = t.n_tested, false) "
            "as grades_add_up, coalesce(t.grade_3_plus = t.grade_3 + t.grade_4, false) as grade_3_plus_consistent",
            checks=lambda gxe: [
                *_counts(gxe, "n_population", "n_tested", "grade_0", "grade_3_plus"),
                _ordered(gxe, "n_tested", "n_population"),
                gxe.ExpectColumnValuesToBeBetween(column="pct_grade_3_plus", min_value=0, max_value=100),
                *_true(gxe, "grades_add_up", "grade_3_plus_consistent"),
            ],
            description="Worst-grade summary: grade counts add up to the subjects tested, grade >= 3 = 3 + 4.",
        ),
        "hys_law": Table(
            keys=("subject_id", "reference"),
            patient=True,
            checks=lambda gxe: [
                gxe.ExpectColumnValuesToNotBeNull(column="hys_law"),
                *_non_negative(gxe, "alt_ast_xref", "bili_xref"),
            ],
            description="Hy's law screen per patient and reference (ULN, baseline).",
        ),
        "dose_intensity": Table(
            keys=("subject_id", "drug"),
            patient=True,
            dates=("last_dose_date",),
            checks=lambda gxe: [
                _ordered(gxe, "first_dose_date", "last_dose_date"),
                *_non_negative(gxe, "cumulative_dose", "planned_cumulative_dose", "relative_dose_intensity_pct"),
                *_counts(gxe, "n_records", "duration_days"),
                gxe.ExpectColumnValuesToBeBetween(column="capsule_compliance_pct", min_value=0, max_value=150),
            ],
            description="Dose intensity per patient and drug: non-negative doses, first dose not after the last.",
        ),
        "exposure_summary": Table(
            keys=("drug", "group", "variable"),
            grouped=True,
            checks=lambda gxe: [
                *_counts(gxe, "n"),
                *_non_negative(gxe, "sd"),
                _ordered(gxe, "min", "median"),
                _ordered(gxe, "median", "max"),
                gxe.ExpectColumnValuesToBeBetween(column="pct_yes", min_value=0, max_value=100),
            ],
            description="Exposure statistics: min <= median <= max, SD >= 0.",
        ),
    }


def _qol() -> dict[str, Table]:
    return {
        "qol_scores": Table(
            keys=("subject_id", "visit", "scale"),
            patient=True,
            dates=("assessment_date",),
            checks=lambda gxe: [
                gxe.ExpectColumnValuesToBeBetween(column="score", min_value=0, max_value=100),
                gxe.ExpectColumnValuesToBeBetween(column="base", min_value=0, max_value=100),
                gxe.ExpectColumnValuesToBeBetween(column="chg", min_value=-100, max_value=100),
                _ordered(gxe, "n_answered", "n_items"),
                gxe.ExpectColumnValuesToBeInSet(column="kind", value_set=["functional", "symptom", "global"]),
            ],
            description="QLQ-C30 scores 0-100 (changes -100..100), answered items not above the scale's items.",
        ),
        "qol_change_summary": Table(
            keys=("scale", "visit", "group"),
            grouped=True,
            checks=lambda gxe: [
                *_counts(gxe, "n", "n_change"),
                gxe.ExpectColumnValuesToBeBetween(column="mean_score", min_value=0, max_value=100),
                gxe.ExpectColumnValuesToBeBetween(column="mean_change", min_value=-100, max_value=100),
                *_non_negative(gxe, "sd_score", "sd_change"),
            ],
            description="QoL change summary: mean scores 0-100, mean changes -100..100, SDs >= 0.",
        ),
        "qol_deterioration": Table(
            keys=("subject_id", "PARAMCD"),
            patient=True,
            dates=("ADT",),
            flags=_tte_flags(),
            checks=_tte_checks,
            description="Time to QoL deterioration (ADTTE shape): AVAL = ADT - STARTDT + 1, integer CNSR.",
        ),
        "qol_deterioration_summary": Table(
            keys=("PARAMCD", "group"),
            grouped=True,
            flags=SURVIVAL_SUMMARY_FLAGS,
            checks=_survival_summary_checks,
            description="KM summary of time to deterioration: medians and rates inside their CIs.",
        ),
    }


def _hepatic() -> dict[str, Table]:
    # Johnson 2015 ALBI grades (<= -2.60, <= -1.39) and Child-Pugh classes (A 5-6, B 7-9, C 10-15).
    albi = "case when t.albi_score <= -2.60 then '1' when t.albi_score <= -1.39 then '2' else '3' end"
    child_pugh = "case when t.cp_score <= 6 then 'A' when t.cp_score <= 9 then 'B' else 'C' end"
    return {
        "hepatic_function": Table(
            keys=("subject_id", "lab_date"),
            patient=True,
            dates=("lab_date",),
            flags=f"coalesce(t.albi_grade = {albi}, t.albi_score is null) as albi_grade_matches_score, "
            f"coalesce(t.cp_class = {child_pugh}, t.cp_score is null) as child_pugh_class_matches_score",
            checks=lambda gxe: [
                gxe.ExpectColumnValuesToBeInSet(column="albi_grade", value_set=["1", "2", "3"]),
                gxe.ExpectColumnValuesToBeInSet(column="malbi_grade", value_set=["1", "2a", "2b", "3"]),
                gxe.ExpectColumnValuesToBeBetween(column="cp_score", min_value=5, max_value=15),
                *_true(gxe, "albi_grade_matches_score", "child_pugh_class_matches_score"),
            ],
            description="ALBI and Child-Pugh per draw: grades and classes follow from the scores.",
        ),
    }


# ------------------------------------------------------------------------------------------------ microbiome


def _alpha_checks(gxe: Any) -> list[Any]:
    return [
        *_non_negative(gxe, "nseqs", "sobs", "chao", "ace", "shannon", "invsimpson"),
        *_unit(gxe, "coverage", "simpson"),
        # Chao1 and ACE estimate the unseen too: never below the observed richness.
        _ordered(gxe, "sobs", "chao"),
        _ordered(gxe, "sobs", "nseqs"),
        *_ci(gxe, "shannon_lci", "shannon", "shannon_hci"),
    ]


def _microbiome() -> dict[str, Table]:
    sample = ("batch_id", "sample_id")
    return {
        "microbiome_qc_library_sizes": Table(
            keys=("batch_id", "role"),
            checks=lambda gxe: [
                gxe.ExpectColumnValuesToBeInSet(column="role", value_set=["SAMPLE", "NEGATIVE_CONTROL", "MOCK"]),
                *_counts(gxe, "n"),
                *_non_negative(gxe, "min", "sd", "cv"),
                _ordered(gxe, "min", "median"),
                _ordered(gxe, "median", "max"),
            ],
            description="Library-size distribution per batch and role: min <= median <= max, SD and CV >= 0.",
        ),
        "microbiome_qc_negative_controls": Table(
            keys=sample,
            checks=lambda gxe: [
                *_non_negative(gxe, "reads", "n_features", "ratio_to_median", "ratio_to_min"),
                gxe.ExpectColumnValuesToNotBeNull(column="flag_contamination"),
            ],
            description="Negative controls: non-negative reads and ratios to the batch's patient libraries.",
        ),
        "microbiome_qc_negative_taxa": Table(
            keys=("genus",),
            checks=lambda gxe: _unit(
                gxe, "negative_prevalence", "negative_read_share", "sample_prevalence", "sample_mean_rel_abundance"
            ),
            description="Genera of negative controls: prevalences and shares in [0, 1].",
        ),
        "microbiome_qc_mock_community": Table(
            keys=sample,
            checks=lambda gxe: [
                *_unit(gxe, "recovered_fraction", "unexpected_read_share", "braycurtis_to_expected"),
                _ordered(gxe, "n_recovered", "n_expected"),
            ],
            description="Mock communities: recovered fraction, unexpected share, Bray-Curtis in [0, 1].",
        ),
        "microbiome_qc_mock_taxa": Table(
            keys=(*sample, "genus"),
            checks=lambda gxe: _unit(gxe, "observed_fraction", "expected_fraction"),
            description="Mock community per genus: observed and expected fractions in [0, 1].",
        ),
        "microbiome_qc_sample_flags": Table(
            keys=sample,
            patient=True,
            flags="coalesce(t.flagged = (t.below_rarefaction_depth or t.low_depth or t.high_unassigned "
            "or t.duplicate_library), false) as flagged_consistent",
            checks=lambda gxe: [
                *_counts(gxe, "library_size", "n_features"),
                *_unit(gxe, "unassigned_phylum_share", "unassigned_genus_share"),
                # A library unassigned at phylum is unassigned at genus too.
                _ordered(gxe, "unassigned_phylum_share", "unassigned_genus_share"),
                *_true(gxe, "flagged_consistent"),
            ],
            description="Patient libraries of randomised patients: shares in [0, 1], flagged = any QC flag.",
        ),
        "alpha_diversity": Table(
            keys=sample,
            patient=True,
            checks=_alpha_checks,
            description="Alpha indices: non-negative, coverage and Simpson in [0, 1], Chao1 >= observed "
            "richness <= reads, Shannon inside its CI.",
        ),
        "alpha_diversity_rarefied": Table(
            keys=sample,
            patient=True,
            flags="coalesce(t.nseqs = t.depth, false) as rarefied_to_depth",
            checks=lambda gxe: [
                *_alpha_checks(gxe),
                *_counts(gxe, "depth", "iterations"),
                *_non_negative(gxe, "sobs_sd", "shannon_sd"),
                *_true(gxe, "rarefied_to_depth"),
            ],
            description="Rarefied alpha indices: as unrarefied, every sample subsampled to the chosen depth.",
        ),
        "rarefaction_depth": Table(
            keys=("depth",),
            flags="coalesce(t.n_kept + t.n_below_depth = t.n_samples, false) as samples_add_up",
            checks=lambda gxe: [
                gxe.ExpectTableRowCountToEqual(value=1),
                _ordered(gxe, "floor", "depth"),
                *_unit(gxe, "keep_fraction"),
                *_counts(gxe, "n_samples", "n_kept", "n_below_depth", "iterations"),
                *_true(gxe, "samples_add_up"),
            ],
            description="The rarefaction depth: one row, not below its floor, kept + below = all samples.",
        ),
        "rarefaction_below_depth": Table(
            keys=sample,
            patient=True,
            flags="coalesce(t.library_size < t.depth and t.reads_short = t.depth - t.library_size, false) "
            "as below_depth_consistent",
            checks=lambda gxe: [
                *_counts(gxe, "library_size", "depth", "reads_short"),
                *_true(gxe, "below_depth_consistent"),
            ],
            description="Libraries below the rarefaction depth: smaller than the depth by reads_short.",
        ),
        "rarefaction_curves": Table(
            keys=("sample_id", "depth"),
            flags="coalesce(t.expected_sobs >= lag(t.expected_sobs) over (partition by t.sample_id order by t.depth) "
            "- 1e-9, true) as richness_non_decreasing",
            checks=lambda gxe: [
                *_non_negative(gxe, "expected_sobs"),
                *_counts(gxe, "depth"),
                *_true(gxe, "richness_non_decreasing"),
            ],
            description="Rarefaction curves: expected richness non-negative and never falling with depth.",
        ),
        "alpha_group_tests": Table(
            keys=("source", "factor", "visit", "index", "test", "group_a", "group_b"),
            nullable=("group_a", "group_b"),
            pq=(("p_value", "q_value"),),
            checks=lambda gxe: [*_non_negative(gxe, "statistic", "n_a", "n_b")],
            description="Alpha group tests: p and BH q in [0, 1], q >= p, non-negative statistics.",
        ),
        "alpha_change_tests": Table(
            keys=("source", "factor", "index", "visit", "test", "group_a", "group_b"),
            nullable=("group_b",),
            pq=(("p_value", "q_value"),),
            checks=lambda gxe: _counts(gxe, "n"),
            description="Alpha change-from-baseline tests: p and BH q in [0, 1], q >= p.",
        ),
        "beta_distance_files": Table(
            keys=("metric", "feature_level"),
            checks=lambda gxe: [
                gxe.ExpectColumnValuesToBeInSet(
                    column="metric",
                    value_set=["braycurtis", "jaccard", "aitchison", "weighted_unifrac", "unweighted_unifrac"],
                ),
                gxe.ExpectColumnValuesToBeBetween(column="n_samples", min_value=2),
                gxe.ExpectColumnValuesToBeBetween(column="bytes", min_value=1),
                gxe.ExpectColumnValuesToNotBeNull(column="path"),
            ],
            description="Distance-matrix files: known metric, at least 2 samples, a non-empty file path.",
        ),
        "ordination_coordinates": Table(
            keys=("method", "metric", "feature_level", "batch_id", "sample_id"),
            patient=True,
            checks=lambda gxe: [
                gxe.ExpectColumnValuesToBeInSet(column="method", value_set=["pcoa", "nmds", "pca"]),
                gxe.ExpectColumnValuesToNotBeNull(column="axis1"),
                gxe.ExpectColumnValuesToNotBeNull(column="axis2"),
            ],
            description="Ordination coordinates of randomised patients' samples: first two axes present.",
        ),
        "ordination_axes": Table(
            keys=("method", "metric", "axis"),
            flags="sum(coalesce(t.proportion_explained, 0)) over (partition by t.method, t.metric) <= 1 + 1e-9 "
            "as proportions_sum_at_most_1",
            checks=lambda gxe: [
                *_unit(gxe, "proportion_explained", "stress"),
                gxe.ExpectColumnValuesToBeBetween(column="axis", min_value=1),
                *_true(gxe, "proportions_sum_at_most_1"),
            ],
            description="Ordination axes: proportions explained in [0, 1] summing to at most 1, stress in [0, 1].",
        ),
        "beta_group_tests": Table(
            keys=("metric", "feature_level", "factor", "visit", "scheme", "test"),
            pq=(("p_value", "q_value"),),
            checks=lambda gxe: [
                *_unit(gxe, "r2"),
                gxe.ExpectColumnValuesToBeBetween(column="permutations", min_value=1),
                gxe.ExpectColumnValuesToBeBetween(column="n_groups", min_value=2),
            ],
            description="PERMANOVA/ANOSIM/PERMDISP: p and BH q in [0, 1], q >= p, R2 in [0, 1].",
        ),
        "beta_distance_to_baseline": Table(
            keys=("metric", "batch_id", "sample_id"),
            patient=True,
            flags="coalesce(t.baseline_sample_id <> t.sample_id, false) as compared_with_another_sample",
            checks=lambda gxe: [
                *_unit(gxe, "distance"),  # Bray-Curtis is bounded by 1
                gxe.ExpectColumnValuesToNotBeNull(column="baseline_sample_id"),
                *_true(gxe, "compared_with_another_sample"),
            ],
            description="Bray-Curtis distance of post-baseline samples to their baseline: in [0, 1].",
        ),
        "beta_baseline_tests": Table(
            keys=("metric", "factor", "visit"),
            pq=(("p_value", "q_value"),),
            checks=lambda gxe: _counts(gxe, "n"),
            description="Distance-to-baseline tests: p and BH q in [0, 1], q >= p.",
        ),
        "differential_abundance": Table(
            keys=("analysis", "rank", "visit", "contrast", "taxon"),
            pq=(("p_value", "q_value"),),
            checks=lambda gxe: [
                *_unit(gxe, "prevalence", "mean_rel_abundance"),
                *_counts(gxe, "n_ref", "n_other", "rank_in_test"),
            ],
            description="Differential abundance: p and BH q in [0, 1], q >= p, prevalence and abundance in [0, 1].",
        ),
    }


def _microbiome_warnings() -> dict[str, Table]:
    return {
        "microbiome_qc_negative_controls.contamination": Table(
            keys=("batch_id", "sample_id"),
            query="select batch_id, sample_id, ratio_to_median, flag_contamination "
            "from analysis.microbiome_qc_negative_controls",
            checks=lambda gxe: [gxe.ExpectColumnValuesToBeInSet(column="flag_contamination", value_set=[False])],
            critical=False,
            aspect="contamination",
            description="Negative controls with more than 10 % of their batch's median reads (contaminated batch).",
        ),
        "microbiome_qc_mock_community.recovery": Table(
            keys=("batch_id", "sample_id"),
            query="select batch_id, sample_id, recovered_fraction, braycurtis_to_expected "
            "from analysis.microbiome_qc_mock_community",
            checks=lambda gxe: [
                gxe.ExpectColumnValuesToBeBetween(column="recovered_fraction", min_value=MIN_MOCK_RECOVERED),
                gxe.ExpectColumnValuesToBeBetween(column="braycurtis_to_expected", max_value=MAX_MOCK_BRAYCURTIS),
            ],
            critical=False,
            aspect="recovery",
            description="Mock communities far from their theoretical composition (a failed run or a mix-up).",
        ),
        "microbiome_qc_sample_flags.flags": Table(
            keys=("batch_id", "sample_id"),
            query="select batch_id, sample_id, low_depth, high_unassigned, duplicate_library "
            "from analysis.microbiome_qc_sample_flags",
            checks=lambda gxe: [
                gxe.ExpectColumnValuesToBeInSet(column=c, value_set=[False])
                for c in ("low_depth", "high_unassigned", "duplicate_library")
            ],
            critical=False,
            aspect="flags",
            description="Patient libraries flagged shallow, mostly unassigned or duplicated (below-rarefaction-"
            "depth libraries are handled by design and not listed).",
        ),
    }


# ------------------------------------------------------------------------------------------------ metabolomics


def _metabolomics() -> dict[str, Table]:
    feature = ("matrix", "feature")
    return {
        "metabolomics_steps": Table(
            keys=("matrix", "purpose", "step"),
            checks=lambda gxe: [
                _ordered(gxe, "features_after", "features_before"),
                *_counts(gxe, "features_after", "injections_after"),
                gxe.ExpectColumnValuesToBeInSet(column="purpose", value_set=["pca", "differential"]),
            ],
            description="Preparation steps: no step adds features.",
        ),
        "metabolite_annotation": Table(
            keys=feature,
            checks=lambda gxe: [
                gxe.ExpectColumnValuesToBeBetween(column="mz", min_value=0, strict_min=True),
                *_counts(gxe, "n_invalid_ids"),
                gxe.ExpectColumnValuesToBeInSet(column="ion_mode", value_set=["POS", "NEG"]),
            ],
            description="Feature annotation: positive m/z, count of invalid identifier tokens.",
        ),
        "metabolite_annotation_invalid": Table(
            keys=("matrix", "ion_mode", "feature_id", "id_type", "raw"),
            checks=lambda gxe: [gxe.ExpectColumnValuesToNotBeNull(column="source_row")],
            description="Identifier tokens that are not valid KEGG/HMDB ids, one per feature, type and token.",
        ),
        "metabolomics_pca_importance": Table(
            keys=("matrix", "scope", "pc"),
            flags="coalesce(t.cumulative_proportion >= lag(t.cumulative_proportion) over "
            "(partition by t.matrix, t.scope order by t.pc) - 1e-9, true) as cumulative_non_decreasing, "
            f"sum(t.proportion_of_variance) over (partition by t.matrix, t.scope) <= 1 + {EPS} "
            "as proportions_sum_at_most_1",
            checks=lambda gxe: [
                *_unit(gxe, "proportion_of_variance"),
                gxe.ExpectColumnValuesToBeBetween(column="cumulative_proportion", min_value=0, max_value=1 + EPS),
                *_non_negative(gxe, "standard_deviation"),
                *_true(gxe, "cumulative_non_decreasing", "proportions_sum_at_most_1"),
            ],
            description="PCA importance: proportions of variance in [0, 1] summing to at most 1, cumulative "
            "proportion non-decreasing.",
        ),
        "metabolomics_pca_scores": Table(
            keys=("matrix", "scope", "batch_id", "injection_id"),
            patient=True,
            patient_optional=True,
            checks=lambda gxe: [
                gxe.ExpectColumnValuesToBeInSet(column="sample_type", value_set=["SAMPLE", "QC"]),
                gxe.ExpectColumnValuesToNotBeNull(column="PC1"),
            ],
            description="PCA scores: study samples of randomised patients and projected pooled QCs.",
        ),
        "metabolomics_pca_loadings": Table(
            keys=("matrix", "scope", "feature"),
            checks=lambda gxe: [
                gxe.ExpectColumnValuesToBeBetween(column=c, min_value=-1, max_value=1) for c in ("PC1", "PC2")
            ],
            description="PCA loadings: unit-length eigenvector components within [-1, 1].",
        ),
        "metabolomics_qc_rsd": Table(
            keys=feature,
            flags=f"coalesce(not t.kept_by_rsd_filter or t.qc_rsd_after <= {MAX_QC_RSD_PCT}, false) "
            "as kept_features_below_rsd_threshold",
            checks=lambda gxe: [
                *_non_negative(gxe, "qc_rsd_before", "qc_rsd_after"),
                gxe.ExpectColumnValuesToBeBetween(column="n_qc", min_value=3),
                *_true(gxe, "kept_features_below_rsd_threshold"),
            ],
            description=f"QC RSD per feature: features kept by the RSD filter are below {MAX_QC_RSD_PCT:g} %.",
        ),
        "metabolomics_qc_rsd.stability": Table(
            keys=feature,
            query="select matrix, feature, qc_rsd_after from analysis.metabolomics_qc_rsd",
            checks=lambda gxe: [
                gxe.ExpectColumnValuesToBeBetween(column="qc_rsd_after", min_value=0, max_value=MAX_QC_RSD_PCT)
            ],
            critical=False,
            aspect="stability",
            description=f"Features whose pooled-QC RSD stays above {MAX_QC_RSD_PCT:g} % after drift correction.",
        ),
        "differential_metabolites": Table(
            keys=("matrix", "analysis", "contrast", "visit", "feature", "lmm_term"),
            nullable=("visit", "lmm_term"),
            pq=(("welch_p", "welch_q"), ("wilcoxon_p", "wilcoxon_q"), ("lmm_p", "lmm_q")),
            checks=lambda gxe: [
                gxe.ExpectColumnValuesToBeBetween(column="fc", min_value=0, strict_min=True),
                *_non_negative(gxe, "lmm_se"),
            ],
            description="Differential metabolites: p and BH q in [0, 1] with q >= p for every test, positive "
            "fold changes.",
        ),
        "metabolomics_prepared": Table(
            keys=("matrix", "batch_id", "injection_id", "feature"),
            patient=True,
            checks=lambda gxe: [gxe.ExpectColumnValuesToNotBeNull(column="value")],
            description="Prepared values: one per injection and feature, of randomised patients, never missing.",
        ),
        "metabolite_genus_correlations": Table(
            keys=("matrix", "genus", "feature"),
            pq=(("p", "q"),),
            checks=lambda gxe: [
                gxe.ExpectColumnValuesToBeBetween(column="rho", min_value=-1, max_value=1),
                gxe.ExpectColumnValuesToBeBetween(column="n", min_value=3),
            ],
            description="Genus-metabolite Spearman correlations: rho in [-1, 1], p and BH q in [0, 1], q >= p.",
        ),
    }


# ------------------------------------------------------------------------------------------------ registry


def analysis_suites(cutoff: datetime.date | None = None) -> dict[str, SuiteSpec]:
    """Suites of the analysis tables: ``<table>`` (critical) for every table and ``<table>.<aspect>`` (warnings)."""
    tables: dict[str, Table] = {
        **_efficacy(),
        "endpoint_run": _endpoint_run(cutoff),
        **_safety(),
        **_qol(),
        **_hepatic(),
        **_microbiome(),
        **_microbiome_warnings(),
        **_metabolomics(),
    }
    return {key: _suite(key.split(".", 1)[0], spec, cutoff) for key, spec in tables.items()}
