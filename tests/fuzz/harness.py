"""Hostile-input harness shared by ``tests/test_fuzz_readers.py`` and the campaign runner ``fuzz_readers.py``.

The property every reader must keep (issue 9): *any* byte string gives either a whole, valid table or an
:class:`~analysis.errors.ContractViolation` naming the file with a non-empty problem — never another
exception type, a hang, or a partial table.

* :func:`build_targets` writes a tiny seeded demo trial with the simulator (so the seeds follow the current
  contract in every format the warehouse reads) plus the reader fixtures, and returns one :class:`Target`
  per reader entry point with its valid seed files.
* :func:`mutants` is a hypothesis strategy that damages a seed the way real transfers and exports do (bit
  flips, truncation, NULs, huge fields, CR/CRLF line ends, BOMs, UTF-16, GBK/Latin-1 free text, duplicated
  headers, wrong delimiters, gzip wrapping, formula-injection strings, binary garbage ...).
* :func:`biom_json_docs`, :func:`hdf5_tables` and :func:`qza_archives` build structurally hostile BIOM
  JSON, BIOM HDF5 and QIIME 2 artifacts (wrong shapes, bad CSR, NaN counts, zip bombs, path traversal).
* :func:`run_one` writes the bytes, runs the reader under a time limit and checks the outcome; it raises
  :class:`BadOutcome` for anything the property forbids.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import io
import json
import math
import signal
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import note
from hypothesis import strategies as st

from analysis import contract
from analysis.errors import ContractViolation

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"

#: The tiny demo trial the seeds come from (seeded: the same bytes every run).
SIMULATION = {"n_patients": 4, "seed": 20240501, "n_asvs": 12, "n_faecal_features": 8, "n_serum_features": 8}

#: A reader must answer within this many seconds on inputs of the sizes the strategies draw (the machine is
#: shared, so this is generous; a hang is caught by the alarm, a slow path by the measured time).
TIME_LIMIT_S = 30.0

#: Free text in Chinese as single-centre Chinese trials export it (adverse-event terms, names, notes).
CHINESE_TEXT = "腹泻，乏力；张伟（肝癌）"
#: OWASP formula-injection payloads: they must load verbatim and be neutralised only in CSV the warehouse writes.
FORMULA_PAYLOADS = ("=cmd|' /C calc'!A0", "+SUM(1+1)*cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)")


#: Every reader entry point fuzzed (one :class:`Target` each; see :func:`build_targets`).
TARGET_NAMES: tuple[str, ...] = (
    *(f"crf_{code}" for code in contract.CRF_FORMS),
    "seq_manifest",
    "biom_json",
    "biom_hdf5",
    "qza",
    "shared",
    "classic_tsv",
    "cons_taxonomy",
    "taxonomy_tsv",
    "mtb_features",
    "mtb_injections",
    "mtb_msdial",
    "mtb_progenesis",
    "mtb_xcms3",
    "mtb_mwtab",
)


class BadOutcome(AssertionError):
    """The reader broke the property: another exception type, a malformed rejection, a hang or a bad table.

    ``data`` is the input (the campaign runner saves it, so a finding can be replayed and turned into a test).
    """

    def __init__(self, message: str, data: bytes | None = None) -> None:
        super().__init__(message)
        self.data = data


class Hang(BaseException):  # BaseException: a reader's ``except Exception`` must not swallow the alarm
    """The reader ran past :data:`TIME_LIMIT_S`."""


# ---------------------------------------------------------------------------------------------- targets


@dataclass
class Target:
    """One reader entry point with the landing-relative name its file gets and its valid seed files."""

    name: str
    relpath: str  # where the bytes are written, relative to the landing folder
    read: Callable[[Path, str], Any]  # (path, display name) -> table
    seeds: list[bytes] = field(default_factory=list)
    binary: bool = False  # HDF5/zip payloads: text mutations do not apply
    check: Callable[[Any], None] = lambda result: None


def _crf_reader(code: str) -> Callable[[Path, str], Any]:
    from analysis.ingest.crf import read_crf_csv

    form = contract.CRF_FORMS[code]
    return lambda path, display: read_crf_csv(path, display, form)


def _check_crf(code: str) -> Callable[[Any], None]:
    form = contract.CRF_FORMS[code]

    def check(frame: pd.DataFrame) -> None:
        missing = [c for c in form.required if c not in frame.columns]
        _require(not missing, f"loaded CRF lacks required columns {missing}")
        rows = frame["_row_number"].to_numpy()
        _require(bool((np.diff(rows) > 0).all()) if len(rows) else True, "row numbers not increasing")
        for col in frame.columns.drop("_row_number"):
            _require(frame[col].map(lambda v: isinstance(v, str)).all(), f"CRF column {col} holds non-text values")

    return check


def _read_feature_table(path: Path, display: str) -> Any:
    from analysis.readers import read_feature_table

    return read_feature_table(path)


def _check_feature_table(ft: Any) -> None:
    counts = ft.counts
    _require(counts.shape == (len(ft.sample_ids), len(ft.feature_ids)), "counts shape differs from the ids")
    _require(len(set(ft.sample_ids)) == len(ft.sample_ids), "duplicate sample ids loaded")
    _require(len(set(ft.feature_ids)) == len(ft.feature_ids), "duplicate feature ids loaded")
    data = counts.data
    _require(bool(np.isfinite(data).all()) and bool((data >= 0).all()), "non-finite or negative counts loaded")
    _require(ft.relative or counts.dtype == np.int64, f"counts are {counts.dtype}, not int64")
    n_rows = len(ft.sample_ids) if ft.rows_are == "samples" else len(ft.feature_ids)
    _require(len(ft.source_rows) == n_rows, "lineage rows do not match the table")


def _read_taxonomy(path: Path, display: str) -> Any:
    from analysis.readers import read_taxonomy_table

    return read_taxonomy_table(path)


def _check_frame_unique(column: str) -> Callable[[Any], None]:
    def check(frame: pd.DataFrame) -> None:
        _require(len(frame) > 0, "an empty table was loaded")
        _require(not frame[column].duplicated().any(), f"duplicate {column} loaded")

    return check


def _read_manifest(path: Path, display: str) -> Any:
    from analysis.readers import read_seq_manifest

    return read_seq_manifest(path)


def _read_injections(path: Path, display: str) -> Any:
    from analysis.readers import read_injection_list

    return read_injection_list(path)


def read_metabolomics_landing_file(path: Path, display: str) -> Any:
    """What the loader does with ``metabolomics/<batch>/<file>``: a vendor export or the generic wide table."""
    from analysis.ingest.landing import LandingFile
    from analysis.ingest.mtb_vendors import batch_injection_list, detect_export, read_export
    from analysis.readers import read_metabolomics_table

    batch = Path(display).parts[1]
    file = LandingFile("metabolomics", "mtb_features", path, display, batch)
    vendor = detect_export(path)
    if vendor is None:
        return read_metabolomics_table(path)
    return read_export(file, vendor, batch_injection_list(file))


def _check_metabolomics(table: Any) -> None:
    vals = np.asarray(table.intensities, dtype=np.float64)
    _require(bool((np.isnan(vals) | (np.isfinite(vals) & (vals >= 0))).all()), "bad intensities loaded")
    if hasattr(table, "annotations"):  # generic wide table: injections x features
        _require(vals.shape == (len(table.injection_ids), len(table.annotations)), "intensity shape mismatch")
    else:  # vendor table: features x injections
        _require(vals.shape == (len(table.features), len(table.injection_ids)), "intensity shape mismatch")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise BadOutcome(message)


def set_field(data: bytes, column: str, value: str, row: int = 0) -> bytes:
    """A CSV seed with one cell (data row ``row``, header ``column``) replaced, re-quoted as needed."""
    import csv

    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    rows[row + 1][rows[0].index(column)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def _simulate(workdir: Path) -> Path:
    from analysis.simulation import generate_trial

    out = workdir / "sim"
    if not (out / "landing").is_dir():
        generate_trial(out, overwrite=True, **SIMULATION)
    return out / "landing"


def _plain(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def build_targets(workdir: Path) -> dict[str, Target]:
    """Every reader entry point with its seeds (simulated demo trial + ``tests/fixtures``)."""
    landing = _simulate(workdir)
    targets: dict[str, Target] = {}

    def add(t: Target) -> None:
        targets[t.name] = t

    for code in contract.CRF_FORMS:
        files = sorted((landing / "crf").glob(f"{code}.csv*"))
        add(
            Target(
                f"crf_{code}", f"crf/{code}.csv", _crf_reader(code), [_plain(p) for p in files], False, _check_crf(code)
            )
        )
    # Free text in Chinese (UTF-8): the GBK/UTF-16 mutations re-encode it.
    targets["crf_ae"].seeds.append(set_field(targets["crf_ae"].seeds[0], "AETERM", CHINESE_TEXT))
    targets["crf_dm"].seeds.append(set_field(targets["crf_dm"].seeds[0], "PATNAME", "邓涛"))

    seq = landing / "sequencing"
    add(
        Target(
            "seq_manifest",
            "sequencing/SEQ01/manifest.csv",
            _read_manifest,
            [(seq / "SEQ01" / "manifest.csv").read_bytes(), (FIXTURES / "readers" / "manifest.csv").read_bytes()],
            check=_check_frame_unique("sample_id"),
        )
    )
    add(
        Target(
            "biom_json",
            "sequencing/SEQ04/otu_table.biom",
            _read_feature_table,
            [
                (seq / "SEQ04" / "otu_table.biom").read_bytes(),
                (FIXTURES / "readers" / "tiny_sparse.biom").read_bytes(),
                (FIXTURES / "readers" / "tiny_dense.biom").read_bytes(),
            ],
            check=_check_feature_table,
        )
    )
    add(
        Target(
            "biom_hdf5",
            "sequencing/SEQ01/feature-table.biom",
            _read_feature_table,
            [(seq / "SEQ01" / "feature-table.biom").read_bytes()],
            binary=True,
            check=_check_feature_table,
        )
    )
    add(
        Target(
            "qza",
            "sequencing/SEQ05/table.qza",
            _read_feature_table,
            [(seq / "SEQ05" / "table.qza").read_bytes()],
            binary=True,
            check=_check_feature_table,
        )
    )
    add(
        Target(
            "shared",
            "sequencing/SEQ02/final.opti_mcc.shared",
            _read_feature_table,
            [
                (seq / "SEQ02" / "final.opti_mcc.shared").read_bytes(),
                (FIXTURES / "readers" / "multi_label.shared").read_bytes(),
                (FIXTURES / "readers" / "headerless.shared").read_bytes(),
            ],
            check=_check_feature_table,
        )
    )
    add(
        Target(
            "classic_tsv",
            "sequencing/SEQ03/feature-table.tsv",
            _read_feature_table,
            [
                _plain(seq / "SEQ03" / "feature-table.tsv.gz"),
                (FIXTURES / "readers" / "qiime1_otu_table.tsv").read_bytes(),
                (FIXTURES / "readers" / "majorbio_otu_table.xls").read_bytes(),
            ],
            check=_check_feature_table,
        )
    )
    add(
        Target(
            "cons_taxonomy",
            "sequencing/SEQ02/final.opti_mcc.0.03.cons.taxonomy",
            _read_taxonomy,
            [
                (seq / "SEQ02" / "final.opti_mcc.0.03.cons.taxonomy").read_bytes(),
                (FIXTURES / "readers" / "tiny.cons.taxonomy").read_bytes(),
            ],
            check=_check_frame_unique("feature_id"),
        )
    )
    add(
        Target(
            "taxonomy_tsv",
            "sequencing/SEQ05/taxonomy.tsv",
            _read_taxonomy,
            [(seq / "SEQ05" / "taxonomy.tsv").read_bytes(), (FIXTURES / "readers" / "taxonomy.tsv").read_bytes()],
            check=_check_frame_unique("feature_id"),
        )
    )

    mtb = landing / "metabolomics"
    add(
        Target(
            "mtb_features",
            "metabolomics/MTBF01/features.csv",
            read_metabolomics_landing_file,
            [(mtb / "MTBF01" / "features.csv").read_bytes(), (FIXTURES / "readers" / "features.csv").read_bytes()],
            check=_check_metabolomics,
        )
    )
    add(
        Target(
            "mtb_injections",
            "metabolomics/MTBF01/injections.csv",
            _read_injections,
            [(mtb / "MTBF01" / "injections.csv").read_bytes(), (FIXTURES / "readers" / "injections.csv").read_bytes()],
            check=_check_frame_unique("injection_id"),
        )
    )
    vendor = FIXTURES / "metabolomics"
    for name in ("msdial_pos.txt", "progenesis_neg.csv", "xcms3_pos.csv", "mwtab_serum_neg.txt"):
        add(
            Target(
                f"mtb_{name.split('_')[0]}",
                f"metabolomics/MTBV01/{name}",
                read_metabolomics_landing_file,
                [(vendor / name).read_bytes()],
                check=_check_metabolomics,
            )
        )
    assert tuple(targets) == TARGET_NAMES, sorted(set(targets) ^ set(TARGET_NAMES))
    return targets


# ---------------------------------------------------------------------------------------------- running


@dataclass
class Outcome:
    status: str  # loaded | rejected
    detail: str
    seconds: float


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in the main thread after ``seconds`` (a hang must fail the example, not the run)."""

    def on_alarm(signum: int, frame: Any) -> None:
        raise Hang(f"no answer within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    # re-fires every second: an alarm that lands in a gc callback is swallowed ("Exception ignored")
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def write_input(target: Target, landing: Path, data: bytes) -> Path:
    path = landing / target.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def run_one(target: Target, landing: Path, data: bytes, limit: float = TIME_LIMIT_S) -> Outcome:
    """Run ``target``'s reader on ``data``; return the outcome or raise :class:`BadOutcome`."""
    path = write_input(target, landing, data)
    started = time.perf_counter()
    try:
        with time_limit(limit):
            result = target.read(path, target.relpath)
    except ContractViolation as exc:
        seconds = time.perf_counter() - started
        try:
            check_violation(exc, path, target.relpath)
        except BadOutcome as bad:
            raise BadOutcome(f"{target.name}: malformed rejection: {bad}", data) from None
        outcome = Outcome("rejected", str(exc), seconds)
    except Hang as exc:
        raise BadOutcome(f"{target.name}: hang: {exc} on {len(data)} bytes", data) from None
    except Exception as exc:  # the property under test: nothing but ContractViolation may escape
        tb = "".join(traceback.format_exception(exc)[-6:])
        raise BadOutcome(f"{target.name}: {type(exc).__name__} escaped the reader: {exc}\n{tb}", data) from exc
    else:
        seconds = time.perf_counter() - started
        try:
            target.check(result)
        except BadOutcome as exc:
            raise BadOutcome(f"{target.name}: inconsistent table loaded: {exc}", data) from None
        outcome = Outcome("loaded", type(result).__name__, seconds)
    if seconds > limit:
        raise BadOutcome(f"{target.name}: took {seconds:.1f} s (limit {limit:g} s) on {len(data)} bytes", data)
    return outcome


def check_violation(exc: ContractViolation, path: Path, display: str) -> None:
    """A rejection must name the file and say what is wrong; a row is a 1-based line, a column a name."""
    named = str(exc.file)
    _require(named in (str(path), display), f"rejection names {named!r}, not the file {display!r}")
    _require(isinstance(exc.problem, str) and exc.problem.strip() != "", f"rejection without a problem: {exc!r}")
    _require(exc.row is None or (isinstance(exc.row, int) and exc.row >= 1), f"row {exc.row!r} is not a line")
    _require(exc.column is None or (isinstance(exc.column, str) and exc.column != ""), f"bad column {exc.column!r}")
    _require(len(str(exc)) < 5000, f"rejection message of {len(str(exc))} characters (huge field echoed?)")


# ---------------------------------------------------------------------------------------------- mutations

Draw = Callable[[st.SearchStrategy[Any]], Any]


def _pos(draw: Draw, data: bytes) -> int:
    return draw(st.integers(0, len(data)))


def _field_pos(draw: Draw, data: bytes) -> int:
    """A position just after a separator (the start of some field), else anywhere."""
    seps = [i + 1 for i, b in enumerate(data[:20000]) if b in (9, 44, 10)]
    return draw(st.sampled_from(seps)) if seps else _pos(draw, data)


def _text(data: bytes) -> str | None:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def m_flip_bits(draw: Draw, data: bytes) -> bytes:
    if not data:
        return data
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, len(buf) - 1))
        buf[i] ^= 1 << draw(st.integers(0, 7))
    return bytes(buf)


