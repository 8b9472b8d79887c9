"""Vectorised, validating text machinery shared by the readers (no Dagster, no per-value Python loops).

The sequencing exports are large, plain, tab-separated tables (a mothur ``.shared`` of 5,000 groups x
5,000 OTUs is ~50 MB, 25 million cells). A wide ``pandas.read_csv`` spends most of its time on per-column
bookkeeping, so the count readers here do this instead:

1. index the records of the whole byte buffer with numpy (line starts and ends, fields per record);
2. cut off the few text fields at the start (ids, labels) and end (taxonomy) of each record with small
   fixed-size windows, again with numpy;
3. turn the remaining numeric "core" of every record into one single-column stream (tabs -> newlines) and
   parse it batch by batch with one C-level reader (pyarrow's CSV reader when installed, else pandas' C
   parser), keeping only the non-zero cells, so memory stays near the size of the file plus the CSR;
4. validate the parsed numbers as whole arrays, and only when something is wrong go back to the text to
   name the first offending cell (line, column and the value as delivered).

Every rejection is an :class:`analysis.errors.ContractViolation` naming the file, the 1-based physical line
(header = line 1 when the header is the first line) and the column.
"""

from __future__ import annotations

import codecs
import io
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from analysis.contract import MAX_DECOMPRESSED_BYTES, TEXT_ENCODING_TOKENS
from analysis.errors import ContractViolation

try:  # pyarrow is optional: it is the fastest single-column parser here, pandas' C parser is the fallback.
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    HAVE_PYARROW = True
except ImportError:  # pragma: no cover - exercised only where pyarrow is absent
    HAVE_PYARROW = False

GZIP_MAGIC = b"\x1f\x8b"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy binary Excel (.xls)
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
#: What a text export may be (``analysis.contract.TEXT_ENCODING_TOKENS``), for rejection messages.
ACCEPTED_TEXT = (
    "UTF-8 text (a byte-order mark is allowed), UTF-16 with a byte-order mark, "
    "or GB18030/GBK declared in the file name (e.g. 'ae.gb18030.csv')"
)

TAB, LF, CR, QUOTE = 9, 10, 13, 34
_SEP_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}


def sep_name(sep: str) -> str:
    return _SEP_NAMES.get(sep, repr(sep))


# ---------------------------------------------------------------------------------------------- bytes


def read_raw(path: str | Path) -> bytes:
    """The file's bytes as stored (no decompression); unreadable files are a contract violation."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ContractViolation(path, "file not found") from None
    except IsADirectoryError:
        raise ContractViolation(path, "is a directory, not a file") from None
    except OSError as exc:
        raise ContractViolation(path, f"cannot read file ({exc.strerror or exc})") from None


def gunzip(path: str | Path, raw: bytes, limit: int | None = None) -> bytes:
    """Decompress a gzip member chain completely, or reject the file (never return a truncated prefix).

    Output is bounded by ``limit`` (default ``analysis.contract.MAX_DECOMPRESSED_BYTES``): zlib is asked
    for at most ``limit + 1`` bytes, so a gzip bomb is refused after at most that much work and memory.
    zlib checks each member's CRC-32 and length (``wbits=31``); trailing NUL padding is allowed, as gzip does.
    """
    limit = MAX_DECOMPRESSED_BYTES if limit is None else limit
    parts: list[bytes] = []
    total = 0
    rest = raw
    while True:
        inflater = zlib.decompressobj(wbits=31)
        try:
            out = inflater.decompress(rest, limit - total + 1)
        except zlib.error as exc:
            raise ContractViolation(
                path, f"corrupt or truncated gzip data ({exc})", expected="a complete gzip file"
            ) from None
        total += len(out)
        if total > limit:
            raise ContractViolation(
                path,
                f"gzip data expands beyond {limit:,} bytes (a decompression bomb or an export too large to load)",
                expected=f"at most {limit:,} bytes once decompressed",
            )
        if not inflater.eof:
            raise ContractViolation(
                path,
                "corrupt or truncated gzip data (the stream ends before its end-of-stream marker)",
                expected="a complete gzip file",
            )
        parts.append(out)
        rest = inflater.unused_data.lstrip(b"\x00")
        if not rest:
            break
        if rest[:2] != GZIP_MAGIC:
            raise ContractViolation(
                path,
                f"corrupt or truncated gzip data ({len(rest)} bytes of trailing garbage after the gzip stream)",
                expected="a complete gzip file",
            )
    return parts[0] if len(parts) == 1 else b"".join(parts)


def load_bytes(path: str | Path) -> bytes:
    """The file's content, gunzipped when it is gzip data (sniffed by magic bytes, not by name)."""
    raw = read_raw(path)
    if raw[:2] == GZIP_MAGIC:
        return gunzip(path, raw)
    if str(path).lower().endswith(".gz"):
        # A ".gz" that is not gzip is a broken transfer or a mislabelled file: refuse rather than guess.
        raise ContractViolation(
            path,
            "file name ends in .gz but the content is not gzip data",
            expected="gzip-compressed content (magic bytes 1f 8b)",
        )
    return raw


