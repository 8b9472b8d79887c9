"""Staging-layer suites: the cleaning did what it promises, on the typed dbt staging views.

One suite per staging model, keyed by model name (``staging_suites()["stg_crf__ae"]``, suite
``staging.stg_crf__ae``). Critical expectations check what cleaning must deliver and what the raw layer
could not see on text: keys unique and filled after de-duplication, coded values in their value sets after
trimming and upper-casing (CTCAE grade 1-5, response codes, specimen types), typed cross-field rules (AE end
not before its start, dosing end not before its start, death not before randomisation), every AE to an
enrolled patient and every specimen to a randomised one, counts non-negative integers and intensities
positive. Warning expectations (``severity="warning"``) send rows to the quarantine without blocking:
exact duplicate rows that staging collapsed (``_duplicate_count > 1``), dates staging could not read
(flag ``X``), lab values in a unit staging cannot convert, and omics samples whose specimen barcode is not in
the biospecimen log (by design they go to ``marts.unlinked_omics_samples``, not into patient analyses).

The distribution checks (library size, unassigned reads, pooled-QC RSD) and the protocol plausibility
rules (lab ranges, lenvatinib weight band) sit on the marts, where the analyses read them. Every suite that reads a
whole model also checks its schema: the columns the dbt YAML documents are all there.

dbt is one Dagster step, so a failing staging suite cannot stop the marts being built; it stops every
asset downstream of the marts (the endpoint, microbiome and metabolomics assets): the marts' own check
step waits for the staging checks, and the analysis assets wait for the marts' checks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from analysis import contract
from expectations.runner import WARNING, SuiteSpec

STAGING_DIR = Path(__file__).resolve().parents[2] / "dbt_project" / "models" / "staging"
CRF_ROW_ID = ("subject_id", "_source_file", "_row_number")
#: Investigator response codes (RECIST 1.1 / mRECIST), after cleaning.
OVERALL_RESPONSES = contract.CRF_FORMS["rs"].codelists["RSOVRLRESP"]

Build = Callable[[Any], list[Any]]


def _in_set(gxe: Any, column: str, values: tuple[Any, ...], what: str = "") -> Any:
    return gxe.ExpectColumnValuesToBeInSet(
        column=column,
        value_set=list(values),
        description=f"{what or column} is one of {', '.join(str(v) for v in values)}",
    )


def _null(gxe: Any, column: str, description: str, *, warning: bool = False) -> Any:
    """A SQL rule column (NULL = fine, else what is wrong) must be NULL on every row."""
    kwargs = {"severity": WARNING} if warning else {}
    return gxe.ExpectColumnValuesToBeNull(column=column, description=description, **kwargs)


def _duplicates(gxe: Any) -> Any:
    return gxe.ExpectColumnValuesToBeBetween(
        column="_duplicate_count",
        max_value=1,
        severity=WARNING,
        description="Row delivered once (exact duplicates are collapsed to one row; the copies are listed here)",
    )


def _unique(gxe: Any, *columns: str) -> list[Any]:
    checks = [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in columns]
    if len(columns) == 1:
        checks.append(gxe.ExpectColumnValuesToBeUnique(column=columns[0]))
    else:
        checks.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=list(columns)))
    return checks


def _unreadable(*pairs: tuple[str, str]) -> str:
    """SQL rule: dates staging could not read (flag X), naming the column and the value as delivered."""
    parts = [f"case when {flag} = 'X' then '{dtc}=' || coalesce({dtc}, '') end" for dtc, flag in pairs]
    return f"nullif(concat_ws('; ', {', '.join(parts)}), '') as check_readable_dates"


@cache
def documented_columns() -> dict[str, tuple[str, ...]]:
    """Columns of every staging model as its dbt YAML documents them, keyed by model."""
    import yaml

    columns: dict[str, tuple[str, ...]] = {}
    for path in sorted(STAGING_DIR.glob("*/_*__models.yml")):
        for model in yaml.safe_load(path.read_text()).get("models", []):
            columns[model["name"]] = tuple(c["name"] for c in model.get("columns", []))
    return columns


def _spec(model: str, query: str, build: Build, row_id: tuple[str, ...], description: str) -> SuiteSpec:
    # Schema: every documented column is there (a renamed or dropped column breaks what the marts read). Only
    # for suites that read the whole model; the others name their columns, so a missing one fails the query.
    whole = query.lstrip().lower().startswith(("select *", "select t.*"))

    def expectations() -> list[Any]:
        import great_expectations.expectations as gxe

        schema = [
            gxe.ExpectTableColumnsToMatchSet(
                column_set=list(documented_columns()[model]),
                exact_match=False,
                description="Every column the dbt model documents is present",
            )
        ]
        return [*(schema if whole else []), *build(gxe)]

    return SuiteSpec(f"staging.{model}", query, expectations, critical=True, row_id=row_id, description=description)


_READABLE = "Every delivered date could be read (unreadable dates are kept as text, flag X)"


def _crf() -> list[SuiteSpec]:
    rand_date = "(select min(randomisation_date) from staging.stg_crf__rand r where r.subject_id = t.subject_id)"
    specs = [
        _spec(
            "stg_crf__dm",
            f"select t.*, {_unreadable(('informed_consent_dtc', 'informed_consent_date_flag'))} "
            "from staging.stg_crf__dm t",
            lambda gxe: [
                *_unique(gxe, "subject_id"),
                _in_set(gxe, "sex", ("M", "F")),
                _null(gxe, "check_readable_dates", _READABLE, warning=True),
                _duplicates(gxe),
            ],
            CRF_ROW_ID,
            "Demographics: one row per enrolled patient, sex coded M/F.",
        ),
        _spec(
            "stg_crf__rand",
            "select t.*, case when subject_id not in (select subject_id from staging.stg_crf__dm) "
            "then subject_id || ' has no demographics record' end as check_enrolled from staging.stg_crf__rand t",
            lambda gxe: [
                *_unique(gxe, "subject_id"),
                *_unique(gxe, "randno"),
                gxe.ExpectColumnValuesToNotBeNull(column="randomisation_date"),
                _null(gxe, "check_enrolled", "Every randomised patient is enrolled (has demographics)"),
                _duplicates(gxe),
            ],
            CRF_ROW_ID,
            "Randomisation: one row per randomised patient, unique randomisation numbers and dates filled.",
        ),
        _spec(
            "stg_crf__bl",
            "select * from staging.stg_crf__bl",
            lambda gxe: [
                *_unique(gxe, "subject_id"),
                _in_set(gxe, "bclc_stage", ("A", "B", "C"), "BCLC stage"),
                _in_set(gxe, "ecog", (0, 1, 2), "ECOG"),
                _duplicates(gxe),
            ],
            CRF_ROW_ID,
            "Baseline disease: one row per patient, BCLC and ECOG coded.",
        ),
        _spec(
            "stg_crf__vs",
            f"select t.*, {_unreadable(('measurement_dtc', 'measurement_date_flag'))} from staging.stg_crf__vs t",
            lambda gxe: [
                gxe.ExpectColumnValuesToNotBeNull(column="subject_id"),
                _in_set(gxe, "test_code", ("WEIGHT", "HEIGHT")),
                gxe.ExpectColumnValuesToBeBetween(column="standard_value", min_value=0, strict_min=True),
                _null(gxe, "check_readable_dates", _READABLE, warning=True),
                _duplicates(gxe),
            ],
            CRF_ROW_ID,
            "Vital signs: weight and height, positive values.",
        ),
        _spec(
            "stg_crf__ex",
            "select t.*, case when end_date < start_date then 'ends ' || cast(end_date as varchar) || "
            "' before it starts ' || cast(start_date as varchar) end as check_end_after_start, "
            f"{_unreadable(('start_dtc', 'start_date_flag'), ('end_dtc', 'end_date_flag'))} from staging.stg_crf__ex t",
            lambda gxe: [
                gxe.ExpectColumnValuesToNotBeNull(column="subject_id"),
                _in_set(gxe, "drug", contract.CRF_FORMS["ex"].codelists["EXTRT"]),
                gxe.ExpectColumnValuesToBeBetween(column="dose", min_value=0, strict_min=True),
                gxe.ExpectColumnValuesToBeBetween(
                    column="capsules_taken", min_value=0, description="Capsules taken: a non-negative count"
                ),
                _null(gxe, "check_end_after_start", "A dosing record does not end before it starts"),
                _null(gxe, "check_readable_dates", _READABLE, warning=True),
                _duplicates(gxe),
            ],
            CRF_ROW_ID,
            "Exposure: known drugs, positive doses, non-negative capsule counts, records not ending before they start.",
        ),
        _spec(
            "stg_crf__tr",
            "select t.*, case when lesion_category = 'TARGET' and axis is distinct from case is_nodal when 'Y' "
            "then 'SHORT' else 'LONG' end then 'target lesion ' || lesion_id || (case is_nodal when 'Y' then "
            "' (a node)' else '' end) || ' measured on the ' || coalesce(axis, 'unrecorded') || ' axis' end "
            f"as check_axis, {_unreadable(('assessment_dtc', 'assessment_date_flag'))} from staging.stg_crf__tr t",
            lambda gxe: [
                gxe.ExpectColumnValuesToNotBeNull(column="subject_id"),
                gxe.ExpectColumnValuesToNotBeNull(column="lesion_id"),
                _null(
                    gxe, "check_axis", "Target lymph nodes are measured on the short axis, other targets on the long"
                ),
                _in_set(gxe, "lesion_category", ("TARGET", "NON-TARGET", "NEW")),
                _in_set(gxe, "is_nodal", ("Y", "N")),
                _in_set(gxe, "axis", ("LONG", "SHORT")),
                gxe.ExpectColumnValuesToBeBetween(column="diameter_mm", min_value=0),
                _null(gxe, "check_readable_dates", _READABLE, warning=True),
                _duplicates(gxe),
            ],
            CRF_ROW_ID,
            "Tumour measurements: coded category, node flag and axis; nodes on the short axis; non-negative diameters.",
        ),
        _spec(
            "stg_crf__rs",
            f"select t.*, {_unreadable(('assessment_dtc', 'assessment_date_flag'))} from staging.stg_crf__rs t",
            lambda gxe: [
                gxe.ExpectColumnValuesToNotBeNull(column="subject_id"),
                _in_set(gxe, "overall_response", OVERALL_RESPONSES, "Overall response"),
                _in_set(gxe, "target_response", contract.CRF_FORMS["rs"].codelists["RSTLRESP"], "Target response"),
                _in_set(
                    gxe,
                    "non_target_response",
                    contract.CRF_FORMS["rs"].codelists["RSNTRESP"],
                    "Non-target response",
                ),
                _in_set(gxe, "new_lesions", ("Y", "N"), "New lesions"),
                _null(gxe, "check_readable_dates", _READABLE, warning=True),
                _duplicates(gxe),
            ],
            CRF_ROW_ID,
            "Investigator responses: RECIST response codes after cleaning.",
        ),
        _spec(
            "stg_crf__ae",
            "select t.*, case when end_date < start_date then 'ends ' || cast(end_date as varchar) || "
            "' before it starts ' || cast(start_date as varchar) end as check_end_after_start, "
            "case when subject_id not in (select subject_id from staging.stg_crf__dm) then subject_id || "
            "' is not an enrolled patient' end as check_patient, "
            f"{_unreadable(('start_dtc', 'start_date_flag'), ('end_dtc', 'end_date_flag'))} from staging.stg_crf__ae t",
            lambda gxe: [
                *_unique(gxe, "subject_id", "ae_spid"),
                gxe.ExpectColumnValuesToBeBetween(
                    column="ctcae_grade", min_value=1, max_value=5, description="CTCAE grade is 1-5"
                ),
                gxe.ExpectColumnValuesToNotBeNull(column="ctcae_grade"),
                _in_set(gxe, "serious", ("Y", "N"), "Serious"),
                _null(gxe, "check_end_after_start", "An AE does not end before it starts"),
                _null(gxe, "check_patient", "Every AE belongs to an enrolled patient"),
                _null(gxe, "check_readable_dates", _READABLE, warning=True),
                _duplicates(gxe),
            ],
            CRF_ROW_ID,
            "Adverse events: one row per AE, CTCAE grade 1-5, end not before start, of an enrolled patient.",
        ),
        _spec(
            "stg_crf__lb",
            "select t.*, case when reported_value is not null and standard_value is null then test_code || ' ' || "
            "cast(reported_value as varchar) || ' ' || coalesce(reported_unit, '(no unit)') || "
            "' cannot be converted to the standard unit' end as check_convertible, "
            f"{_unreadable(('collection_dtc', 'collection_date_flag'))} from staging.stg_crf__lb t",
            lambda gxe: [
                gxe.ExpectColumnValuesToNotBeNull(column="subject_id"),
                _in_set(gxe, "test_code", contract.CRF_FORMS["lb"].codelists["LBTESTCD"], "Lab test"),
                gxe.ExpectColumnValuesToBeBetween(column="standard_value", min_value=0),
                _null(gxe, "check_convertible", "Every reported value is in a known unit", warning=True),
                _null(gxe, "check_readable_dates", _READABLE, warning=True),
                _duplicates(gxe),
            ],
            CRF_ROW_ID,
            "Labs: known tests, non-negative values in standard units (units staging cannot convert are flagged).",
        ),
        _spec(
            "stg_crf__qs",
            "select subject_id, visit, item_code, item_number, response, _source_file, _row_number, "
            "_duplicate_count, case when response is not null and (response < 1 or response > case when "
            "item_number >= 29 then 7 else 4 end) then item_code || ' answered ' || cast(response as varchar) || "
            "' (allowed 1-' || case when item_number >= 29 then '7' else '4' end || ')' end as check_response "
            "from staging.stg_crf__qs",
            lambda gxe: [
                gxe.ExpectColumnValuesToNotBeNull(column="subject_id"),
                _in_set(gxe, "item_code", contract.CRF_FORMS["qs"].codelists["QSTESTCD"], "QLQ-C30 item"),
                _null(gxe, "check_response", "QLQ-C30 answers are 1-4 (items 1-28) or 1-7 (items 29-30)"),
                _duplicates(gxe),
            ],
            CRF_ROW_ID,
            "EORTC QLQ-C30 items: known items, answers on each item's scale.",
        ),
        _spec(
            "stg_crf__cm",
            "select * from staging.stg_crf__cm",
            lambda gxe: [
                gxe.ExpectColumnValuesToNotBeNull(column="subject_id"),
                _in_set(gxe, "therapy_category", contract.CRF_FORMS["cm"].codelists["CMCAT"], "Therapy category"),
                _duplicates(gxe),
            ],
            CRF_ROW_ID,
            "Subsequent anti-cancer therapy: coded category.",
        ),
        _spec(
            "stg_crf__ds",
            f"select t.*, case when (category = 'DEATH' or decoded_term = 'DEATH') and event_date < {rand_date} "
            f"then 'death ' || cast(event_date as varchar) || ' is before randomisation ' || "
            f"cast({rand_date} as varchar) end as check_death_after_randomisation, "
            f"{_unreadable(('event_dtc', 'event_date_flag'))} from staging.stg_crf__ds t",
            lambda gxe: [
                gxe.ExpectColumnValuesToNotBeNull(column="subject_id"),
                _in_set(gxe, "category", contract.CRF_FORMS["ds"].codelists["DSCAT"], "Disposition category"),
                _in_set(gxe, "decoded_term", contract.CRF_FORMS["ds"].codelists["DSDECOD"], "Disposition term"),
                _null(gxe, "check_death_after_randomisation", "No death before randomisation"),
                _null(gxe, "check_readable_dates", _READABLE, warning=True),
                _duplicates(gxe),
            ],
            CRF_ROW_ID,
            "Disposition: coded categories and terms; no death before randomisation.",
        ),
        _spec(
            "stg_crf__bs",
            "select t.*, case when subject_id not in (select subject_id from staging.stg_crf__rand) then "
            "'specimen of ' || subject_id || ', who is not randomised' end as check_patient, "
            f"{_unreadable(('collection_dtc', 'collection_date_flag'))} from staging.stg_crf__bs t",
            lambda gxe: [
                *_unique(gxe, "specimen_barcode"),
                _in_set(gxe, "specimen_type", contract.CRF_FORMS["bs"].codelists["BSSPEC"], "Specimen type"),
                _null(gxe, "check_patient", "Every specimen belongs to a randomised patient"),
                _null(gxe, "check_readable_dates", _READABLE, warning=True),
                _duplicates(gxe),
            ],
            CRF_ROW_ID,
            "Biospecimen log: unique barcodes, known specimen types, every specimen of a randomised patient.",
        ),
    ]
    return specs


_ORPHAN = (
    "case when {role} and upper(specimen_barcode) not in (select upper(specimen_barcode) from staging.stg_crf__bs) "
    "then 'specimen ' || coalesce(specimen_barcode, '(none)') || ' is not in the biospecimen log' end "
    "as check_specimen_logged"
)
_SEQ_ORPHAN = _ORPHAN.format(role="sample_role = 'SAMPLE'")
_MTB_ORPHAN = _ORPHAN.format(role="sample_type = 'SAMPLE'")
_ORPHAN_RULE = (
    "Every patient sample's specimen barcode is in the biospecimen log (an orphan is kept out of patient "
    "analyses and listed in marts.unlinked_omics_samples)"
)


def _omics() -> list[SuiteSpec]:
    return [
        _spec(
            "stg_seq__manifest",
            f"select t.*, {_SEQ_ORPHAN} from staging.stg_seq__manifest t",
            lambda gxe: [
                *_unique(gxe, "batch_id", "sample_id"),
                _in_set(gxe, "sample_role", contract.SEQ_SAMPLE_ROLES, "Sample role"),
                _null(gxe, "check_specimen_logged", _ORPHAN_RULE, warning=True),
                _duplicates(gxe),
            ],
            ("batch_id", "sample_id", "_source_file", "_row_number"),
            "Sequencing manifests: one row per library, known roles, patient samples traceable to a specimen.",
        ),
        _spec(
            "stg_seq__counts",
            "select batch_id, sample_id, feature_id, read_count, _duplicate_count from staging.stg_seq__counts",
            lambda gxe: [
                *_unique(gxe, "batch_id", "sample_id", "feature_id"),
                gxe.ExpectColumnValuesToBeBetween(
                    column="read_count", min_value=1, description="Read counts are positive integers (sparse)"
                ),
                _duplicates(gxe),
            ],
            ("batch_id", "sample_id", "feature_id"),
            "16S read counts: positive integers, one per library and feature.",
        ),
        _spec(
            "stg_seq__samples",
            "select * from staging.stg_seq__samples",
            lambda gxe: [
                *_unique(gxe, "batch_id", "sample_id"),
                gxe.ExpectColumnValuesToBeBetween(column="library_size", min_value=0),
                gxe.ExpectColumnValuesToBeBetween(column="n_features", min_value=0),
                _duplicates(gxe),
            ],
            ("batch_id", "sample_id"),
            "Sequencing libraries: one per batch and sample, non-negative sizes.",
        ),
        _spec(
            "stg_seq__features",
            "select batch_id, feature_id, _source_file, taxonomy, _duplicate_count from staging.stg_seq__features",
            lambda gxe: [*_unique(gxe, "batch_id", "feature_id", "_source_file"), _duplicates(gxe)],
            ("batch_id", "feature_id", "_source_file"),
            "Sequencing features: one per feature per source file (feature-table metadata and/or taxonomy file).",
        ),
        _spec(
            "stg_seq__trees",
            "select batch_id, tree_format, newick_sha256, n_tips, n_table_features, rooted, _source_file, "
            "_row_number, _duplicate_count from staging.stg_seq__trees",
            lambda gxe: [
                *_unique(gxe, "batch_id", "_source_file"),
                gxe.ExpectColumnValuesToNotBeNull(column="newick_sha256"),
                gxe.ExpectColumnValuesToBeBetween(
                    column="n_tips", min_value=2, description="A tree has at least 2 tips"
                ),
                _in_set(gxe, "rooted", ("Y", "N"), "Rooted"),
                _duplicates(gxe),
            ],
            ("batch_id", "_source_file"),
            "Phylogenetic trees (optional, for UniFrac): one per batch and tree file, at least 2 tips, rooting known.",
        ),
        _spec(
            "stg_mtb__features",
            "select * from staging.stg_mtb__features",
            lambda gxe: [
                *_unique(gxe, "batch_id", "feature_id", "ion_mode"),
                _in_set(gxe, "ion_mode", contract.MTB_ION_MODES, "Ion mode"),
                gxe.ExpectColumnValuesToBeBetween(column="mz", min_value=0, strict_min=True),
                gxe.ExpectColumnValuesToBeBetween(column="rt_min", min_value=0),
                _duplicates(gxe),
            ],
            ("batch_id", "feature_id", "ion_mode"),
            "Metabolomics features: one per batch, feature and ion mode; positive m/z, non-negative RT.",
        ),
        _spec(
            "stg_mtb__injections",
            f"select t.*, {_MTB_ORPHAN} from staging.stg_mtb__injections t",
            lambda gxe: [
                *_unique(gxe, "batch_id", "injection_id"),
                _in_set(gxe, "sample_type", contract.MTB_SAMPLE_TYPES, "Sample type"),
                _in_set(gxe, "matrix", contract.MTB_MATRICES, "Matrix"),
                gxe.ExpectColumnValuesToBeBetween(column="run_order", min_value=1),
                _null(gxe, "check_specimen_logged", _ORPHAN_RULE, warning=True),
                _duplicates(gxe),
            ],
            ("batch_id", "injection_id"),
            "Injection lists: known types and matrices, positive run order, samples traceable to a specimen.",
        ),
        _spec(
            "stg_mtb__intensities",
            "select batch_id, feature_id, ion_mode, injection_id, intensity, _duplicate_count "
            "from staging.stg_mtb__intensities",
            lambda gxe: [
                *_unique(gxe, "batch_id", "feature_id", "ion_mode", "injection_id"),
                gxe.ExpectColumnValuesToBeBetween(
                    column="intensity", min_value=0, strict_min=True, description="Intensities are positive"
                ),
                _duplicates(gxe),
            ],
            ("batch_id", "feature_id", "ion_mode", "injection_id"),
            "Metabolomics intensities: positive, one per feature and injection.",
        ),
    ]


def staging_suites(cutoff: dt.date | None = None) -> dict[str, SuiteSpec]:
    """Suite per dbt staging model, keyed by model name.

    ``cutoff`` is accepted for a uniform interface and deliberately unused: staging keeps everything
    delivered, including data after the cut-off, which the marts drop (see ``expectations.suites.raw``).
    """
    del cutoff
    return {spec.table: spec for spec in (*_crf(), *_omics())}
