"""Blinding and privacy, tried the hard way: scan everything a demo run leaves behind.

One undisturbed blinded ``guttrial build`` of the demo trial (shared reference build, persistent ``DAGSTER_HOME``)
and one unblinded build. The scans read:

* every table and column of the working warehouse and of the published copy (SQL, every schema);
* the Dagster instance: every event of every run as JSON (messages, metadata, check results) through the
  instance API, and the raw bytes of every file under ``DAGSTER_HOME`` (sqlite storage, compute logs);
* the build's stdout/stderr, the run's dbt target folder (dbt.log, compiled SQL, run results);
* the Data Docs folder (``settings.quality_dir``), the reports folder (``settings.reports_dir``) and the
  distance-matrix folder (``<stem>_microbiome``), whichever the build wrote.

**Identifiers** are the values the raw CRF actually holds (``dm.csv``: MRN, PATNAME, INITIALS, BRTHDTC, read from
the landing file). How matches avoid false positives:

* MRN (8 digits): anywhere, not inside a longer digit run (a SHA-256 may contain 8 digits in a row);
* name: anywhere, case-insensitive, any whitespace between its parts;
* birth date: a full ISO date anywhere (not inside a longer date-like token) and any DATE/TIMESTAMP cell equal to
  it; a partial ``YYYY-MM`` likewise; a year alone is not matched (not an identifier, and every table has years);
* initials (2-3 letters, which collide with CDISC codes such as PR, SD, PD, NE, PT): only next to the same
  patient - a table cell equal to the initials in a row of that patient (joined on subject_id / SUBJID), or the
  initials as a standalone token within 120 characters of the patient's id in a text file or event.

No schema may hold them, ``raw`` included: the loader requires the identifier columns in ``dm.csv`` but stores none
of their values (``raw.crf_dm``'s MRN, PATNAME, INITIALS and BRTHDTC are always NULL; the birth date is replaced by
the derived age at informed consent), so every schema of the working warehouse and of the published copy, and
every text and event, must count zero.

**Arm information** (blinded artefacts): the arm labels of the randomisation list (read from the simulator's
restricted output) as a whole table cell (the dose unit ``capsule`` of the identical study capsules excepted),
any subject-level column that separates the patients exactly by arm (an arm in disguise), an arm label within 120
characters of a patient id or randomisation number in any text, the ``restricted`` schema, and the SHA-256 of
the randomisation list itself (from which a small allocation list can be brute-forced).
"""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from _reliability import (
    ROOT,
    Reference,
    build_env,
    reference_build,
    run_build,
)

from analysis.hashing import file_sha256, quote_ident
from orchestration.permissions import is_owner_only

pytestmark = pytest.mark.slow

#: Columns where 'capsule' is the dose unit of the (identical, blinded) study capsules, not an arm.
DOSE_UNIT_COLUMNS = {"exdosu", "dose_unit"}
#: Columns whose value is the same for every patient of a table by construction (no arm can hide there).
SUBJECT_KEYS = ("subject_id", "subjid", "usubjid")
#: Files bigger than this are scanned as bytes only (not line by line).
MAX_TEXT_BYTES = 50_000_000


# ---------------------------------------------------------------------------------------------- what to look for


@dataclass(frozen=True)
class Patient:
    subjid: str
    subject_id: str
    mrn: str
    name: str
    initials: str
    birth: str  # as delivered (full or partial ISO)
    randno: str
    arm: str


def _read_csv(folder: Path, stem: str) -> pd.DataFrame:
    for candidate in (folder / f"{stem}.csv", folder / f"{stem}.csv.gz"):
        if candidate.exists():
            return pd.read_csv(candidate, dtype=str, keep_default_na=False)
    raise FileNotFoundError(f"{folder}/{stem}.csv")