def m_truncate(draw: Draw, data: bytes) -> bytes:
    return data[: _pos(draw, data)]


def m_insert_bytes(draw: Draw, data: bytes) -> bytes:
    i = _pos(draw, data)
    return data[:i] + draw(st.binary(min_size=1, max_size=64)) + data[i:]


def m_overwrite(draw: Draw, data: bytes) -> bytes:
    i = _pos(draw, data)
    chunk = draw(st.binary(min_size=1, max_size=64))
    return data[:i] + chunk + data[i + len(chunk) :]


def m_delete(draw: Draw, data: bytes) -> bytes:
    i = _pos(draw, data)
    return data[:i] + data[i + draw(st.integers(1, 256)) :]


def m_nul(draw: Draw, data: bytes) -> bytes:
    i = _pos(draw, data)
    return data[:i] + b"\x00" * draw(st.integers(1, 4)) + data[i:]


def m_huge_field(draw: Draw, data: bytes, size: int | None = None) -> bytes:
    """A field of 64 KiB .. 1 MiB (10 MiB in the dedicated tests) of one repeated token."""
    n = size or draw(st.sampled_from([1 << 16, 1 << 18, 1 << 20]))
    token = draw(st.sampled_from([b"A", b"9", b"\xe8\x85\xb9", b"\t", b",", b'"', b"0\t"]))
    i = _field_pos(draw, data)
    return data[:i] + token * (n // len(token)) + data[i:]


def m_crlf(draw: Draw, data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def m_cr_only(draw: Draw, data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r")


def m_mixed_line_ends(draw: Draw, data: bytes) -> bytes:
    i = _pos(draw, data)
    return data[:i] + data[i:].replace(b"\n", b"\r\n")


def m_utf8_bom(draw: Draw, data: bytes) -> bytes:
    return b"\xef\xbb\xbf" + data


def m_utf16(draw: Draw, data: bytes) -> bytes:
    text = _text(data)
    if text is None:
        return data
    encoding = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "bom-le", "bom-be"]))
    if encoding == "bom-le":
        return codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    if encoding == "bom-be":
        return codecs.BOM_UTF16_BE + text.encode("utf-16-be")
    return text.encode(encoding)  # "utf-16" writes a BOM; the -le/-be variants have none


