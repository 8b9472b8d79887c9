"""Read a sequencing feature table in any of the formats the contract accepts, detected by content.

Formats (``analysis.contract.SEQ_TABLE_SUFFIXES``; specs in ``/work/shared/reference/omics.md`` sections 2
and 6): BIOM 1.0 JSON, BIOM 2.1 HDF5, QIIME 2 ``.qza``, mothur ``.shared`` / ``.relabund`` and classic
``#OTU ID`` TSV (also Majorbio ``.xls`` text). Any of them may be gzipped. The format is sniffed from the
content (magic bytes, first line), so a ``.txt`` that is really a ``.shared`` or an ``.xls`` that is really
tab-separated text is read correctly; the name is only used to word errors.
"""

from __future__ import annotations

import io
from pathlib import Path

from analysis.errors import ContractViolation
from analysis.readers._biom import read_biom_hdf5, read_biom_json_bytes, read_qza_bytes
from analysis.readers._classic import read_classic_bytes
from analysis.readers._shared import read_shared_bytes, read_shared_labels_bytes
from analysis.readers._text import (
    GZIP_MAGIC,
    HDF5_MAGIC,
    OLE2_MAGIC,
    UTF16_BOMS,
    ZIP_MAGICS,
    base_name,
    check_utf8_text,
    declared_encoding,
    gunzip,
    looks_utf16,
    read_raw,
    strip_bom,
    transcode,
)
from analysis.readers.tables import FEATURE_TABLE_FORMATS, FeatureTable

#: Accepted values of ``format=`` besides the detected ones: ``biom`` means either BIOM encoding.
FORMAT_ALIASES: dict[str, tuple[str, ...]] = {
    "auto": FEATURE_TABLE_FORMATS,
    "biom": ("biom-json", "biom-hdf5"),
    "relabund": ("shared",),
    **{f: (f,) for f in FEATURE_TABLE_FORMATS},
}


#: Formats that are text (the contract's encoding rules apply); the others are HDF5 or zip containers.
TEXT_FORMATS: frozenset[str] = frozenset({"biom-json", "shared", "tsv"})


def _is_hdf5(head: bytes) -> bool:
    # HDF5 superblocks sit at offset 0, 512, 1024, 2048 ... (after an optional user block)
    return any(head[o : o + 8] == HDF5_MAGIC for o in (0, 512, 1024, 2048))


def _sniff(path: str | Path, raw: bytes) -> str:
    """The format of decompressed content."""
    if not raw.strip():
        raise ContractViolation(path, "empty file", expected="a feature table")
    if _is_hdf5(raw[:4096]):
        return "biom-hdf5"
    if raw[:4] in ZIP_MAGICS:
        if b"[Content_Types].xml" in raw[:4096] or b"xl/" in raw[:4096]:
            raise ContractViolation(
                path,
                "this is an Excel workbook (.xlsx), not text",
                expected="a tab-separated text table or a BIOM/QIIME 2 file",
            )
        return "qza"
    if raw.startswith(OLE2_MAGIC):
        raise ContractViolation(
            path,
            "this is a binary Excel workbook (.xls), not text",
            expected="a tab-separated text table (export the sheet as text)",
        )
    head = strip_bom(raw[:65536]).lstrip()
    if head[:1] == b"{":
        return "biom-json"
    nul = head.find(b"\x00")
    if looks_utf16(head):
        raise ContractViolation(
            path,
            "embedded NUL bytes: this looks like UTF-16 text without a byte-order mark",
            expected="UTF-8 text, or UTF-16 with a byte-order mark",
            row=1,
        )
    if nul >= 0 and b"\n" not in head[:nul]:  # after a first line of text it is text with a NUL: named by line
        raise ContractViolation(
            path,
            "binary content that is not HDF5, zip or gzip",
            expected="BIOM (JSON/HDF5), .qza, mothur .shared or tab-separated text",
        )
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    low = first.lower()
    if low.startswith(b"label") and b"numotus" in low:
        return "shared"
    if _headerless_shared(first):
        return "shared"
    return "tsv"