def patients(reference: Reference) -> list[Patient]:
    crf = reference.landing / "crf"
    dm = _read_csv(crf, "dm")
    rand = _read_csv(crf, "rand")
    randno = dict(zip(rand["SUBJID"].str.strip(), rand["RANDNO"].str.strip(), strict=True))
    allocation = pd.read_csv(reference.randomisation_list, dtype=str, keep_default_na=False)
    arm = dict(zip(allocation["RANDNO"].str.strip(), allocation["ARM"].str.strip().str.upper(), strict=True))
    out = []
    for row in dm.itertuples(index=False):
        subjid = row.SUBJID.strip()
        number = randno.get(subjid, "")
        out.append(
            Patient(
                subjid=subjid,
                subject_id=f"{row.STUDYID.strip()}-{subjid}",
                mrn=row.MRN.strip(),
                name=" ".join(row.PATNAME.split()),
                initials=row.INITIALS.strip().upper(),
                birth=row.BRTHDTC.strip(),
                randno=number,
                arm=arm.get(number, ""),
            )
        )
    return out


def _birth_pattern(birth: str) -> str | None:
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", birth) or re.fullmatch(r"\d{4}-\d{2}", birth):
        return (
            rf"(?<![\d-]){re.escape(birth)}(?![\d])" if len(birth) == 10 else rf"(?<![\d-]){re.escape(birth)}(?![\d-])"
        )
    return None  # year only (or empty): not matched, see the module docstring


@dataclass
class Findings:
    """Occurrences per artefact (``where``) and kind."""

    hits: dict[tuple[str, str], int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def add(self, where: str, kind: str, n: int, example: str = "") -> None:
        if n:
            self.hits[(where, kind)] = self.hits.get((where, kind), 0) + n
            if example and len(self.examples) < 20:
                self.examples.append(f"{where} [{kind}]: {example[:300]}")

    @property
    def total(self) -> int:
        return sum(self.hits.values())

    def report(self) -> str:
        return "\n".join(f"{w} {k}: {n}" for (w, k), n in sorted(self.hits.items())) + "\n" + "\n".join(self.examples)


#: How far (characters) from a patient's id the initials, or an arm label, count as "next to" it.
WINDOW = 120


def _occurrences(text: str, needle: str, left: str, right: str) -> Iterator[int]:
    """Start offsets of ``needle`` in ``text`` not preceded by a character of ``left`` nor followed by one of
    ``right`` (str.find: a C-speed scan per needle, far faster than one big regular expression)."""
    start = text.find(needle)
    while start != -1:
        end = start + len(needle)
        if (start == 0 or text[start - 1] not in left) and (end == len(text) or text[end] not in right):
            yield start
        start = text.find(needle, start + 1)


_DIGIT = "0123456789"
_WORD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
_LETTER = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


class TextScanner:
    """Direct identifiers and arm-allocation pairs in text (a whole file, or one event's JSON)."""

    def __init__(self, people: list[Patient]) -> None:
        self.people = people
        self.by_id = {p.subjid: p for p in people} | {p.subject_id: p for p in people}
        self.randnos = sorted({p.randno for p in people if p.randno})
        self.arms = sorted({p.arm.lower() for p in people if p.arm})

    def _near_id(self, window: str) -> Patient | None:
        for ident, p in self.by_id.items():
            if next(_occurrences(window, ident, _WORD + "-", _WORD + "-"), None) is not None:
                return p
        return None

    def identifiers(self, where: str, text: str, findings: Findings, pairs: bool = True) -> None:
        """MRN, name and birth date anywhere; initials only within :data:`WINDOW` characters of the same
        patient's id (``pairs``; off for binary files, where nearness means nothing)."""
        # Names match case-insensitively with any whitespace between their parts.
        folded = " ".join(text.lower().split()) if any(p.name for p in self.people) else ""
        for p in self.people:
            hits = [(text, i, p.mrn) for i in _occurrences(text, p.mrn, _DIGIT, _DIGIT)] if p.mrn else []
            if _birth_pattern(p.birth):
                hits += [(text, i, p.birth) for i in _occurrences(text, p.birth, _DIGIT + "-", _DIGIT + "-")]
            if p.name:
                name = " ".join(p.name.lower().split())
                hits += [(folded, i, name) for i in _occurrences(folded, name, _LETTER, _LETTER)]
            for source, i, needle in hits:
                findings.add(where, "identifier", 1, source[max(0, i - 80) : i + len(needle) + 80])
            if not pairs or not p.initials:
                continue
            for ident in {p.subjid, p.subject_id}:
                for i in _occurrences(text, ident, _WORD + "-", _WORD + "-"):
                    window = text[max(0, i - WINDOW) : i + len(ident) + WINDOW]
                    if next(_occurrences(window, p.initials, _LETTER, _LETTER), None) is not None:
                        findings.add(where, "initials next to their patient", 1, window)

    def allocation(self, where: str, text: str, findings: Findings) -> None:
        """An arm label within :data:`WINDOW` characters of a patient id or a randomisation number."""
        lowered = text.lower()
        for arm in self.arms:
            for i in _occurrences(lowered, arm, _LETTER, _LETTER):
                window = text[max(0, i - WINDOW) : i + len(arm) + WINDOW]
                near_randno = any(next(_occurrences(window, r, _DIGIT, _DIGIT), None) is not None for r in self.randnos)
                if near_randno or self._near_id(window) is not None:
                    findings.add(where, "arm label with a patient or randomisation number", 1, window)


def _text_of(path: Path) -> str:
    # latin-1 maps every byte to one character: binary files scan too, and offsets stay byte offsets.
    return path.read_bytes().decode("latin-1")


def is_text(path: Path) -> bool:
    """UTF-8 without NUL bytes (logs, HTML, JSON, CSV, SQL); sqlite, npz and other binaries are not."""
    head = path.read_bytes()[:65536]
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > len(head) - 4  # a multi-byte character cut at the end of the sample
    return True


def text_files(roots: list[Path]) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".duckdb"))


