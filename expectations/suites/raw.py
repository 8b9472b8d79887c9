"""Raw-layer suites: what must hold for every current file version as delivered, before dbt reads it.

Raw values are kept as delivered (trailing spaces, mixed case, missing markers), so coded values are matched
case- and space-insensitively, missing markers (``ND``, ``NA``, blank, ...) are accepted wherever a value
may be missing, and dates are read in every shape staging accepts (complete, ``2024-05-UN``,
``2024-UNK-UNK``, ``UN/JAN/2024``). Rows are identified by their lineage (file and line) in failure reports.

Why check raw at all when dbt tests staging: a dbt test that fails stops the whole dbt step, so QA would
see only a dbt log line. These suites run first, name the file and line, show up in Data Docs, and block
dbt itself (raw checks are upstream of the one dbt step), so nothing is built from an export that breaks
the contract. They cover the faults that must never reach an endpoint: a duplicate subject, a record of
an unknown patient, a code outside the data dictionary (e.g. CTCAE grade 7), a negative count, a date
after the export was delivered or before the study started, a death before randomisation.

Dates and the data cut-off: raw and staging hold *everything delivered*, including data dated after the
configured cut-off (the marts drop it, by the dbt var ``cutoff``). A date after the cut-off is therefore
legitimate here; what is impossible is a date after the file carrying it was delivered (the load time of
its version, ``raw.current_files.loaded_at``) or before the study started (:data:`STUDY_START`). Both
block. The cut-off is checked where it applies: marts and analysis suites verify nothing after it reached
them.

The suites never look at direct identifiers (MRN, name, initials, birth date): the loader does not store their
values (``analysis.ingest.deidentify``), and the runner still redacts any it would find before validation, so
they cannot appear in Data Docs.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from analysis import contract
from expectations.runner import WARNING, SuiteSpec

ROW_ID = ("_source_file", "_row_number")
#: No trial procedure can be dated before :data:`analysis.contract.STUDY_START`; birth and diagnosis dates are
#: exempt. A date before it is a typo (e.g. 2204 -> 2024 is caught by the delivery rule, 2014 by this one).
STUDY_START = contract.STUDY_START
#: Dates that describe the patient's history, not the trial: no lower bound.
HISTORY_DATES = frozenset({"DIAGDTC"})
#: Forms with one record per patient: a second, different record for the same patient is a duplicate subject.
SUBJECT_GRAIN = ("dm", "rand", "bl")
#: Forms whose patients must be randomised (dosing, tumour assessments, specimens); the others need the
#: patient to be enrolled (in dm): screening labs or AEs of an enrolled patient are legitimate.
NEEDS_RANDOMISATION = ("ex", "tr", "rs", "bs")

_MISSING = "|".join(re.escape(m) for m in contract.MISSING_MARKERS if m)
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_POSITIVE = r"(?:0*[1-9]\d*(?:\.\d*)?|0*\.\d*[1-9]\d*)"


def value_pattern(core: str, allow_missing: bool = True) -> str:
    """A case-insensitive full-match pattern: ``core`` (a regex) or, if allowed, a missing marker or blank."""
    missing = f"|{_MISSING}" if allow_missing else ""
    return rf"(?i)^\s*(?:{core}{missing}){'?' if allow_missing else ''}\s*$"


def one_of(values: tuple[str, ...], allow_missing: bool = True) -> str:
    return value_pattern("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)), allow_missing)


#: Numeric fields delivered as text, with the shape each must have (missing markers allowed).
NUMERIC_FIELDS: dict[str, dict[str, tuple[str, str]]] = {
    "ex": {
        "EXDOSE": (_POSITIVE, "a positive dose"),
        "EXCAPTKN": (r"\d+", "a non-negative whole number of capsules"),
    },
    "tr": {
        "TRDIAM": (_NUMBER, "a non-negative diameter in mm"),
        "TRVIABDIAM": (_NUMBER, "a non-negative diameter in mm"),
    },
    "vs": {"VSORRES": (_POSITIVE, "a positive measurement")},
    "lb": {"LBORRES": (rf"(?:[<>]=?\s*)?{_NUMBER}", "a non-negative number, optionally after < or >")},
    "qs": {"QSORRES": (r"[1-7]", "an answer 1-7")},
}


def current_rows(table: str) -> str:
    """Rows of a raw table that belong to the current version of their file."""
    return (
        f"select t.* from raw.{table} t join raw.current_files c "
        "on t._source_file = c.path and t._file_sha256 = c.sha256 and t._load_id = c.load_id"
    )


def _subject(alias: str = "") -> str:
    """The subject id staging gives a raw CRF row (``STUDYID-SUBJID``, macro ``subject_key``)."""
    p = f"{alias}." if alias else ""
    return f"upper(trim({p}STUDYID)) || '-' || upper(trim({p}SUBJID))"


_ISO = r"^([0-9]{4})(-([0-9]{1,2}|UNKN?|UN|NK|XX))?(-([0-9]{1,2}|UNKN?|UN|NK|XX))?([T ][0-9:.]*)?$"
_DMY = r"^([0-9]{1,2}|UNKN?|UN|NK|XX)[-/ ]([A-Z]{3}|UNKN?|UN|NK|XX)[-/ ]([0-9]{4})$"
_MONTHS = " ".join(
    f"when '{m}' then {i}"
    for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)
)


def dtc_parts(column: str) -> str:
    """SQL: a struct (y, m, d) of integers from a (partial) CRF date as delivered; NULL parts where unknown."""
    norm = f"upper(trim({column}))"

    def group(pattern: str, n: int) -> str:
        return f"nullif(regexp_extract({norm}, '{pattern}', {n}), '')"

    return (
        f"struct_pack(y := coalesce(try_cast({group(_ISO, 1)} as integer), try_cast({group(_DMY, 3)} as integer)), "
        f"m := coalesce(try_cast({group(_ISO, 3)} as integer), case {group(_DMY, 2)} {_MONTHS} end), "
        f"d := coalesce(try_cast({group(_ISO, 5)} as integer), try_cast({group(_DMY, 1)} as integer)))"
    )


def dtc_earliest(parts: str) -> str:
    """SQL: the earliest date a (partial) date can be (unknown month/day -> first)."""
    return f"try(make_date({parts}.y, coalesce({parts}.m, 1), coalesce({parts}.d, 1)))"


def dtc_latest(parts: str) -> str:
    """SQL: the latest date a (partial) date can be (unknown month/day -> last)."""
    return (
        f"case when {parts}.m is null then try(make_date({parts}.y, 12, 31)) "
        f"when {parts}.d is null then try(last_day(make_date({parts}.y, {parts}.m, 1))) "
        f"else try(make_date({parts}.y, {parts}.m, {parts}.d)) end"
    )


def date_columns(form: contract.CrfForm) -> list[str]:
    return [c for c in form.columns if c.endswith("DTC") and c not in form.identifiers]


def _date_rule_sql(form: contract.CrfForm) -> str:
    """SQL: text naming every impossible date of the row (after delivery, before the study), else NULL."""
    problems = []
    for column in date_columns(form):
        parts = f"_p_{column}"
        problems.append(
            f"case when {dtc_earliest(parts)} > _delivered_on then '{column} ' || trim({column}) || "
            "' is after the export was delivered (' || cast(_delivered_on as varchar) || ')' end"
        )
        if column not in HISTORY_DATES:
            problems.append(
                f"case when {dtc_latest(parts)} < date '{STUDY_START}' then '{column} ' || trim({column}) || "
                f"' is before the study started ({STUDY_START})' end"
            )
    return f"nullif(concat_ws('; ', {', '.join(problems)}), '')" if problems else "null::varchar"


def crf_query(form: contract.CrfForm) -> str:
    """Current rows of a CRF form plus rule columns (``check_*``: NULL = fine, else what is wrong)."""
    payload = ", ".join(f'"{c}"' for c in form.columns)
    dates = date_columns(form)
    enrolment = "rand" if form.code in NEEDS_RANDOMISATION else "dm"
    checks = [f"{_date_rule_sql(form)} as check_dates"]
    if form.code != "dm":
        who = "randomised (in the randomisation form)" if enrolment == "rand" else "enrolled (in demographics)"
        checks.append(
            f"case when _subject not in (select _subject from {enrolment}) then 'patient ' || "
            f"coalesce(_subject, '?') || ' is not {who}' end as check_patient"
        )
    if form.code in (*SUBJECT_GRAIN, "ae"):
        # Distinct payloads per patient (per AE): exact duplicate rows count once (staging collapses them).
        within = "_subject" if form.code != "ae" else "_subject, upper(trim(AESPID))"
        versions = f"count(distinct hash({payload})) over (partition by {within})"
        what = (
            "patient ' || _subject"
            if form.code != "ae"
            else "AE ' || coalesce(trim(AESPID), '?') || ' of ' || _subject"
        )
        checks.append(
            f"case when {versions} > 1 then '{what} || ' has ' || cast({versions} as varchar) || "
            "' different records (one allowed)' end as check_one_record"
        )
    if form.code == "rand":
        checks.append(
            "case when count(distinct _subject) over (partition by upper(trim(RANDNO))) > 1 then "
            "'randomisation number ' || trim(RANDNO) || ' is given to more than one patient' end as check_randno"
        )
    extra = ""
    if form.code == "ds":
        extra = (
            f"rand_dates as (select _subject, min({dtc_earliest('_p')}) as rand_date from "
            f"(select {_subject()} as _subject, {dtc_parts('RANDDTC')} as _p from ({current_rows('crf_rand')})) "
            "group by all),"
        )
        checks.append(
            "case when (upper(trim(DSCAT)) = 'DEATH' or upper(trim(DSDECOD)) = 'DEATH') and "
            f"{dtc_latest('_p_DSSTDTC')} < r.rand_date then 'death ' || trim(DSSTDTC) || "
            "' is before randomisation (' || cast(r.rand_date as varchar) || ')' end as check_death_after_randomisation"
        )
    parts = "".join(f", {dtc_parts(c)} as _p_{c}" for c in dates)
    drop = f" exclude ({', '.join('_p_' + c for c in dates)})" if dates else ""
    join = " left join rand_dates r using (_subject)" if form.code == "ds" else ""
    return f"""