def _headerless_shared(first: bytes) -> bool:
    """Old mothur files have no header: ``label<TAB>group<TAB>numOtus<TAB>counts...``."""
    parts = first.split(b"\t")
    # the length guard keeps int() away from Python's 4,300-digit limit on hostile input
    return (
        len(parts) >= 3
        and 0 < len(parts[2]) <= 18
        and parts[2].isdigit()
        and int(parts[2]) == len(parts) - 3
        and not first.startswith(b"#")
    )


def _load(path: str | Path) -> tuple[str, bytes | None]:
    """(format, decompressed content); content is None for a plain HDF5 file, which h5py reads itself."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        head = read_raw(path)  # raises the right ContractViolation
    if _is_hdf5(head):
        return "biom-hdf5", None
    raw = read_raw(path)
    if raw[:2] == GZIP_MAGIC:
        raw = gunzip(path, raw)
    elif str(path).lower().endswith(".gz"):
        raise ContractViolation(
            path,
            "file name ends in .gz but the content is not gzip data",
            expected="gzip-compressed content (magic bytes 1f 8b)",
        )
    elif base_name(path).endswith(".qza") and raw[:4] not in ZIP_MAGICS:
        raise ContractViolation(path, "not a zip archive", expected="a QIIME 2 artifact (.qza is a zip file)")
    if raw[:2] in UTF16_BOMS or declared_encoding(path):
        raw = transcode(path, raw)  # UTF-16 (BOM) or declared GB18030 text is sniffed and read as UTF-8
    fmt = _sniff(path, raw)
    if fmt in TEXT_FORMATS:
        raw = check_utf8_text(path, raw)  # the contract's encoding, NUL and line-end rules, naming the line
    return fmt, raw


def detect_format(path: str | Path) -> str:
    """The feature-table format of a file, by content: one of :data:`FEATURE_TABLE_FORMATS`."""
    return _load(path)[0]


def read_feature_table(
    path: str | Path, format: str = "auto", label: str | None = None, allow_relative: bool = False
) -> FeatureTable:
    """Read a whole feature table (samples x features) or raise :class:`ContractViolation`.

    ``format``: ``auto`` (sniff), ``biom``, ``biom-json``, ``biom-hdf5``, ``qza``, ``shared`` (also
    ``relabund``) or ``tsv``; an explicit format must agree with the content. ``label``: the mothur label
    to read from a multi-label ``.shared`` (default ``0.03`` when present, else the first label).
    ``allow_relative``: accept non-integer values (relative abundances) and flag the table ``relative``;
    a ``.relabund`` file and a ``FeatureTable[RelativeFrequency]`` artifact are always relative.
    """
    if format not in FORMAT_ALIASES:
        raise ValueError(f"unknown format {format!r}; use one of {', '.join(FORMAT_ALIASES)}")
    fmt, data = _load(path)
    if fmt not in FORMAT_ALIASES[format]:
        raise ContractViolation(path, f"the content is {fmt}, not {format}", expected=f"a {format} file")
    if label is not None and fmt != "shared":
        raise ContractViolation(
            path,
            f"label {label!r} given but a {fmt} table has no mothur labels",
            expected="a mothur .shared file",
            column="label",
        )
    if format == "relabund":
        allow_relative = True
    if fmt == "shared":
        return read_shared_bytes(path, data, label=label, allow_relative=allow_relative)
    if fmt == "tsv":
        return read_classic_bytes(path, data, allow_relative=allow_relative)
    if fmt == "biom-json":
        return read_biom_json_bytes(path, data, allow_relative=allow_relative)
    if fmt == "biom-hdf5":
        return read_biom_hdf5(path, path if data is None else io.BytesIO(data), allow_relative=allow_relative)
    return read_qza_bytes(path, data, allow_relative=allow_relative)


def read_shared_labels(path: str | Path) -> list[str]:
    """The distinct labels of a mothur ``.shared`` file, in file order."""
    fmt, data = _load(path)
    if fmt != "shared":
        raise ContractViolation(
            path, f"the content is {fmt}, not a mothur .shared file", expected="a mothur .shared file"
        )
    return read_shared_labels_bytes(path, data)