# ---------------------------------------------------------------------------------------------- tables


def _tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return con.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = current_database() "
        "union all select schema_name, view_name from duckdb_views() where not internal "
        "and database_name = current_database() order by 1, 2"
    ).fetchall()


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[tuple[str, str]]:
    return con.execute(
        "select column_name, data_type from duckdb_columns() where database_name = current_database() "
        "and schema_name = ? and table_name = ? order by column_index",
        [schema, table],
    ).fetchall()


def scan_tables_for_identifiers(path: Path, people: list[Patient], findings: Findings, where: str) -> dict[str, int]:
    """Identifier occurrences in every table of a DuckDB file (added to ``findings``); returns the number found
    per schema (every schema scanned is a key, so a zero is a schema that was looked at)."""
    per_schema: dict[str, int] = {}
    mrns = [p.mrn for p in people if p.mrn]
    mrn_re = "(^|[^0-9])(" + "|".join(mrns) + ")([^0-9]|$)"
    names = "(?i:" + "|".join(r"\s+".join(map(re.escape, p.name.split())) for p in people if p.name) + ")"
    births = [p.birth for p in people if _birth_pattern(p.birth)]
    birth_re = "(^|[^0-9-])(" + "|".join(map(re.escape, births)) + ")([^0-9]|$)"
    # One RE2 pass per cell for all three kinds.
    strong = f"{mrn_re}|{names}|{birth_re}"
    full_dates = sorted({b for b in births if len(b) == 10})
    key = pd.DataFrame(
        {
            "k": [p.subject_id for p in people] + [p.subjid for p in people],
            "initials": [p.initials for p in people] * 2,
        }
    )
    with duckdb.connect(str(path), read_only=True) as con:
        con.register("_initials", key)
        for schema, table in _tables(con):
            per_schema.setdefault(schema, 0)
            columns = _columns(con, schema, table)
            names_lower = {c.lower(): c for c, _ in columns}
            subject_key = next((names_lower[k] for k in SUBJECT_KEYS if k in names_lower), None)
            probes: list[tuple[str, str]] = []
            for column, dtype in columns:
                q = "t." + quote_ident(column)
                if dtype == "VARCHAR":
                    probes.append(
                        (
                            column,
                            f"count(*) filter (where regexp_matches({q}, '{strong}'))",
                        )
                    )
                    if subject_key and column != subject_key:
                        probes.append((column, f"count(*) filter (where upper(trim({q})) = i.initials)"))
                elif dtype in ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE") and full_dates:
                    dates = ", ".join(f"DATE '{d}'" for d in full_dates)
                    probes.append((column, f"count(*) filter (where cast({q} as date) in ({dates}))"))
                elif dtype in ("BIGINT", "INTEGER", "HUGEINT", "UBIGINT"):
                    probes.append((column, f"count(*) filter (where {q} in ({', '.join(mrns)}))"))
            if not probes:
                continue
            join = f"left join _initials as i on trim(t.{quote_ident(subject_key)}) = i.k" if subject_key else ""
            counts = con.execute(
                f"select {', '.join(p for _, p in probes)} from {quote_ident(schema)}.{quote_ident(table)} as t {join}"
            ).fetchone()
            for (column, _), n in zip(probes, counts, strict=True):
                per_schema[schema] += n
                findings.add(where, f"identifier in {schema}.{table}.{column}", n)
    return per_schema