def m_gbk(draw: Draw, data: bytes) -> bytes:
    """Chinese free text in a field, the whole file encoded as GBK/GB18030 (a real single-centre export)."""
    text = _text(data)
    if text is None:
        return data
    i = draw(st.integers(0, len(text)))
    seps = [j + 1 for j, c in enumerate(text[:20000]) if c in ",\t\n"]
    if seps:
        i = draw(st.sampled_from(seps))
    text = text[:i] + CHINESE_TEXT + text[i:]
    return text.encode(draw(st.sampled_from(["gbk", "gb18030"])), errors="replace")


def m_latin1(draw: Draw, data: bytes) -> bytes:
    text = _text(data)
    if text is None:
        return data
    i = _field_pos(draw, data)
    return (text[:i] + "Müller Ørsted naïve" + text[i:]).encode("latin-1", errors="replace")


def m_formula(draw: Draw, data: bytes) -> bytes:
    i = _field_pos(draw, data)
    return data[:i] + draw(st.sampled_from(FORMULA_PAYLOADS)).encode() + data[i:]


def m_duplicate_header_column(draw: Draw, data: bytes) -> bytes:
    line, _, rest = data.partition(b"\n")
    sep = b"\t" if line.count(b"\t") >= line.count(b",") else b","
    first = line.split(sep)[draw(st.integers(0, max(0, line.count(sep))))]
    return line.rstrip(b"\r") + sep + first + b"\n" + rest


