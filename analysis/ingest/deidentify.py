"""Direct identifiers of the demographics form (``dm``) never enter the warehouse.

The contract still requires ``MRN``, ``PATNAME``, ``INITIALS`` and ``BRTHDTC`` in ``dm.csv`` (the EDC delivers
them and a file without them is not the agreed export), but the loader stores none of their values:

* ``MRN``, ``PATNAME``, ``INITIALS`` and ``BRTHDTC`` are dropped from the frame before the insert, so their raw
  columns stay in ``raw.crf_dm`` and are always NULL. Keeping the (empty) columns rather than removing them keeps
  ``raw.crf_dm``'s columns equal to the contract's (the raw schema, the dbt source and the raw quality suite are
  all generated from ``contract.CRF_FORMS``), and older warehouses, whose tables already have those columns, need
  no column drop: a NULL column is the same shape in old and new files.
* ``BRTHDTC`` is replaced by two derived, non-identifying columns, computed here from the same row:
  ``AGE_AT_CONSENT`` (age in completed years at informed consent, ``RFICDTC``) and ``AGE_IMPUTATION_FLAG``.

Partial dates follow the dbt date macros (``dbt_project/macros/dates.sql``) and the rules the former ephemeral
model ``stg_crf__dm_birth_dates`` applied to birth dates:

* birth date complete -> that date, flag NULL; day missing -> the 15th, flag ``D``; month missing (year known)
  -> 1 July, flag ``M``; year missing -> age NULL, flag ``Y``; not a date -> age NULL, flag ``X``; empty or a
  missing marker -> age NULL, flag NULL;
* informed consent date as staging reads it (``stg_crf__dm.informed_consent_date``): complete, or day missing ->
  the 1st; anything less -> age NULL.

Age in completed years is the dbt macro ``age_in_years``: the difference of the years, minus one when the
(month, day) of consent comes before the birthday (a 29 February birthday is reached on 1 March in other years).

A file whose ages are impossible (below 0 or above :data:`MAX_AGE`) is rejected naming file, row and column;
the message never quotes the birth date (rejection reasons are stored in ``raw.load_manifest`` and printed).
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from analysis import contract
from analysis.errors import ContractViolation

DM = contract.CRF_FORMS["dm"]
#: Oldest plausible age at informed consent; an older one is a wrong birth (or consent) date.
MAX_AGE = 120

# The accepted shapes of a (partial) CRF date, exactly as in dbt_project/macros/dates.sql (_iso_pattern,
# _dmy_pattern), applied to upper(trim(value)); SQL trim removes spaces only.
_ISO = r"^([0-9]{4}|UNKN?|UN|NK|XXXX)(-([0-9]{1,2}|UNKN?|UN|NK|XX))?(-([0-9]{1,2}|UNKN?|UN|NK|XX))?([T ][0-9:.]*)?$"
_DMY = r"^([0-9]{1,2}|UNKN?|UN|NK|XX)[-/ ]([A-Z]{3}|UNKN?|UN|NK|XX)[-/ ]([0-9]{4}|UNKN?|UN|NK|XXXX)$"
_MONTHS = {
    m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)
}
_DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.float64)


def _parts(values: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(missing, shape ok, year, month, day) of each value; year/month/day float with NaN where unknown."""
    text = values.astype("object").where(values.notna(), None)
    norm = text.str.strip(" ").str.upper()
    missing = (text.isna() | norm.isin(contract.MISSING_MARKERS)).to_numpy(dtype=bool)
    iso = norm.str.extract(_ISO)
    dmy = norm.str.extract(_DMY)

    def number(column: pd.Series) -> pd.Series:
        return pd.to_numeric(column, errors="coerce")

    year = number(iso[0]).fillna(number(dmy[2]))
    month = number(iso[2]).fillna(dmy[1].map(_MONTHS))
    day = number(iso[4]).fillna(number(dmy[0]))
    shape_ok = (iso[0].notna() | dmy[2].notna()).to_numpy(dtype=bool)
    as_float = lambda s: s.to_numpy(dtype=np.float64, na_value=np.nan)  # noqa: E731
    return missing, shape_ok, as_float(year), as_float(month), as_float(day)