def scan_tables_for_arm(path: Path, people: list[Patient], findings: Findings, where: str) -> None:
    """Arm labels as cells, arm-separating subject-level columns and the restricted schema, in a DuckDB file."""
    arms = sorted({p.arm for p in people if p.arm})
    arm_of = {p.subject_id: p.arm for p in people} | {p.subjid: p.arm for p in people}
    labels = ", ".join(f"'{a}'" for a in arms)
    with duckdb.connect(str(path), read_only=True) as con:
        restricted = con.execute(
            "select count(*) from duckdb_schemas() where database_name = current_database() "
            "and schema_name = 'restricted'"
        ).fetchone()[0]
        findings.add(where, "restricted schema", restricted)
        for schema, table in _tables(con):
            if re.search(r"randomi[sz]ation_list", table, re.I):
                findings.add(where, f"table {schema}.{table}", 1)
            columns = _columns(con, schema, table)
            relation = f"{quote_ident(schema)}.{quote_ident(table)}"
            text_columns = [c for c, t in columns if t == "VARCHAR"]
            if text_columns:
                probes = []
                for column in text_columns:
                    q = quote_ident(column)
                    allowed = " and lower(trim(" + q + ")) <> 'capsule'" if column.lower() in DOSE_UNIT_COLUMNS else ""
                    probes.append(f"count(*) filter (where upper(trim({q})) in ({labels}){allowed})")
                counts = con.execute(f"select {', '.join(probes)} from {relation}").fetchone()
                for column, n in zip(text_columns, counts, strict=True):
                    findings.add(where, f"arm label in {schema}.{table}.{column}", n)
            names_lower = {c.lower(): c for c, _ in columns}
            key = next((names_lower[k] for k in SUBJECT_KEYS if k in names_lower), None)
            if key is None or schema == "audit":
                continue
            # A column that is constant per patient and takes one value per arm is the arm in disguise. One row per
            # patient first (in SQL): the number of distinct values of each column and one of them.
            others = [c for c, _ in columns if c != key]
            if not others:
                continue
            aggregates = ", ".join(
                f"count(distinct {quote_ident(c)}) as d{i}, any_value({quote_ident(c)})::varchar as v{i}"
                for i, c in enumerate(others)
            )
            per_patient = con.execute(
                f"select trim({quote_ident(key)}::varchar) as k, {aggregates} from {relation} group by 1"
            ).df()
            per_patient["_arm"] = per_patient["k"].map(arm_of)
            per_patient = per_patient[per_patient["_arm"].notna()]
            if per_patient["_arm"].nunique() < 2:
                continue
            for i, column in enumerate(others):
                have = per_patient[per_patient[f"d{i}"] > 0]
                # Only a value most patients have can stand for their arm (a flag set for one patient per arm
                # "separates" two patients, not the arms), constant per patient, at least three patients per arm.
                if len(have) < 0.9 * len(per_patient) or have.groupby("_arm").size().min() < 3:
                    continue
                if have[f"d{i}"].max() != 1:
                    continue
                per_arm = have.groupby("_arm")[f"v{i}"].agg(lambda v: frozenset(v))
                if len(per_arm) == 2 and all(len(v) == 1 for v in per_arm) and per_arm.iloc[0] != per_arm.iloc[1]:
                    findings.add(where, f"column separating the arms: {schema}.{table}.{column}", 1)