def strip_bom(data: bytes) -> bytes:
    # Excel and some LIMS write a UTF-8 byte-order mark; it must not become part of the first column name.
    return data[3:] if data.startswith(UTF8_BOM) else data


def clip(value: object, limit: int = 60) -> str:
    """``repr`` of a delivered value, shortened: a 10 MB field must not flood a message or the load manifest."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(value) if isinstance(value, str | bytes) else len(text)} characters)"


def short(name: object, limit: int = 120) -> str:
    """A delivered name used as a rejection's column: shortened, and never empty."""
    text = str(name)
    if not text.strip():
        return f"(unnamed: {text!r})"
    return text if len(text) <= limit else clip(text, limit)


# ---------------------------------------------------------------------------------------------- encodings


def declared_encoding(path: str | Path) -> str | None:
    """The encoding a file name declares with a token of ``analysis.contract.TEXT_ENCODING_TOKENS``."""
    tokens = set(re.split(r"[^a-z0-9]+", base_name(path)))
    found = sorted({TEXT_ENCODING_TOKENS[t] for t in tokens & TEXT_ENCODING_TOKENS.keys()})
    return found[0] if found else None


def transcode(path: str | Path, data: bytes) -> bytes:
    """UTF-16 with a byte-order mark, or a declared GB18030 file, as UTF-8 bytes; anything else unchanged.

    Encodings are never guessed (contract: ``TEXT_ENCODING_TOKENS``): GBK bytes also decode as Latin-1
    or as damaged UTF-8, so only a BOM or the file name may say a file is not UTF-8.
    """
    if data[:2] in UTF16_BOMS:
        return _transcode(path, data, "utf-16")  # the BOM says the byte order and is consumed
    encoding = declared_encoding(path)
    if encoding is None or data.isascii():
        return data
    if data.startswith(UTF8_BOM) or _utf8_error(data) is None:
        # A UTF-8 file under a GB18030 name would be silently turned into mojibake: refuse to pick one.
        raise ContractViolation(
            path,
            f"the file name declares {encoding.upper()} but the content is valid UTF-8",
            expected=f"{encoding.upper()} text, or UTF-8 text under a name without the encoding token",
        )
    return _transcode(path, data, encoding)


def _transcode(path: str | Path, data: bytes, encoding: str) -> bytes:
    try:
        return data.decode(encoding).encode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].decode(encoding, errors="replace").count("\n") + 1
        raise ContractViolation(
            path,
            f"text is not valid {encoding.upper()} at byte {exc.start} (byte {data[exc.start]:#04x})",
            expected=ACCEPTED_TEXT,
            row=line,
        ) from None


def _utf8_error(data: bytes, chunk: int = 1 << 23) -> int | None:
    """Offset of the first byte that is not UTF-8, or None; decoded in 8 MiB chunks so no big str is built."""
    if data.isascii():
        return None
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    for off in range(0, len(data), chunk):
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(data[off : off + chunk], final=off + chunk >= len(data))
        except UnicodeDecodeError as exc:
            return off - pending + exc.start
    return None