def m_duplicate_line(draw: Draw, data: bytes) -> bytes:
    lines = data.split(b"\n")
    i = draw(st.integers(0, len(lines) - 1))
    return b"\n".join([*lines[: i + 1], lines[i], *lines[i + 1 :]])


def m_drop_line(draw: Draw, data: bytes) -> bytes:
    lines = data.split(b"\n")
    i = draw(st.integers(0, len(lines) - 1))
    return b"\n".join(lines[:i] + lines[i + 1 :])


def m_swap_delimiter(draw: Draw, data: bytes) -> bytes:
    old, new = draw(st.sampled_from([(b",", b";"), (b",", b"\t"), (b"\t", b","), (b"\t", b" "), (b",", b"|")]))
    return data.replace(old, new)


def m_stray_quote(draw: Draw, data: bytes) -> bytes:
    i = _pos(draw, data)
    return data[:i] + b'"' + data[i:]


def m_numbers(draw: Draw, data: bytes) -> bytes:
    """Replace one digit with a hostile number (negative, NaN, inf, fraction, overflow, hex, thousands)."""
    digits = [i for i, b in enumerate(data[:20000]) if 48 <= b <= 57]
    if not digits:
        return data
    i = draw(st.sampled_from(digits))
    bad = draw(
        st.sampled_from(
            [
                b"-1",
                b"NaN",
                b"inf",
                b"-inf",
                b"1.5",
                b"1e309",
                b"99999999999999999999999",
                b"0x1F",
                b"1,000",
                b"",
                b" ",
                b"1e-400",
                b"-0",
            ]
        )
    )
    return data[:i] + bad + data[i + 1 :]