# ---------------------------------------------------------------------------------------------- artefacts


def dagster_event_texts(dagster_home: Path) -> Iterator[tuple[str, str]]:
    """(run id, JSON of one event) for every event of every run stored in ``dagster_home``."""
    code = (
        "import sys, json\n"
        "import dagster as dg\n"
        "from dagster._serdes import serialize_value\n"
        "instance = dg.DagsterInstance.get()\n"
        "for record in instance.get_run_records():\n"
        "    run_id = record.dagster_run.run_id\n"
        "    print(json.dumps([run_id, serialize_value(record.dagster_run)]))\n"
        "    for entry in instance.all_logs(run_id):\n"
        "        print(json.dumps([run_id, serialize_value(entry)]))\n"
    )
    # In a subprocess: DagsterInstance.get() reads DAGSTER_HOME, which this test process must not change.
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=build_env(dagster_home),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    import json

    for line in done.stdout.splitlines():
        run_id, text = json.loads(line)
        yield run_id, text


def run_id_of(log: Path) -> str:
    match = re.search(r"^run ([0-9a-f]{8}) (succeeded|FAILED)", log.read_text(), re.M)
    assert match, "no run line in the build output"
    return match.group(1)


def dbt_target_of(run_id: str) -> list[Path]:
    return sorted((ROOT / "dbt_project" / "target").glob(f"dbt_models-{run_id[:7]}-*"))


@dataclass(frozen=True)
class Artefacts:
    databases: list[Path]
    text_roots: list[Path]
    dagster_home: Path | None


def artefacts_of(warehouse: Path, log: Path, dagster_home: Path | None, dbt_copy: Path) -> Artefacts:
    stem = warehouse.stem
    folder = warehouse.parent
    published = folder / f"{stem}_published.duckdb"
    text_roots = [
        log,
        dbt_copy,
        folder / f"{stem}_quality",
        folder / f"{stem}_reports",
        folder / f"{stem}_microbiome",
    ]
    if dagster_home is not None:
        text_roots.append(dagster_home)
    return Artefacts([warehouse, published], text_roots, dagster_home)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    return reference_build(tmp_path_factory)


@pytest.fixture(scope="module")
def blinded(reference: Reference, tmp_path_factory: pytest.TempPathFactory) -> Artefacts:
    copy = tmp_path_factory.mktemp("dbt_target")
    for folder in dbt_target_of(run_id_of(reference.log)):
        shutil.copytree(folder, copy / folder.name)
    return artefacts_of(reference.warehouse, reference.log, reference.dagster_home, copy)


@pytest.fixture(scope="module")
def events(reference: Reference) -> list[tuple[str, str]]:
    return list(dagster_event_texts(reference.dagster_home))


@pytest.fixture(scope="module")
def people(reference: Reference) -> list[Patient]:
    found = patients(reference)
    assert len(found) >= 12 and all(p.mrn and p.name and p.initials and p.arm for p in found)
    return found


# ---------------------------------------------------------------------------------------------- tests


def test_every_expected_artefact_was_scanned(reference: Reference, blinded: Artefacts) -> None:
    """The scans below are only as good as their coverage: each artefact the build is meant to leave exists."""
    assert reference.published.is_file()
    log = reference.log.read_text()
    assert "published read-only copy" in log
    dbt_copy = blinded.text_roots[1]
    assert any(dbt_copy.rglob("dbt.log")), "the run's dbt target folder (dbt.log) was not found"
    assert any(reference.dagster_home.rglob("*.db")), "no Dagster event storage under DAGSTER_HOME"
    # Reports and Data Docs are written by their own assets once registered; scan them whenever they exist.
    from orchestration.definitions import defs

    groups = {spec.group_name for spec in defs.resolve_all_asset_specs()}
    stem = reference.warehouse.stem
    if "reports" in groups:
        assert any((reference.warehouse.parent / f"{stem}_reports").rglob("*.html")), "reports asset wrote nothing"
    if "quality" in groups:
        assert any((reference.warehouse.parent / f"{stem}_quality").rglob("*.html")), "no Data Docs pages"