def _decodes_as(data: bytes, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    try:
        for off in range(0, len(data), 1 << 23):
            decoder.decode(data[off : off + (1 << 23)], final=off + (1 << 23) >= len(data))
    except UnicodeDecodeError:
        return False
    return True


def check_utf8_text(path: str | Path, data: bytes) -> bytes:
    """Text as the contract allows it, UTF-8 byte-order mark removed; else a rejection naming byte and line.

    Rejected: bytes that are not UTF-8 (with a hint when they decode as GB18030, the usual Chinese Windows
    export), embedded NUL bytes (binary content, or UTF-16 without its byte-order mark) and classic Mac OS
    CR-only line ends (the contract allows LF and CRLF).
    """
    data = strip_bom(data)
    if looks_utf16(data):
        raise ContractViolation(
            path,
            "embedded NUL bytes: this looks like UTF-16 text without a byte-order mark",
            expected=ACCEPTED_TEXT,
            row=1,
        )
    bad = _utf8_error(data)
    if bad is not None:
        line = data.count(b"\n", 0, bad) + 1
        hint = ""
        if b"\x00" not in data and _decodes_as(data, "gb18030"):
            hint = (
                "; it decodes as GBK/GB18030: if this export is GBK, declare it with an encoding token in the "
                f"file name (e.g. '{_with_token(path)}') or export it as UTF-8"
            )
        raise ContractViolation(
            path,
            f"text is not valid UTF-8 at byte {bad} (byte {data[bad]:#04x}, line {line}){hint}",
            expected=ACCEPTED_TEXT,
            row=line,
        )
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise ContractViolation(
            path, f"embedded NUL byte at byte {nul} (binary content, not text)", expected=ACCEPTED_TEXT, row=line
        )
    if b"\n" not in data and b"\r" in data.rstrip(b"\r"):
        raise ContractViolation(
            path,
            "lines end in CR only (classic Mac OS line ends)",
            expected="lines ending in LF or CRLF",
            row=1,
        )
    return data


_PRINTABLE = frozenset(b"\t\n\r" + bytes(range(0x20, 0x7F)))


def looks_utf16(data: bytes) -> bool:
    """Text in UTF-16 without a byte-order mark: in the head, one byte of each pair is mostly NUL and the other
    mostly printable ASCII (CSV/TSV exports are mostly ASCII). Binary data with NULs does not look like that."""
    head = data[:4096]
    if len(head) < 8:
        return False
    even, odd = head[0::2], head[1::2]
    zeros, text = (odd, even) if odd.count(0) >= even.count(0) else (even, odd)
    printable = sum(b in _PRINTABLE for b in text)
    return zeros.count(0) * 10 >= len(zeros) * 8 and printable * 10 >= len(text) * 8


def to_utf8(path: str | Path, data: bytes) -> bytes:
    """Apply the contract's text policy: :func:`transcode` then :func:`check_utf8_text`."""
    return check_utf8_text(path, transcode(path, data))


def _with_token(path: str | Path) -> str:
    name = Path(str(path)).name
    stem, dot, ext = name.partition(".")
    return f"{stem}.gb18030.{ext}" if dot else f"{name}.gb18030"


def base_name(path: str | Path) -> str:
    """Lower-case file name without a trailing ``.gz`` (for name-based hints only)."""
    name = Path(str(path)).name.lower()
    return name[:-3] if name.endswith(".gz") else name


def decode(path: str | Path, data: bytes, line_offset: np.ndarray | None = None) -> str:
    """Decode UTF-8 strictly; a decoding error names the line it is on."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        row = int(line_offset[line - 1]) if line_offset is not None and line - 1 < len(line_offset) else line
        raise ContractViolation(
            path, f"text is not valid UTF-8 (byte {data[exc.start]:#04x})", expected="UTF-8 text", row=row
        ) from None


# ---------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Records:
    """The non-blank records of a text buffer, found with numpy in one pass.

    ``starts``/``ends`` are byte offsets (end exclusive, without the line terminator); ``lines`` is the
    1-based physical line on which each record starts; ``nfields`` counts separator-delimited fields.
    With ``quoted=True`` separators and newlines inside double quotes do not count (CSV rules).
    """

    buf: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    lines: np.ndarray
    nfields: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    def text(self, i: int) -> bytes:
        return self.buf[self.starts[i] : self.ends[i]].tobytes()

    def decoded(self, path: str | Path, i: int) -> str:
        """Record ``i`` as text (a UTF-8 error names its line)."""
        return decode(path, self.text(i), line_offset=self.lines[i : i + 1])

    def subset(self, idx: np.ndarray | slice) -> Records:
        return Records(self.buf, self.starts[idx], self.ends[idx], self.lines[idx], self.nfields[idx])


def index_records(data: bytes, sep: str, quoted: bool = False) -> Records:
    a = np.frombuffer(data, dtype=np.uint8)
    n = len(a)
    sep_code = ord(sep)
    nl_all = np.flatnonzero(a == LF)
    inside = None
    if quoted and b'"' in data:
        # Parity of the quote characters seen so far: 1 inside a quoted field. Doubled quotes ("") toggle
        # twice, so CSV escaping is handled without a state machine.
        inside = np.logical_xor.accumulate(a == QUOTE)
        nl_rec = nl_all[~inside[nl_all]]
    else:
        nl_rec = nl_all
    starts = np.concatenate(([0], nl_rec + 1)).astype(np.int64)
    ends = np.concatenate((nl_rec, [n])).astype(np.int64)
    if len(starts) and starts[-1] >= n:  # the file ends with a newline: no record after it
        starts, ends = starts[:-1], ends[:-1]
    has_cr = (ends > starts) & (a[np.maximum(ends - 1, 0)] == CR)
    ends = ends - has_cr
    lines = np.searchsorted(nl_all, starts, side="left") + 1
    keep = ends > starts
    starts, ends, lines = starts[keep], ends[keep], lines[keep]
    is_sep = a == sep_code
    if inside is not None:
        is_sep &= ~inside
    counter = _FlagCounter(is_sep)
    nsep = counter.before(ends) - counter.before(starts)
    return Records(a, starts, ends, lines, nsep + 1)


class _FlagCounter:
    """Count set flags before arbitrary offsets without a per-byte cumulative sum.

    ``np.add.reduceat`` over a 50 MB bool array casts element by element (over a second here) and a full
    cumulative sum needs 8 bytes per input byte. Instead: per-256-byte block sums (bool bytes viewed as
    uint64 words and summed lane-wise, 32 words per block so no lane exceeds 255), their cumulative sum,
    and a short window per query offset.
    """

    BLOCK = 256

    def __init__(self, flags: np.ndarray) -> None:
        self.flags = flags.view(np.uint8)
        n = len(flags)
        m = n - n % self.BLOCK
        words = self.flags[:m].view(np.uint64).reshape(-1, self.BLOCK // 8).sum(axis=1, dtype=np.uint64)
        full = words.view(np.uint8).reshape(-1, 8).sum(axis=1, dtype=np.int64)
        tail = int(self.flags[m:].sum(dtype=np.int64))
        self.cum = np.concatenate(([0], np.cumsum(full), [int(full.sum()) + tail]))

    def before(self, pos: np.ndarray) -> np.ndarray:
        """Number of set flags at offsets < pos, for each pos (0 <= pos <= len(flags))."""
        if len(self.flags) == 0:
            return np.zeros(len(pos), dtype=np.int64)
        # queries in slices of 8192 so the (queries x 256) window stays ~16 MB for million-line files
        step = 8192
        return np.concatenate([self._before(pos[i : i + step]) for i in range(0, len(pos), step)] or [pos[:0]])

    def _before(self, pos: np.ndarray) -> np.ndarray:
        n = len(self.flags)
        q = pos // self.BLOCK
        idx = q[:, None] * self.BLOCK + np.arange(self.BLOCK, dtype=np.int64)
        inside = idx < np.minimum(pos, n)[:, None]
        partial = (self.flags[np.minimum(idx, max(n - 1, 0))] * inside).sum(axis=1, dtype=np.int64)
        return self.cum[q] + partial


def nth_sep(rec: Records, k: int, sep: str, from_end: bool = False) -> np.ndarray:
    """Byte offset of the k-th separator (1-based) of every record, from the start or the end; -1 if absent.

    Looks at a small window per record first and widens it only for the records that need it, so the cost
    is proportional to the length of the leading/trailing text fields, not to the record length.
    """
    a, s, e = rec.buf, rec.starts, rec.ends
    out = np.full(len(s), -1, dtype=np.int64)
    todo = np.arange(len(s))
    width = 64
    code = ord(sep)
    while len(todo):
        offs = np.arange(width, dtype=np.int64)
        step = max(1, (1 << 21) // width)  # ~2M window cells per slice of records (bounded memory)
        keep = []
        for lo in range(0, len(todo), step):
            part = todo[lo : lo + step]
            st, en = s[part], e[part]
            if from_end:
                idx = en[:, None] - 1 - offs
                valid = idx >= st[:, None]
            else:
                idx = st[:, None] + offs
                valid = idx < en[:, None]
            win = np.where(valid, a[np.clip(idx, 0, len(a) - 1)], 0)
            hits = np.cumsum(win == code, axis=1, dtype=np.int32)
            found = hits[:, -1] >= k
            where = np.argmax(hits >= k, axis=1)
            out[part[found]] = idx[found, where[found]]
            keep.append(part[~found & ((en - st) > width)])  # not found yet and the record is longer
        todo = np.concatenate(keep)
        width *= 8
        if width > (1 << 15) and len(todo):
            # A few records with very long leading/trailing fields (a 10 MB pasted value): scan each directly,
            # in memory proportional to the record, instead of widening a (records x width) window further.
            for i in todo:
                hits = np.flatnonzero(a[s[i] : e[i]] == code)
                if len(hits) >= k:
                    out[i] = s[i] + (hits[-k] if from_end else hits[k - 1])
            break
    return out


def gather(a: np.ndarray, starts: np.ndarray, ends: np.ndarray, terminator: int = LF) -> bytes:
    """Concatenate byte ranges, each followed by ``terminator`` (for small, text-valued ranges)."""
    lens = np.maximum(ends - starts, 0)
    total = int(lens.sum())
    if len(lens) <= 4096 or total > 256 * len(lens):
        # few or long ranges (e.g. one 10 MB field): slicing beats per-byte index arrays (8 bytes per byte)
        term = bytes([terminator])
        return b"".join(a[st:en].tobytes() + term for st, en in zip(starts.tolist(), ends.tolist(), strict=True))
    out = np.full(total + len(lens), terminator, dtype=np.uint8)
    if total:
        pos = np.arange(total, dtype=np.int64)
        seg_start_out = np.cumsum(lens) - lens  # where each range starts in the packed (no-terminator) order
        src = pos + np.repeat(starts - seg_start_out, lens)
        dst = pos + np.repeat(np.arange(len(lens), dtype=np.int64), lens)
        out[dst] = a[src]
    return out.tobytes()


def split_fields(path: str | Path, rec: Records, starts: np.ndarray, ends: np.ndarray, k: int, sep: str) -> np.ndarray:
    """The text of ranges holding exactly ``k`` fields each, as an (n, k) object array of str.

    Range i lies in record i of ``rec`` (used to name the line of a UTF-8 decoding error).
    """
    if len(starts) == 0:
        return np.empty((0, k), dtype=object)
    blob = bytearray(gather(rec.buf, starts, ends))
    if sep != "\n":
        blob = blob.replace(sep.encode(), b"\n")
    text = decode(path, bytes(blob), line_offset=np.repeat(rec.lines, k))
    parts = text.split("\n")[:-1]
    if len(parts) != len(starts) * k:  # pragma: no cover - callers check field counts first
        raise ContractViolation(path, "internal field split mismatch")
    return np.array(parts, dtype=object).reshape(len(starts), k)


def range_index(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    lens = np.maximum(ends - starts, 0)
    total = int(lens.sum())
    seg = np.cumsum(lens) - lens
    return np.arange(total, dtype=np.int64) + np.repeat(starts - seg, lens)


# ---------------------------------------------------------------------------------------------- numbers


class _ParseFailed(Exception):
    """A token did not convert (or a value check failed) in the fast path; the slow path names the cell."""


def _stream_batches(stream: np.ndarray, as_float: bool) -> Iterator[np.ndarray]:
    """Parse a newline-separated single-column stream batch by batch (blank lines skipped).

    Streaming keeps memory at one ~1 MB text block worth of values instead of the whole dense matrix.
    Raises :class:`_ParseFailed` when a token does not convert.
    """
    if HAVE_PYARROW:
        typ = pa.float64() if as_float else pa.int64()
        try:
            reader = pa_csv.open_csv(
                pa.BufferReader(pa.py_buffer(stream)),
                read_options=pa_csv.ReadOptions(column_names=["v"], block_size=1 << 20),
                parse_options=pa_csv.ParseOptions(delimiter="\t", quote_char=False, ignore_empty_lines=True),
                convert_options=pa_csv.ConvertOptions(
                    column_types={"v": typ},
                    null_values=[],
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
            for batch in reader:
                col = batch.column(0)
                if col.null_count:
                    raise _ParseFailed
                yield col.to_numpy()
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            raise _ParseFailed from None
        return
    try:  # tested by switching HAVE_PYARROW off
        chunks = pd.read_csv(
            io.BytesIO(stream.tobytes()),
            header=None,
            names=["v"],
            engine="c",
            dtype=np.float64 if as_float else np.int64,
            na_filter=False,
            skip_blank_lines=True,
            quoting=3,
            chunksize=1 << 21,
        )
        for chunk in chunks:
            yield chunk["v"].to_numpy()
    except (ValueError, pd.errors.ParserError):
        raise _ParseFailed from None


def numeric_stream(a: np.ndarray, core_starts: np.ndarray, core_ends: np.ndarray) -> np.ndarray:
    """A copy of the buffer where only the numeric cores survive, one token per line.

    Bytes outside the cores become newlines (blank lines are skipped by the parser), tabs inside the cores
    become newlines. When the cores are most of the file this is one copy plus a small scatter, far cheaper
    than gathering 25 million tokens.
    """
    n = len(a)
    gap_starts = np.concatenate(([0], core_ends))
    gap_ends = np.concatenate((core_starts, [n]))
    gap_total = int(np.maximum(gap_ends - gap_starts, 0).sum())
    if gap_total <= n // 16:  # the gap index array stays below half the file size
        out = bytearray(a)
        np.frombuffer(out, dtype=np.uint8)[range_index(gap_starts, gap_ends)] = LF
    else:  # most of the file is not numeric (e.g. one label of a multi-label .shared): gather the cores
        delta = np.zeros(n + 1, dtype=np.int8)
        np.add.at(delta, core_starts, 1)
        np.add.at(delta, core_ends, -1)
        keep = np.cumsum(delta[:-1], dtype=np.int8).astype(bool)
        # keep the byte after each core as a separator so consecutive cores do not fuse
        keep[core_ends[core_ends < n]] = True
        out = bytearray(a[keep])
    # bytes.translate is a single C pass, faster than a numpy compare-and-assign over 25 million tabs
    return np.frombuffer(out.translate(_TO_NEWLINE), dtype=np.uint8)


_TO_NEWLINE = bytes.maketrans(b"\t\r", b"\n\n")


@dataclass
class _CellIssue:
    pos: int  # flat position (row-major over records x columns)
    problem: str
    expected: str
    value: float


@dataclass
class _Nonzeros:
    """The non-zero cells of a parsed stream: per-row counts, column indices and values (CSR parts)."""

    row_counts: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    integral: bool


def _accumulate(stream: np.ndarray, as_float: bool, nrow: int, ncol: int, allow_float: bool):
    """Non-zero cells of the whole stream (as CSR parts), or the first value-level issue.

    Per batch only the non-zero cells are kept, as int32 column indices plus values, and rows are only
    counted, so memory is about 12-16 bytes per non-zero cell rather than 8 bytes per cell.
    """
    total = nrow * ncol
    row_counts = np.zeros(nrow, dtype=np.int64)
    col_parts: list[np.ndarray] = []
    val_parts: list[np.ndarray] = []
    col_dtype = np.int32 if ncol < 2**31 - 1 else np.int64
    offset = 0
    integral = True
    for v in _stream_batches(stream, as_float):
        if offset + len(v) > total:
            raise _ParseFailed
        checks = [(v < 0, "negative", "a non-negative number")]
        if as_float:
            checks.insert(0, (~np.isfinite(v), "non-finite", "a finite number"))
            frac = v != np.floor(v)
            if frac.any():
                integral = False
                if not allow_float:
                    expected = "an integer count (relative abundances only when declared, e.g. a .relabund file)"
                    checks.append((frac, "non-integer", expected))
            big = np.abs(v) >= 2**53
            if big.any() and not allow_float:
                checks.append((big, "too large", "a count below 2**53"))
        for mask, problem, expected in checks:
            if mask.any():
                i = int(np.argmax(mask))
                return _CellIssue(offset + i, problem, expected, v[i].item())
        nz = np.flatnonzero(v)
        pos = nz + offset
        rows = pos // ncol
        row_counts += np.bincount(rows, minlength=nrow)
        col_parts.append((pos - rows * ncol).astype(col_dtype))
        val_parts.append(v[nz])
        offset += len(v)
    if offset != total:
        raise _ParseFailed
    cols = np.concatenate(col_parts) if col_parts else np.zeros(0, dtype=col_dtype)
    vals = np.concatenate(val_parts) if val_parts else np.zeros(0, dtype=np.float64 if as_float else np.int64)
    return _Nonzeros(row_counts, cols, vals, integral)


def parse_cells(
    path: str | Path,
    rec: Records,
    core_starts: np.ndarray,
    core_ends: np.ndarray,
    col_names: Sequence[str],
    *,
    what: str,
    row_labels: Sequence[str] | None = None,
    allow_float: bool = False,
) -> tuple[sp.csr_matrix, bool]:
    """Parse the numeric core of every record into a CSR matrix of shape (n_records, len(col_names)).

    Every record must already be known to hold ``len(col_names)`` core fields. Returns (matrix, is_integer):
    int64 for counts; floats are accepted only when every value is integral (then cast to int64, e.g.
    BIOM-converted tables write ``3.0``) or when ``allow_float`` is set (relative abundances). Empty,
    non-numeric, non-finite, negative and (unless allowed) non-integer cells are rejected by line and column.
    """
    nrow, ncol = len(core_starts), len(col_names)
    if nrow * ncol == 0:
        return sp.csr_matrix((nrow, ncol), dtype=np.int64), True
    stream = numeric_stream(rec.buf, core_starts, core_ends)
    probe = stream[: 1 << 16]
    looks_float = bool(np.isin(probe, np.frombuffer(b".eEnN", dtype=np.uint8)).any())
    result = None
    for as_float in (True,) if looks_float else (False, True):
        try:
            result = _accumulate(stream, as_float, nrow, ncol, allow_float)
            break
        except _ParseFailed:
            continue
    del stream, probe  # the stream is as large as the file: free it before building the matrix
    if result is None:
        _locate_bad_token(path, rec, core_starts, core_ends, col_names, what, row_labels, nrow)
        raise ContractViolation(
            path, f"{what}: the numeric cells could not be parsed consistently", expected="one number per cell"
        )  # pragma: no cover
    if isinstance(result, _CellIssue):
        r, c = divmod(result.pos, ncol)
        # An empty cell earlier in the file would shift positions: the slow path names it first if present.
        _locate_bad_token(path, rec, core_starts, core_ends, col_names, what, row_labels, r + 1)
        raise _cell_error(
            path, rec, r, c, col_names, row_labels, f"{result.problem} {what} {clip(result.value)}", result.expected
        )
    nz = result
    is_int = nz.vals.dtype.kind in "iu" or nz.integral
    vals = nz.vals.astype(np.int64 if is_int else np.float64, copy=False)
    idx_dtype = np.int32 if max(ncol, len(vals)) < 2**31 - 1 else np.int64
    indptr = np.zeros(nrow + 1, dtype=idx_dtype)
    np.cumsum(nz.row_counts, out=indptr[1:])
    mat = sp.csr_matrix((vals, nz.cols.astype(idx_dtype, copy=False), indptr), shape=(nrow, ncol))
    return mat, is_int


def integral_or_float(vals: np.ndarray, allow_float: bool, error) -> tuple[np.ndarray, bool]:
    """Cast float counts to int64 when every value is integral; else keep floats only if allowed.

    ``error(r, c, problem, expected)`` builds the exception for the first offending cell of a 2-D array.
    """
    frac = vals != np.floor(vals)
    if frac.any():
        if allow_float:
            return vals, False
        r, c = np.argwhere(frac.reshape(vals.shape[0], -1))[0]
        raise error(r, c, "non-integer", "an integer count (relative abundances only when declared as such)")
    if vals.size and vals.max() >= 2**53:
        if allow_float:
            return vals, False
        r, c = np.argwhere(vals.reshape(vals.shape[0], -1) >= 2**53)[0]
        raise error(r, c, "too large", "a count below 2**53")
    return vals.astype(np.int64), True


def _cell_error(path, rec: Records, r, c, col_names, row_labels, problem: str, expected: str):
    who = f" (row {clip(row_labels[r])})" if row_labels is not None else ""
    return ContractViolation(path, problem + who, expected=expected, row=int(rec.lines[r]), column=short(col_names[c]))


def _locate_bad_token(path, rec: Records, core_starts, core_ends, col_names, what, row_labels, upto: int) -> None:
    """Slow path: find the first empty or non-numeric cell among the first ``upto`` records and raise.

    Works through the records in chunks so that a bad cell near the top of a big file is found quickly.
    """
    ncol = len(col_names)
    chunk = max(1, 2_000_000 // max(ncol, 1))
    for lo in range(0, min(upto, len(core_starts)), chunk):
        hi = min(lo + chunk, len(core_starts))
        blob = gather(rec.buf, core_starts[lo:hi], core_ends[lo:hi], terminator=TAB)
        toks = blob[:-1].split(b"\t") if blob else []
        if len(toks) != (hi - lo) * ncol:  # pragma: no cover - field counts were checked by the caller
            raise ContractViolation(path, f"{what}: wrong number of fields", row=int(rec.lines[lo]))
        s = pd.Series(toks, dtype=object).str.decode("utf-8", errors="replace")
        num = pd.to_numeric(s, errors="coerce")
        bad = np.flatnonzero(num.isna().to_numpy())
        if len(bad):
            k = int(bad[0])
            r, c = lo + k // ncol, k % ncol
            tok = s.iloc[k]
            problem = f"empty {what} cell" if tok.strip() == "" else f"non-numeric {what} {clip(tok)}"
            raise _cell_error(path, rec, r, c, col_names, row_labels, problem, "a number")


# ---------------------------------------------------------------------------------------------- headers


def check_delimiter(path: str | Path, header: str, sep: str, line: int, fields: int | None = None) -> None:
    """Reject a file whose header does not split on the expected separator but does on another one."""
    nf = fields if fields is not None else len(header.split(sep))
    if nf > 1:
        return
    for other in ("\t", ";", ",", "|"):
        if other != sep and other in header:
            raise ContractViolation(
                path,
                f"the header is a single column that contains {sep_name(other)}s: the file looks "
                f"{sep_name(other)}-separated",
                expected=f"{sep_name(sep)}-separated columns",
                row=line,
            )


def duplicates(values: Sequence[str]) -> list[str]:
    s = pd.Series(list(values), dtype=object)
    return list(dict.fromkeys(s[s.duplicated()].tolist()))


def first_duplicate_pos(values: Sequence[str]) -> int | None:
    dup = pd.Series(list(values), dtype=object).duplicated().to_numpy()
    return int(np.argmax(dup)) if dup.any() else None


def ragged_error(path: str | Path, rec: Records, expected: int, sep: str = "\t") -> None:
    """Reject the first record whose number of fields differs from the header's."""
    bad = np.flatnonzero(rec.nfields != expected)
    if len(bad):
        i = int(bad[0])
        spans = int(np.count_nonzero(rec.buf[rec.starts[i] : rec.ends[i]] == LF))
        hint = (
            f" (a double quote opens a quoted field that runs over {spans} line break(s): unbalanced quote?)"
            if spans
            else ""
        )
        raise ContractViolation(
            path,
            f"ragged row: {int(rec.nfields[i])} fields where the header has {expected}{hint}",
            expected=f"{expected} {sep_name(sep)}-separated fields on every line",
            row=int(rec.lines[i]),
        )