with cur as (
    select t.*, c.loaded_at::date as _delivered_on, {_subject("t")} as _subject
    from raw.{form.raw_table} t join raw.current_files c
      on t._source_file = c.path and t._file_sha256 = c.sha256 and t._load_id = c.load_id
),
dm as (select distinct {_subject()} as _subject from ({current_rows("crf_dm")})),
rand as (select distinct {_subject()} as _subject from ({current_rows("crf_rand")})),
{extra}
parsed as (select *{parts} from cur)
select k.*{drop}, {", ".join(checks)}
from parsed k{join}
"""


def _rule(gxe: Any, column: str, description: str, **kwargs: Any) -> Any:
    return gxe.ExpectColumnValuesToBeNull(column=column, description=description, **kwargs)


def _crf_suite(form: contract.CrfForm) -> SuiteSpec:
    lineage = ("_source_file", "_row_number", "_file_sha256", "_load_id")

    def build() -> list[Any]:
        import great_expectations.expectations as gxe

        exps: list[Any] = [
            # Schema: exactly the contract's columns plus lineage (and the rule columns this query adds).
            gxe.ExpectTableColumnsToMatchSet(
                column_set=[*form.raw_columns, *lineage, "_delivered_on", "_subject", *_check_columns(form)],
                exact_match=True,
            ),
            gxe.ExpectColumnValuesToMatchRegex(
                column="STUDYID",
                regex=one_of((contract.STUDY_ID,), allow_missing=False),
                description=f"Every record belongs to study {contract.STUDY_ID}",
            ),
            *[
                gxe.ExpectColumnValueLengthsToBeBetween(column=c, min_value=1, description=f"{c} is filled")
                for c in ("SITEID", "SUBJID")
            ],
            *[
                gxe.ExpectColumnValuesToMatchRegex(
                    column=column,
                    regex=one_of(codes),
                    description=f"{column} is one of {', '.join(codes)} (or missing)",
                )
                for column, codes in form.codelists.items()
            ],
            *[
                gxe.ExpectColumnValuesToMatchRegex(
                    column=column, regex=value_pattern(core), description=f"{column} is {what} (or missing)"
                )
                for column, (core, what) in NUMERIC_FIELDS.get(form.code, {}).items()
            ],
            *(
                [
                    gxe.ExpectColumnValuesToBeBetween(
                        column="AGE_AT_CONSENT",
                        min_value=0,
                        max_value=120,
                        description="Age at informed consent (derived by the loader) is 0-120 years (or missing)",
                    )
                ]
                if "AGE_AT_CONSENT" in form.derived
                else []
            ),
            _rule(
                gxe,
                "check_dates",
                "No date after the export was delivered; no trial date before the study started "
                f"({STUDY_START}). Dates after the data cut-off are allowed here (the marts drop them).",
            ),
        ]
        descriptions = {
            "check_patient": "Every record belongs to a known patient: randomised for dosing, tumour "
            "assessments and specimens, enrolled for the other forms",
            "check_one_record": "One record per patient (per AE for adverse events): no duplicate subject "
            "with conflicting data (exact duplicate rows are collapsed in staging)",
            "check_randno": "Each randomisation number belongs to one patient",
            "check_death_after_randomisation": "No death before randomisation",
        }
        for column in _check_columns(form):
            if column != "check_dates":
                exps.append(_rule(gxe, column, descriptions[column]))
        return exps

    return SuiteSpec(
        name=f"raw.{form.raw_table}",
        query=crf_query(form),
        expectations=build,
        critical=True,
        row_id=ROW_ID,
        description=f"CRF form {form.code} ({form.title}): contract columns, study/site/subject filled, coded "
        "values in the data dictionary, numbers well-formed, dates possible, records of known patients.",
    )


def _check_columns(form: contract.CrfForm) -> list[str]:
    columns = ["check_dates"]
    if form.code != "dm":
        columns.append("check_patient")
    if form.code in (*SUBJECT_GRAIN, "ae"):
        columns.append("check_one_record")
    if form.code == "rand":
        columns.append("check_randno")
    if form.code == "ds":
        columns.append("check_death_after_randomisation")
    return columns


def _seq_counts() -> SuiteSpec:
    def build() -> list[Any]:
        import great_expectations.expectations as gxe

        return [
            gxe.ExpectColumnValuesToNotBeNull(column="sample_id"),
            gxe.ExpectColumnValuesToNotBeNull(column="feature_id"),
            # Stored sparse: only non-zero counts are rows, so every count is a positive integer.
            gxe.ExpectColumnValuesToBeBetween(
                column="count", min_value=1, description="Read counts are positive integers (stored sparse)"
            ),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["_source_file", "sample_id", "feature_id"]),
        ]

    return SuiteSpec(
        "raw.seq_counts",
        current_rows("seq_counts"),
        build,
        row_id=("_source_file", "sample_id", "feature_id"),
        description="16S counts: positive integers, one per sample and feature in each file. (The readers "
        "already reject a feature table with a negative or fractional count; this is the second line.)",
    )


def _seq_samples() -> SuiteSpec:
    def build() -> list[Any]:
        import great_expectations.expectations as gxe

        return [
            gxe.ExpectColumnValuesToNotBeNull(column="sample_id"),
            gxe.ExpectColumnValuesToBeBetween(column="library_size", min_value=0),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["_source_file", "sample_id"]),
        ]

    return SuiteSpec(
        "raw.seq_samples",
        current_rows("seq_samples"),
        build,
        row_id=("_source_file", "sample_id"),
        description="Sequencing samples: one per feature-table file, non-negative library sizes.",
    )


def _seq_features() -> SuiteSpec:
    def build() -> list[Any]:
        import great_expectations.expectations as gxe

        return [
            gxe.ExpectColumnValuesToNotBeNull(column="feature_id"),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["_source_file", "feature_id"]),
        ]

    return SuiteSpec(
        "raw.seq_features",
        f"select batch_id, feature_id, taxonomy, _source_file, _row_number from ({current_rows('seq_features')})",
        build,
        row_id=ROW_ID,
        description="Sequencing features: every feature named once per file (feature table or taxonomy file).",
    )


def _seq_manifest() -> SuiteSpec:
    def build() -> list[Any]:
        import great_expectations.expectations as gxe

        return [
            gxe.ExpectColumnValuesToNotBeNull(column="sample_id"),
            gxe.ExpectColumnValuesToMatchRegex(
                column="sample_role",
                regex=one_of(contract.SEQ_SAMPLE_ROLES, allow_missing=False),
                description=f"sample_role is one of {', '.join(contract.SEQ_SAMPLE_ROLES)}",
            ),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["batch_id", "sample_id"]),
            gxe.ExpectColumnValuesToBeNull(
                column="check_specimen_logged",
                severity=WARNING,
                description="Every sequenced patient sample's specimen barcode is in the biospecimen log "
                "(an orphan is kept out of patient analyses: marts.unlinked_omics_samples)",
            ),
        ]

    query = f"""