def test_no_direct_identifier_in_any_artefact(
    reference: Reference, blinded: Artefacts, people: list[Patient], events: list[tuple[str, str]], record_property
) -> None:
    findings = Findings()
    scanner = TextScanner(people)
    warehouse = scan_tables_for_identifiers(reference.warehouse, people, findings, "warehouse")
    published = scan_tables_for_identifiers(reference.published, people, findings, "published copy")
    for path in text_files(blinded.text_roots):
        scanner.identifiers(str(path), _text_of(path), findings, pairs=is_text(path))
    for run_id, text in events:
        scanner.identifiers(f"dagster event log (run {run_id[:8]})", text, findings)
    record_property("identifiers_found", findings.total)
    record_property("identifiers_per_schema", {"warehouse": warehouse, "published copy": published})
    print(f"identifiers found: {findings.total}; per schema: warehouse {warehouse}, published copy {published}")
    # Every schema was scanned, raw included, and the loader kept the identifier columns (the contract) but no value.
    assert {"raw", "staging", "intermediate", "marts", "analysis", "audit"} <= warehouse.keys() & published.keys()
    with duckdb.connect(str(reference.warehouse), read_only=True) as con:
        stored, ages, n = con.execute(
            "select count(MRN) + count(PATNAME) + count(INITIALS) + count(BRTHDTC), count(AGE_AT_CONSENT), count(*) "
            "from raw.crf_dm"
        ).fetchone()
    assert n >= len(people) and stored == 0 and ages >= n - n // 10
    # Nothing anywhere: not a table of any schema, a log line, an event, a report or a Data Docs page.
    assert findings.total == 0, findings.report()


def test_blinded_artefacts_hold_no_arm_information(
    reference: Reference, blinded: Artefacts, people: list[Patient], events: list[tuple[str, str]], record_property
) -> None:
    findings = Findings()
    scanner = TextScanner(people)
    for database in blinded.databases:
        scan_tables_for_arm(database, people, findings, database.name)
    list_sha = file_sha256(reference.randomisation_list)
    for path in text_files(blinded.text_roots):
        text = _text_of(path)
        if is_text(path):
            scanner.allocation(str(path), text, findings)
        findings.add(str(path), "randomisation list checksum", text.count(list_sha))
    for run_id, text in events:
        where = f"dagster event log (run {run_id[:8]})"
        scanner.allocation(where, text, findings)
        findings.add(where, "randomisation list checksum", text.count(list_sha))
    for database in blinded.databases:
        with duckdb.connect(str(database), read_only=True) as con:
            for schema, table in _tables(con):
                for column, dtype in _columns(con, schema, table):
                    if dtype == "VARCHAR":
                        n = con.execute(
                            f"select count(*) from {quote_ident(schema)}.{quote_ident(table)} "
                            f"where contains({quote_ident(column)}, ?)",
                            [list_sha],
                        ).fetchone()[0]
                        findings.add(database.name, f"randomisation list checksum in {schema}.{table}", n)
    record_property("arm_findings", findings.total)
    print(f"arm information found in blinded artefacts: {findings.total}")
    assert findings.total == 0, findings.report()
    # The run recorded itself as blinded, and the dbt build compiled the placeholder arm.
    with duckdb.connect(str(reference.warehouse), read_only=True) as con:
        assert con.execute("select distinct arm_code from marts.adsl").fetchall() == [("BLINDED",)]
        assert con.execute("select bool_and(blinded) from audit.runs").fetchone()[0] is True


