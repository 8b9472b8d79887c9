"""Finding and classifying the files of a landing folder (layout: ``analysis.contract``).

A landing folder is read, never written: the loader only opens files for reading.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from analysis import contract

FAMILIES: tuple[str, ...] = ("crf", "sequencing", "metabolomics")

_GZ = ".gz"


@dataclass(frozen=True)
class LandingFile:
    """One file in the landing folder, with what the contract says it is."""

    family: str
    #: 'crf:<form>', 'seq_table', 'seq_manifest', 'seq_taxonomy', 'seq_tree', 'mtb_features', 'mtb_injections'
    #: or 'unknown'
    kind: str
    path: Path
    #: Path relative to the landing folder, with forward slashes: the file's identity across loads.
    relpath: str
    batch_id: str | None

    @property
    def crf_form(self) -> str | None:
        return self.kind.split(":", 1)[1] if self.kind.startswith("crf:") else None


def strip_gz(name: str) -> str:
    return name[: -len(_GZ)] if name.lower().endswith(_GZ) else name


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def printable(name: str) -> str:
    """A file name as text the warehouse can store: bytes that are not UTF-8 (kept by the OS as surrogate
    escapes) and control characters are shown as backslash escapes. Such a name is recorded, then rejected."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", text)


_FORM_RE = re.compile(r"^(?P<form>[a-z]+)(?:[_\-.].*)?\.csv$", re.IGNORECASE)


def _classify_crf(name: str) -> str:
    match = _FORM_RE.match(strip_gz(name))
    if match and match["form"].lower() in contract.CRF_FORMS:
        return f"crf:{match['form'].lower()}"
    return "unknown"


#: An encoding token in a file name (``manifest.gb18030.csv``) declares the encoding; it is not part of the
#: name the contract classifies (``analysis.contract.TEXT_ENCODING_TOKENS``).
_ENCODING_TOKEN = re.compile(r"[._-](?:" + "|".join(contract.TEXT_ENCODING_TOKENS) + r")(?=[._-])", re.IGNORECASE)


def strip_encoding_token(name: str) -> str:
    return _ENCODING_TOKEN.sub("", name)


def _classify_sequencing(name: str) -> str:
    base = strip_encoding_token(strip_gz(name).lower())
    if base == "manifest.csv":
        return "seq_manifest"
    if base.endswith(".cons.taxonomy") or base in {"taxonomy.tsv", "taxonomy.qza"}:
        return "seq_taxonomy"
    if any(base.endswith(s) for s in contract.SEQ_TREE_SUFFIXES) or base.endswith(contract.SEQ_TREE_QZA_SUFFIX):
        return "seq_tree"
    if any(base.endswith(suffix) for suffix in contract.SEQ_TABLE_SUFFIXES):
        return "seq_table"
    return "unknown"


def _classify_metabolomics(name: str) -> str:
    base = strip_encoding_token(strip_gz(name).lower())
    if base == "injections.csv":
        return "mtb_injections"
    if base.endswith(".csv") or base.endswith(".tsv") or base.endswith(".txt"):
        return "mtb_features"
    return "unknown"


def scan_landing(landing_dir: Path, family: str) -> list[LandingFile]:
    """Every regular file of one source family, sorted by relative path (so loads are reproducible).

    Hidden files (``.*``) and editor leftovers (``~``) are skipped: transfer tools write them while a
    delivery is still in progress.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown source family {family!r}; expected one of {FAMILIES}")
    root = landing_dir / family
    if not root.is_dir():
        return []
    files: list[LandingFile] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel_parts = path.relative_to(root).parts
        if any(part.startswith(".") or part.endswith("~") for part in rel_parts):
            continue
        relpath = printable(path.relative_to(landing_dir).as_posix())
        if family == "crf":
            kind, batch = _classify_crf(path.name), None
        else:
            # Omics exports arrive one batch per sub-folder; a file straight in the family folder has no batch.
            batch = printable(rel_parts[0]) if len(rel_parts) > 1 else None
            kind = _classify_sequencing(path.name) if family == "sequencing" else _classify_metabolomics(path.name)
            if batch is None:
                kind = "unknown"
        if relpath != path.relative_to(landing_dir).as_posix():
            kind = "unknown"  # a name that is not UTF-8 (or holds control characters) is not a contract file name
        files.append(LandingFile(family, kind, path, relpath, batch))
    return files