def m_header_only(draw: Draw, data: bytes) -> bytes:
    return data.split(b"\n", 1)[0] + draw(st.sampled_from([b"", b"\n", b"\r\n", b"\n\n"]))


def m_empty(draw: Draw, data: bytes) -> bytes:
    return draw(st.sampled_from([b"", b"\n", b"\r\n", b" ", b"\xef\xbb\xbf", b"\xff\xfe", b"\x00"]))


def m_garbage(draw: Draw, data: bytes) -> bytes:
    return draw(st.binary(min_size=1, max_size=2048))


def m_gzip(draw: Draw, data: bytes) -> bytes:
    wrapped = gzip.compress(data, mtime=0)
    if draw(st.booleans()):  # a broken transfer: truncated or trailing junk
        wrapped = draw(st.sampled_from([wrapped[: len(wrapped) // 2], wrapped + b"junk", wrapped[:-4]]))
    return wrapped


def m_long_line_of_separators(draw: Draw, data: bytes) -> bytes:
    i = _field_pos(draw, data)
    return data[:i] + draw(st.sampled_from([b"\t", b","])) * draw(st.integers(100, 20000)) + data[i:]


TEXT_MUTATIONS: tuple[Callable[[Draw, bytes], bytes], ...] = (
    m_flip_bits,
    m_truncate,
    m_insert_bytes,
    m_overwrite,
    m_delete,
    m_nul,
    m_huge_field,
    m_crlf,
    m_cr_only,
    m_mixed_line_ends,
    m_utf8_bom,
    m_utf16,
    m_gbk,
    m_latin1,
    m_formula,
    m_duplicate_header_column,
    m_duplicate_line,
    m_drop_line,
    m_swap_delimiter,
    m_stray_quote,
    m_numbers,
    m_header_only,
    m_empty,
    m_garbage,
    m_gzip,
    m_long_line_of_separators,
)
BINARY_MUTATIONS: tuple[Callable[[Draw, bytes], bytes], ...] = (
    m_flip_bits,
    m_truncate,
    m_insert_bytes,
    m_overwrite,
    m_delete,
    m_nul,
    m_empty,
    m_garbage,
    m_gzip,
)


@st.composite
def mutants(draw: Draw, seeds: list[bytes], binary: bool = False, max_ops: int = 3) -> bytes:
    """A seed damaged by 1..``max_ops`` mutations (names recorded with ``note`` for the failure report)."""
    data = draw(st.sampled_from(seeds))
    ops = TEXT_MUTATIONS if not binary else BINARY_MUTATIONS
    applied = []
    for op in draw(st.lists(st.sampled_from(ops), min_size=1, max_size=max_ops)):
        data = op(draw, data)
        applied.append(op.__name__)
    note(f"mutations: {applied}; {len(data)} bytes; head {data[:80]!r}")
    return data


# ---------------------------------------------------------------------------------------------- BIOM JSON

_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)


@st.composite
def biom_json_docs(draw: Draw, seeds: list[bytes]) -> bytes:
    """A valid BIOM JSON seed with one part replaced: shape, a key, an id, a triple, a value, NaN, huge shape."""
    doc = json.loads(draw(st.sampled_from(seeds)))
    choice = draw(st.sampled_from(["key", "shape", "huge_shape", "triple", "row", "id", "drop", "nan", "type"]))
    if choice == "key":
        doc[draw(st.sampled_from(sorted(doc)))] = draw(json_values)
    elif choice == "shape":
        doc["shape"] = draw(st.lists(st.integers(-5, 10**12), min_size=0, max_size=3))
    elif choice == "huge_shape":
        doc["shape"] = [10**9, 10**9]
        if draw(st.booleans()):
            doc["matrix_type"] = "dense"
    elif choice == "triple" and doc["data"]:
        i = draw(st.integers(0, len(doc["data"]) - 1))
        doc["data"][i] = draw(
            st.lists(st.one_of(st.integers(-(2**66), 2**66), st.floats(), st.text(max_size=3)), max_size=4)
        )
    elif choice == "row" and doc["rows"]:
        i = draw(st.integers(0, len(doc["rows"]) - 1))
        doc["rows"][i] = draw(json_values)
    elif choice == "id" and doc["columns"]:
        i = draw(st.integers(0, len(doc["columns"]) - 1))
        doc["columns"][i]["id"] = draw(st.one_of(json_values, st.just(doc["columns"][0]["id"])))
    elif choice == "drop":
        doc.pop(draw(st.sampled_from(sorted(doc))))
    elif choice == "nan" and doc["data"]:
        i = draw(st.integers(0, len(doc["data"]) - 1))
        if isinstance(doc["data"][i], list) and doc["data"][i]:
            doc["data"][i][-1] = draw(st.sampled_from([math.nan, math.inf, -1, 0.5, 2**63, -(2**63)]))
    elif choice == "type":
        doc["matrix_type"] = draw(st.sampled_from(["dense", "sparse", "csr", None, 1]))
    note(f"biom json mutation: {choice}")
    return json.dumps(doc, allow_nan=True).encode()


# ---------------------------------------------------------------------------------------------- HDF5


def hdf5_bytes(build: Callable[[Any], None]) -> bytes:
    """An in-memory HDF5 file written by ``build(h5py.File)``."""
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as fh:
        build(fh)
    return buf.getvalue()


def biom_hdf5(
    obs_ids: list[str],
    sample_ids: list[str],
    csr_by_sample: tuple[Any, Any, Any] | None,
    shape: Any = None,
    *,
    observation_csr: bool = True,
    taxonomy: Any = None,
) -> bytes:
    """A BIOM 2.1 HDF5 file from its parts, which may be inconsistent on purpose."""
    import scipy.sparse as sp

    def build(fh: Any) -> None:
        fh.attrs["shape"] = np.asarray(shape if shape is not None else [len(obs_ids), len(sample_ids)])
        fh.attrs["format-version"] = np.asarray([2, 1])
        fh.create_dataset("observation/ids", data=np.asarray(obs_ids, dtype=object), dtype=_h5_str())
        fh.create_dataset("sample/ids", data=np.asarray(sample_ids, dtype=object), dtype=_h5_str())
        if csr_by_sample is not None:
            data, indices, indptr = csr_by_sample
            fh.create_dataset("sample/matrix/data", data=data)
            fh.create_dataset("sample/matrix/indices", data=indices)
            fh.create_dataset("sample/matrix/indptr", data=indptr)
            if observation_csr:
                try:
                    mat = sp.csr_matrix((data, indices, indptr), shape=(len(sample_ids), len(obs_ids))).T.tocsr()
                    fh.create_dataset("observation/matrix/data", data=mat.data)
                    fh.create_dataset("observation/matrix/indices", data=mat.indices)
                    fh.create_dataset("observation/matrix/indptr", data=mat.indptr)
                except (ValueError, TypeError, IndexError):
                    pass  # inconsistent on purpose: only the sample CSR is written
        if taxonomy is not None:
            fh.create_dataset("observation/metadata/taxonomy", data=taxonomy)

    return hdf5_bytes(build)


def _h5_str() -> Any:
    import h5py

    return h5py.string_dtype("utf-8")


@st.composite
def hdf5_tables(draw: Draw) -> bytes:
    """BIOM HDF5 with drawn (often wrong) shapes, CSR arrays, dtypes and taxonomy."""
    import h5py

    n_obs = draw(st.integers(0, 5))
    n_samp = draw(st.integers(0, 4))
    obs = [f"F{i}" for i in range(n_obs)]
    samples = [f"S{i}" for i in range(n_samp)]
    if draw(st.booleans()) and n_obs > 1:
        obs[-1] = draw(st.sampled_from([obs[0], "", "\x01", "é" * 3]))
    dense = np.asarray(
        draw(st.lists(st.lists(st.integers(0, 50), min_size=n_obs, max_size=n_obs), min_size=n_samp, max_size=n_samp))
        or np.zeros((n_samp, n_obs)),
        dtype=np.float64,
    ).reshape(n_samp, n_obs)
    import scipy.sparse as sp

    mat = sp.csr_matrix(dense)
    data, indices, indptr = mat.data.astype(np.float64), mat.indices.astype(np.int32), mat.indptr.astype(np.int32)
    fault = draw(
        st.sampled_from(
            [
                "none",
                "indptr_len",
                "indptr_order",
                "index_range",
                "negative",
                "nan",
                "float",
                "dtype_str",
                "indices_float",
                "shape_attr",
                "shape_huge",
                "data_len",
                "missing",
                "taxonomy_2d",
                "taxonomy_bad",
                "scalar",
            ]
        )
    )
    shape: Any = None
    csr: tuple[Any, Any, Any] | None = (data, indices, indptr)
    taxonomy = None
    if fault == "indptr_len":
        indptr = np.append(indptr, indptr[-1:] if len(indptr) else [0])
    elif fault == "indptr_order" and len(indptr) > 2:
        indptr = indptr[::-1].copy()
    elif fault == "index_range" and len(indices):
        indices = indices.copy()
        indices[draw(st.integers(0, len(indices) - 1))] = draw(st.sampled_from([-1, n_obs, 2**31 - 1]))
    elif fault == "negative" and len(data):
        data = data.copy()
        data[0] = -draw(st.integers(1, 10))
    elif fault == "nan" and len(data):
        data = data.copy()
        data[0] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    elif fault == "float" and len(data):
        data = data + 0.5
    elif fault == "dtype_str":
        data = np.asarray([b"x"] * len(data) or [b"x"])
    elif fault == "indices_float":
        indices = indices.astype(np.float64) + 0.25
    elif fault == "shape_attr":
        shape = draw(st.sampled_from([[n_obs + 1, n_samp], [n_obs], [n_obs, n_samp, 1], [-1, -1], [b"a", b"b"]]))
    elif fault == "shape_huge":
        shape = [10**9, 10**9]
    elif fault == "data_len" and len(data):
        data = data[:-1]
    elif fault == "missing":
        csr = None
    elif fault == "taxonomy_2d":
        taxonomy = np.asarray([["k__Bacteria", "p__X"]] * max(n_obs, 1), dtype=object).astype(h5py.string_dtype())
        if draw(st.booleans()):
            taxonomy = taxonomy[:-1]  # one row short
    elif fault == "taxonomy_bad":
        taxonomy = draw(st.sampled_from([np.arange(n_obs + 2), np.asarray(["[unclosed"] * n_obs, dtype=object)]))
        if taxonomy.dtype == object:
            taxonomy = taxonomy.astype(h5py.string_dtype())
    elif fault == "scalar":
        data = np.float64(1.0)
    note(f"hdf5 fault: {fault} n_obs={n_obs} n_samp={n_samp}")
    if fault == "dtype_str" or fault == "scalar":
        return biom_hdf5(obs, samples, (data, indices, indptr), shape, observation_csr=False, taxonomy=taxonomy)
    return biom_hdf5(obs, samples, csr, shape, observation_csr=draw(st.booleans()), taxonomy=taxonomy)


def hdf5_lazy_giant(n: int = 10**9) -> bytes:
    """A BIOM HDF5 whose ids and data *declare* ``n`` elements but store none (chunked, never written):
    a few KB on disk, gigabytes once read. The reader must refuse before allocating."""

    def build(fh: Any) -> None:
        fh.attrs["shape"] = np.asarray([n, 1])
        fh.create_dataset("observation/ids", shape=(n,), dtype="S8", chunks=(1024,))
        fh.create_dataset("sample/ids", data=np.asarray([b"S1"]))
        fh.create_dataset("sample/matrix/data", shape=(n,), dtype="f8", chunks=(1024,))
        fh.create_dataset("sample/matrix/indices", shape=(n,), dtype="i4", chunks=(1024,))
        fh.create_dataset("sample/matrix/indptr", data=np.asarray([0, n], dtype=np.int64))

    return hdf5_bytes(build)


# ---------------------------------------------------------------------------------------------- QZA


def qza_bytes(members: list[tuple[str, bytes]], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, payload in members:
            zf.writestr(name, payload)
    return buf.getvalue()


def qza_members(
    payload: bytes, type_: str = "FeatureTable[Frequency]", root: str | None = None
) -> list[tuple[str, bytes]]:
    root = root or str(uuid.UUID(int=7))
    return [
        (f"{root}/VERSION", b"QIIME 2\narchive: 5\nframework: 2024.10.1\n"),
        (f"{root}/metadata.yaml", f"uuid: {root}\ntype: {type_}\nformat: BIOMV210DirFmt\n".encode()),
        (f"{root}/data/feature-table.biom", payload),
    ]


def zip_bomb(declared: int = 10**10) -> bytes:
    """A .qza whose payload *declares* ``declared`` uncompressed bytes: the central directory is patched, so
    the archive is tiny and nothing needs to be decompressed to build it."""
    data = qza_bytes(qza_members(b"\x89HDF\r\n\x1a\n" + bytes(1 << 16)))
    return patch_declared_size(data, "data/feature-table.biom", declared)


def patch_declared_size(data: bytes, member_suffix: str, declared: int) -> bytes:
    """Rewrite the uncompressed-size fields of one member (local header and central directory)."""
    buf = bytearray(data)
    size = min(declared, 0xFFFFFFFE).to_bytes(4, "little")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        local = next(i for i in zf.infolist() if i.filename.endswith(member_suffix)).header_offset
    buf[local + 22 : local + 26] = size  # local file header: uncompressed size
    pos = 0
    while (pos := data.find(b"PK\x01\x02", pos)) != -1:
        name_len = int.from_bytes(data[pos + 28 : pos + 30], "little")
        if data[pos + 46 : pos + 46 + name_len].decode(errors="replace").endswith(member_suffix):
            buf[pos + 24 : pos + 28] = size  # central directory: uncompressed size
        pos += 4
    return bytes(buf)


@st.composite
def qza_archives(draw: Draw, payload: bytes) -> bytes:
    """QIIME 2 artifacts with hostile structure: traversal names, nested zips, bombs, bad YAML, extra roots."""
    root = str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1))))
    members = qza_members(payload, root=root)
    fault = draw(
        st.sampled_from(
            [
                "traversal",
                "absolute",
                "nested_zip",
                "bomb",
                "ratio",
                "yaml",
                "type",
                "two_roots",
                "no_payload",
                "json_payload",
                "gz_payload",
                "stored",
                "many",
                "dup_name",
                "backslash",
            ]
        )
    )
    compression = zipfile.ZIP_DEFLATED
    if fault == "traversal":
        members.append((f"{root}/../../etc/evil", b"x"))
    elif fault == "absolute":
        members.append(("/etc/evil", b"x"))
    elif fault == "backslash":
        members.append((f"{root}\\..\\..\\evil", b"x"))
    elif fault == "nested_zip":
        members[2] = (members[2][0], qza_bytes(qza_members(payload)))
    elif fault == "bomb":
        return zip_bomb(draw(st.sampled_from([2**31, 2**32 - 2, 10**10])))
    elif fault == "ratio":
        members.append((f"{root}/data/zeros.bin", bytes(draw(st.sampled_from([1 << 21, 1 << 23])))))
    elif fault == "yaml":
        members[1] = (
            members[1][0],
            draw(
                st.sampled_from(
                    [
                        b"type: [unclosed",
                        b"\xff\xfe",
                        b"- a\n- b\n",
                        b"",
                        b"!!python/object:os.system x",
                        b"type: &a [*a]",
                    ]
                )
            ),
        )
    elif fault == "type":
        members[1] = (members[1][0], f"type: {draw(st.text(max_size=30))!r}\n".encode())
    elif fault == "two_roots":
        members += qza_members(payload)
    elif fault == "no_payload":
        members.pop()
    elif fault == "json_payload":
        members[2] = (members[2][0], draw(st.binary(max_size=200)) or b"{")
    elif fault == "gz_payload":
        members[2] = (members[2][0], gzip.compress(payload)[: draw(st.integers(10, 200))])
    elif fault == "stored":
        compression = zipfile.ZIP_STORED
    elif fault == "many":
        members += [(f"{root}/provenance/{i}.yaml", b"") for i in range(draw(st.integers(100, 2000)))]
    elif fault == "dup_name":
        members.append(members[2])
    note(f"qza fault: {fault}")
    with warnings_ignored():
        return qza_bytes(members, compression=compression)