def test_the_scans_find_planted_identifiers_and_arms(reference: Reference, people: list[Patient], tmp_path) -> None:
    """The scanners are not blind: a copy of the published warehouse with one identifier and one arm planted in
    a mart, and a log line pairing a patient with an arm, are all found."""
    victim = people[0]
    planted = tmp_path / "planted.duckdb"
    shutil.copyfile(reference.published, planted)
    planted.chmod(0o600)
    with duckdb.connect(str(planted)) as con:
        con.execute(
            "create table marts.leak as select subject_id, ? as note, ? as grp from marts.adsl",
            [f"MRN {victim.mrn}", victim.arm],
        )
        con.execute("update marts.leak set grp = 'OTHER' where subject_id <> ?", [victim.subject_id])
        con.execute("create table marts.disguised as select subject_id, 'X' as code from marts.adsl")
        for p in people:
            con.execute("update marts.disguised set code = ? where subject_id = ?", [p.arm[:1], p.subject_id])
    ids, arms = Findings(), Findings()
    scan_tables_for_identifiers(planted, people, ids, "planted")
    scan_tables_for_arm(planted, people, arms, "planted")
    assert ids.hits == {("planted", "identifier in marts.leak.note"): len(people)}
    assert ("planted", "arm label in marts.leak.grp") in arms.hits
    assert ("planted", "column separating the arms: marts.disguised.code") in arms.hits
    text = Findings()
    scanner = TextScanner(people)
    scanner.allocation("log", f"patient {victim.subject_id} is on {victim.arm.lower()}", text)
    scanner.identifiers("log", f"{victim.subjid} ({victim.initials}) seen\n" + 200 * "." + f"born {victim.birth}", text)
    assert text.hits[("log", "arm label with a patient or randomisation number")] == 1
    assert text.hits[("log", "initials next to their patient")] == 1
    assert text.hits.get(("log", "identifier"), 0) == (1 if _birth_pattern(victim.birth) else 0)


# ---------------------------------------------------------------------------------------------- unblinded


@pytest.fixture(scope="module")
def unblinded(reference: Reference, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("unblinded")
    warehouse = folder / "warehouse_unblinded.duckdb"
    log = folder / "build.log"
    done = run_build(
        reference.landing,
        warehouse,
        "--unblinded",
        "--randomisation-list",
        str(reference.randomisation_list),
        log=log,
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    return warehouse


def test_unblinded_outputs_are_owner_only_and_logged_as_unblinded(unblinded: Path, reference: Reference) -> None:
    stem = unblinded.stem
    folder = unblinded.parent
    outputs = [
        unblinded,
        folder / f"{stem}_published.duckdb",
        folder / f"{stem}.duckdb.wal",
        folder / f"{stem}_quality",
        folder / f"{stem}_reports",
        folder / f"{stem}_microbiome",
    ]
    present = [p for p in outputs if p.exists()]
    assert unblinded in present and folder / f"{stem}_published.duckdb" in present
    not_private = []
    for path in present:
        items = [path, *path.rglob("*")] if path.is_dir() else [path]
        not_private += [f"{p} {oct(stat.S_IMODE(p.stat().st_mode))}" for p in items if not is_owner_only(p)]
    assert not_private == []
    with duckdb.connect(str(unblinded), read_only=True) as con:
        run = con.execute("select blinded, randomisation_list_path, config_json from audit.runs").fetchall()
        assert len(run) == 1 and run[0][0] is False and run[0][1] == str(reference.randomisation_list)
        roles = con.execute("select role, sha256 from audit.run_inputs where role = 'randomisation_list'").fetchall()
        assert roles == [("randomisation_list", file_sha256(reference.randomisation_list))]
        assert {a for (a,) in con.execute("select distinct arm_code from marts.adsl").fetchall()} == {
            "CAPSULE",
            "PLACEBO",
        }
    # The blinded warehouse was never touched by the unblinded run.
    with duckdb.connect(str(reference.warehouse), read_only=True) as con:
        assert con.execute("select count(*) from audit.runs where not blinded").fetchone()[0] == 0


def test_unblinded_run_into_a_blinded_file_is_refused_before_it_starts(reference: Reference, tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    done = run_build(
        reference.landing, warehouse, "--unblinded", "--randomisation-list", str(reference.randomisation_list)
    )
    assert done.returncode == 2
    assert "refusing to unblind" in done.stdout
    assert not warehouse.exists()