select m.*, case when upper(trim(m.sample_role)) = 'SAMPLE' and upper(trim(m.specimen_barcode)) not in (
    select upper(trim(BSREFID)) from ({current_rows("crf_bs")}) where BSREFID is not null)
  then 'specimen ' || coalesce(m.specimen_barcode, '?') || ' is not in the biospecimen log' end as check_specimen_logged
from ({current_rows("seq_manifest")}) m
"""
    return SuiteSpec(
        "raw.seq_manifest",
        query,
        build,
        row_id=ROW_ID,
        description="Sequencing manifests: every sequencing sample listed once per batch with a known role; "
        "patient samples traceable to the biospecimen log (warning: orphans are routed, not dropped).",
    )


def _seq_trees() -> SuiteSpec:
    def build() -> list[Any]:
        import great_expectations.expectations as gxe

        return [
            gxe.ExpectColumnValuesToNotBeNull(column="batch_id"),
            gxe.ExpectColumnValuesToNotBeNull(column="newick"),
            gxe.ExpectColumnValuesToBeBetween(column="n_tips", min_value=2, description="A tree has at least 2 tips"),
            gxe.ExpectColumnValuesToBeInSet(column="rooted", value_set=["Y", "N"]),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["_source_file", "batch_id"]),
        ]

    return SuiteSpec(
        "raw.seq_trees",
        "select batch_id, tree_format, newick_sha256, n_tips, n_table_features, rooted, newick, _source_file, "
        f"_row_number from ({current_rows('seq_trees')})",
        build,
        row_id=ROW_ID,
        description="Phylogenetic trees (optional, for UniFrac): one per tree file, at least 2 tips, rooting recorded. "
        "(The loader already rejects unparsable Newick, negative branch lengths and trees missing a table feature.)",
    )


def _mtb_intensities() -> SuiteSpec:
    def build() -> list[Any]:
        import great_expectations.expectations as gxe

        return [
            gxe.ExpectColumnValuesToNotBeNull(column="feature_id"),
            gxe.ExpectColumnValuesToNotBeNull(column="injection_id"),
            gxe.ExpectColumnValuesToBeBetween(
                column="intensity", min_value=0, description="Intensities are non-negative"
            ),
        ]

    return SuiteSpec(
        "raw.mtb_intensities",
        current_rows("mtb_intensities"),
        build,
        row_id=("_source_file", "feature_id", "injection_id"),
        description="Metabolomics intensities: observed values are non-negative.",
    )


def _mtb_injections() -> SuiteSpec:
    def build() -> list[Any]:
        import great_expectations.expectations as gxe

        return [
            gxe.ExpectColumnValuesToNotBeNull(column="injection_id"),
            gxe.ExpectColumnValuesToMatchRegex(
                column="sample_type",
                regex=one_of(contract.MTB_SAMPLE_TYPES, allow_missing=False),
                description=f"sample_type is one of {', '.join(contract.MTB_SAMPLE_TYPES)}",
            ),
            gxe.ExpectColumnValuesToMatchRegex(
                column="matrix",
                regex=one_of(contract.MTB_MATRICES, allow_missing=False),
                description=f"matrix is one of {', '.join(contract.MTB_MATRICES)}",
            ),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["batch_id", "injection_id"]),
        ]

    return SuiteSpec(
        "raw.mtb_injections",
        current_rows("mtb_injections"),
        build,
        row_id=ROW_ID,
        description="Injection lists: every injection listed once per batch, with a known type and matrix.",
    )


def _mtb_features() -> SuiteSpec:
    def build() -> list[Any]:
        import great_expectations.expectations as gxe

        return [
            gxe.ExpectColumnValuesToNotBeNull(column="feature_id"),
            gxe.ExpectColumnValuesToMatchRegex(
                column="ion_mode",
                regex=one_of(contract.MTB_ION_MODES, allow_missing=False),
                description="ion_mode is POS or NEG",
            ),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["_source_file", "feature_id", "ion_mode"]),
        ]

    return SuiteSpec(
        "raw.mtb_features",
        current_rows("mtb_features"),
        build,
        row_id=ROW_ID,
        description="Metabolomics features: identified by feature id within ion mode.",
    )


def raw_suites(cutoff: dt.date | None = None) -> dict[str, SuiteSpec]:
    """Suite per raw table, keyed by table name.

    ``cutoff`` is accepted for a uniform interface and deliberately unused: raw keeps everything delivered,
    including data after the cut-off (see the module docstring).
    """
    del cutoff
    suites = {form.raw_table: _crf_suite(form) for form in contract.CRF_FORMS.values()}
    for spec in (
        _seq_counts(),
        _seq_samples(),
        _seq_features(),
        _seq_manifest(),
        _seq_trees(),
        _mtb_intensities(),
        _mtb_injections(),
        _mtb_features(),
    ):
        suites[spec.table] = spec
    return suites