def _flag_and_valid_day(
    missing: np.ndarray, ok: np.ndarray, y: np.ndarray, m: np.ndarray, d: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The imputation flag of the dbt macro ``_dtc_flag_from`` (None, 'D', 'M', 'Y', 'X'), and where the date is
    complete and valid."""
    with np.errstate(invalid="ignore"):
        in_range = (y >= 1800) & (y <= 2200) & (m >= 1) & (m <= 12)
        month_index = np.where(in_range, m, 1).astype(np.int64) - 1
        year_int = np.where(in_range, y, 2001).astype(np.int64)
        leap = (year_int % 4 == 0) & ((year_int % 100 != 0) | (year_int % 400 == 0))
        last_day = _DAYS_IN_MONTH[month_index] + ((month_index == 1) & leap)
        day_valid = (d >= 1) & (d <= last_day) & (d == np.floor(d))
    conditions = [
        missing,
        ~ok,
        np.isnan(y),
        np.isnan(m),
        ~in_range,
        np.isnan(d),
        day_valid,
    ]
    flag = np.select(conditions, [None, "X", "Y", "M", "X", "D", None], default="X").astype(object)
    complete = ~missing & ok & in_range & day_valid
    return flag, complete


def age_at_consent(birth: pd.Series, consent: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Age in completed years at informed consent (nullable Int64) and the birth date's imputation flag.

    Vectorised over the whole form; ``birth`` and ``consent`` are ``BRTHDTC`` and ``RFICDTC`` as delivered.
    """
    b_missing, b_ok, by, bm, bd = _parts(birth)
    flag, b_complete = _flag_and_valid_day(b_missing, b_ok, by, bm, bd)
    # Birth date: complete -> as is; day missing -> 15th; month missing (year in range) -> 1 July.
    b_day_imputed = flag == "D"
    b_month_imputed = (flag == "M") & (by >= 1800) & (by <= 2200)
    birth_known = b_complete | b_day_imputed | b_month_imputed
    birth_month = np.where(b_month_imputed, 7, bm)
    birth_day = np.where(b_month_imputed, 1, np.where(b_day_imputed, 15, bd))
    # Consent date as staging reads it ('first' imputation): complete, or day missing -> the 1st.
    c_missing, c_ok, cy, cm, cd = _parts(consent)
    c_flag, c_complete = _flag_and_valid_day(c_missing, c_ok, cy, cm, cd)
    c_day_imputed = c_flag == "D"
    consent_known = c_complete | c_day_imputed
    consent_day = np.where(c_day_imputed, 1, cd)
    with np.errstate(invalid="ignore"):
        before_birthday = (cm < birth_month) | ((cm == birth_month) & (consent_day < birth_day))
        age = cy - by - before_birthday.astype(np.float64)
    age = np.where(birth_known & consent_known, age, np.nan)
    index = birth.index
    return pd.Series(age, index=index).astype("Int64"), pd.Series(flag, index=index, dtype=object)


def deidentify_dm(frame: pd.DataFrame, display_name: str) -> pd.DataFrame:
    """The ``dm`` frame as stored in ``raw.crf_dm``: identifier columns dropped (NULL in the table), the derived
    age columns added. Raises ``ContractViolation`` (file, first bad row, column ``BRTHDTC``) when an age at
    informed consent is below 0 or above :data:`MAX_AGE` years."""
    age, flag = age_at_consent(frame["BRTHDTC"], frame["RFICDTC"])
    impossible = (age < 0) | (age > MAX_AGE)
    impossible = impossible.fillna(False).to_numpy(dtype=bool)
    if impossible.any():
        first = int(np.flatnonzero(impossible)[0])
        n = int(impossible.sum())
        # Never quote the birth date or the age: the reason is stored and printed.
        problem = (
            "the birth date is after informed consent (RFICDTC)"
            if age.iloc[first] < 0
            else f"the birth date gives an age above {MAX_AGE} years at informed consent (RFICDTC)"
        )
        raise ContractViolation(
            display_name,
            problem + (f" ({n} such rows)" if n > 1 else ""),
            f"an age at informed consent between 0 and {MAX_AGE} years",
            row=int(frame["_row_number"].iloc[first]),
            column="BRTHDTC",
        )
    stored = frame.drop(columns=[c for c in DM.identifiers if c in frame.columns])
    return stored.assign(AGE_AT_CONSENT=age, AGE_IMPUTATION_FLAG=flag)


def scrub_stored_identifiers(con: duckdb.DuckDBPyConnection) -> int:
    """Blank identifier values an older warehouse still holds in ``raw.crf_dm`` (loaded before the loader stopped
    storing them), deriving the age columns from them first. Runs inside the caller's transaction (the CRF
    family load), so the blanking commits or rolls back with the load. Returns the number of rows blanked.

    An old row whose age is impossible (below 0, above :data:`MAX_AGE`) keeps a NULL age with flag ``X``: it
    was accepted then, and cannot be rejected now.
    """
    add_derived_columns(con)
    present = {
        r[0].upper()
        for r in con.execute(
            "select column_name from information_schema.columns where table_schema = 'raw' and table_name = 'crf_dm'"
        ).fetchall()
    }
    identifiers = [c for c in DM.identifiers if c in present]
    if not identifiers:
        return 0
    any_value = " or ".join(f'"{c}" is not null' for c in identifiers)
    birth = '"BRTHDTC"' if "BRTHDTC" in present else "null::varchar"
    old = con.execute(f'select rowid as _rowid, {birth} as BRTHDTC, "RFICDTC" from raw.crf_dm where {any_value}').df()
    if old.empty:
        return 0
    age, flag = age_at_consent(old["BRTHDTC"], old["RFICDTC"])
    impossible = ((age < 0) | (age > MAX_AGE)).fillna(False).to_numpy(dtype=bool)
    ages = pd.DataFrame(
        {
            "_rowid": old["_rowid"].to_numpy(),
            "age": age.mask(impossible),
            "flag": flag.mask(impossible, "X"),
        }
    )
    con.register("_dm_ages", ages)
    try:
        blank = ", ".join(f'"{c}" = null' for c in identifiers)
        con.execute(
            f'update raw.crf_dm set {blank}, "AGE_AT_CONSENT" = a.age, "AGE_IMPUTATION_FLAG" = a.flag '
            "from _dm_ages a where raw.crf_dm.rowid = a._rowid"
        )
    finally:
        con.unregister("_dm_ages")
    return len(ages)


def add_derived_columns(con: duckdb.DuckDBPyConnection) -> None:
    """Add the derived columns to a ``raw.crf_dm`` created before they existed (typed, not as extra text)."""
    for column, dtype in DM.derived.items():
        con.execute(f'alter table raw.crf_dm add column if not exists "{column}" {dtype}')