@contextlib.contextmanager
def warnings_ignored() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on duplicate names: intended here
        yield


# ---------------------------------------------------------------------------------------------- per target


def qza_payload(target: Target) -> bytes:
    """The BIOM HDF5 payload inside the seed artifact."""
    with zipfile.ZipFile(io.BytesIO(target.seeds[0])) as zf:
        return zf.read(next(n for n in zf.namelist() if n.endswith(".biom")))


def arbitrary_bytes() -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, sometimes behind a magic number so the sniffers send them to the deep parsers."""
    magic = st.sampled_from([b"", b"\x1f\x8b", b"\x89HDF\r\n\x1a\n", b"PK\x03\x04", b"{", b"label\tGroup\tnumOtus\t"])
    return st.builds(lambda m, b: m + b, magic, st.binary(max_size=4096))


def strategy_for(target: Target) -> st.SearchStrategy[bytes]:
    """Mutated seeds, structurally hostile documents of the target's format, and arbitrary bytes."""
    parts: list[st.SearchStrategy[bytes]] = [mutants(target.seeds, target.binary), arbitrary_bytes()]
    if target.name == "biom_json":
        parts.append(biom_json_docs(target.seeds))
    elif target.name == "biom_hdf5":
        parts.append(hdf5_tables())
    elif target.name == "qza":
        parts.append(qza_archives(qza_payload(target)))
    return st.one_of(*parts)
