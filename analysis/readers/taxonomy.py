"""Taxonomy files and lineage strings.

Files (omics.md sections 2 and 6):

* mothur ``classify.otu`` output ``*.cons.taxonomy``: header ``OTU<TAB>Size<TAB>Taxonomy``, rows like
  ``Otu0001<TAB>119729<TAB>Bacteria(100);Bacteroidota(100);...;Phocaeicola(100);`` (confidences omitted
  with ``probs=F``; RDP names may be quoted, ``"Bacteroidetes"(100)``).
* QIIME 2 ``taxonomy.tsv`` (``TSVTaxonomyFormat``): header ``Feature ID<TAB>Taxon[<TAB>Confidence]``,
  possibly followed by ``#q2:types`` directive lines; and the ``FeatureData[Taxonomy]`` artifact
  (``taxonomy.qza``) that wraps it as ``<uuid>/data/taxonomy.tsv``.

Lineage strings are normalised by :func:`parse_lineage` to seven ranks, keeping the raw string alongside:
``;``-separated tokens; mothur ``(100)`` confidences and quotes stripped; rank prefixes ``d__``/``k__``
(domain; Greengenes/QIIME 1 use ``k__``, SILVA 138/GTDB/Greengenes2 ``d__``), ``p__ c__ o__ f__ g__ s__``
and SILVA 132 QIIME ``D_0__``...``D_6__``; Majorbio writes ``d__Bacteria;k__norank_d__Bacteria;p__...``
where ``k__`` is a kingdom *below* the domain and is skipped. Unprefixed lineages (mothur/SILVA) are read
by position. Placeholders mean "not assigned at this rank" and become None: empty names (``g__``),
``unclassified*``, ``*_unclassified``, ``norank*``/``no_rank*``, ``uncultured*``, ``unassigned*``,
``unknown*``/``*_unknown`` (mothur's unclassifiable lineage) and ``*metagenome`` (SILVA species
placeholders such as ``gut_metagenome``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from analysis.errors import ContractViolation
from analysis.readers._biom import QZA_TAXONOMY_TYPES, open_qza, read_member
from analysis.readers._text import (
    ZIP_MAGICS,
    check_delimiter,
    clip,
    first_duplicate_pos,
    index_records,
    load_bytes,
    ragged_error,
    short,
    split_fields,
    to_utf8,
)

RANKS: tuple[str, ...] = ("domain", "phylum", "class", "order", "family", "genus", "species")

_ID_NAMES = frozenset({"otu", "feature id", "featureid", "feature-id", "feature_id", "otu id", "otuid", "id"})
_TAXON_NAMES = frozenset({"taxonomy", "taxon"})
_PREFIX = re.compile(r"^([A-Za-z])__(.*)$", re.DOTALL)
_SILVA132 = re.compile(r"^D_(\d+)__(.*)$", re.DOTALL)
_CONFIDENCE = re.compile(r"\(\s*\d+(?:\.\d+)?\s*\)$")
_PREFIX_RANK = {"d": 0, "k": 0, "p": 1, "c": 2, "o": 3, "f": 4, "g": 5, "s": 6}
_UNASSIGNED = re.compile(
    r"^(?:unclassified|norank|no_rank|no rank|uncultured|unassigned|unknown)|(?:_unclassified|_unknown|metagenome)$",
    re.IGNORECASE,
)
_QUOTES = "\"'"


def _clean_token(tok: str) -> str:
    tok = tok.strip().strip(_QUOTES)
    tok = _CONFIDENCE.sub("", tok).strip().strip(_QUOTES).strip()
    return tok


def _assigned(name: str) -> str | None:
    name = name.strip()
    if not name or _UNASSIGNED.search(name):
        return None
    return name


def parse_lineage(s: str | None) -> dict[str, str | None]:
    """Normalise a lineage string to ``{rank: name or None}`` for :data:`RANKS` (see module docstring)."""
    out: dict[str, str | None] = dict.fromkeys(RANKS)
    if s is None or (isinstance(s, float) and np.isnan(s)):
        return out
    tokens = [_clean_token(t) for t in str(s).split(";")]
    tokens = [t for t in tokens if t]
    prefixed = [(_PREFIX.match(t), _SILVA132.match(t)) for t in tokens]
    if any(p or q for p, q in prefixed):
        seen_domain = False
        for p, q in prefixed:
            if q:
                level, name = int(q.group(1)), q.group(2)
                if level >= len(RANKS):
                    continue
                rank = RANKS[level]
            elif p:
                letter, name = p.group(1).lower(), p.group(2)
                if letter not in _PREFIX_RANK:
                    continue  # e.g. t__ (strain) or x__: not one of the seven ranks
                if letter == "k" and seen_domain:
                    continue  # Majorbio: k__ is a kingdom under d__, not the domain
                seen_domain = seen_domain or letter == "d"
                rank = RANKS[_PREFIX_RANK[letter]]
            else:
                continue  # an unprefixed token inside a prefixed lineage carries no rank
            if out[rank] is None:
                out[rank] = _assigned(_clean_token(name))
        return out
    for rank, tok in zip(RANKS, tokens, strict=False):
        out[rank] = _assigned(tok)
    return out


def lineage_table(taxonomy: Mapping[str, str]) -> pd.DataFrame:
    """One row per feature: the raw ``taxonomy`` string and the seven normalised ranks.

    Lineages repeat heavily (thousands of OTUs share a few hundred strings), so each distinct string is
    parsed once.
    """
    ids = list(taxonomy.keys())
    raw = pd.Series(list(taxonomy.values()), index=pd.Index(ids, name="feature_id"), dtype=object)
    uniq = pd.unique(raw.to_numpy())
    parsed = pd.DataFrame([parse_lineage(u) for u in uniq], index=uniq, columns=list(RANKS))
    out = parsed.reindex(raw.to_numpy())
    out.index = raw.index
    out.insert(0, "taxonomy", raw)
    return out


# ---------------------------------------------------------------------------------------------- files


def _taxonomy_bytes(path: str | Path) -> bytes:
    raw = load_bytes(path)
    if raw[:4] in ZIP_MAGICS or str(path).lower().endswith(".qza"):
        if raw[:4] not in ZIP_MAGICS:
            raise ContractViolation(path, "not a zip archive", expected="a QIIME 2 artifact (.qza is a zip file)")
        _typ, root, zf = open_qza(path, raw, QZA_TAXONOMY_TYPES, "taxonomy")
        names = [n for n in zf.namelist() if PurePosixPath(n).match(f"{root}/data/taxonomy.tsv")]
        if not names:
            raise ContractViolation(
                path,
                "the artifact has no taxonomy payload",
                expected=f"{root}/data/taxonomy.tsv",
                column="data/taxonomy.tsv",
            )
        return read_member(path, zf, names[0])
    return raw


def read_taxonomy_table(path: str | Path) -> pd.DataFrame:
    """A taxonomy file as a DataFrame: ``feature_id, taxonomy, size, confidence, source_row``.

    ``taxonomy`` is the string as delivered; ``size`` (mothur ``Size``, nullable Int64) and ``confidence``
    (QIIME 2, nullable Float64) are NA when the file has no such column; ``source_row`` is the 1-based line.
    """
    data = to_utf8(path, _taxonomy_bytes(path))
    rec = index_records(data, "\t")
    if len(rec) == 0:
        raise ContractViolation(
            path,
            "empty file",
            expected="a header 'OTU<TAB>Size<TAB>Taxonomy' or 'Feature ID<TAB>Taxon[<TAB>Confidence]'",
        )
    header_line = int(rec.lines[0])
    header = rec.decoded(path, 0).split("\t")
    check_delimiter(path, "\t".join(header), "\t", header_line, len(header))
    keys = [h.strip().lstrip("#").strip().lower() for h in header]
    id_pos = next((i for i, k in enumerate(keys) if k in _ID_NAMES), None)
    tax_pos = next((i for i, k in enumerate(keys) if k in _TAXON_NAMES), None)
    for pos, what in (
        (id_pos, "a feature id column ('OTU' or 'Feature ID')"),
        (tax_pos, "a taxonomy column ('Taxonomy' or 'Taxon')"),
    ):
        if pos is None:
            raise ContractViolation(
                path,
                f"missing required column: {what}",
                expected="'OTU<TAB>Size<TAB>Taxonomy' or 'Feature ID<TAB>Taxon[<TAB>Confidence]'",
                row=header_line,
            )
    size_pos = next((i for i, k in enumerate(keys) if k == "size"), None)
    conf_pos = next((i for i, k in enumerate(keys) if k == "confidence"), None)

    body = rec.subset(slice(1, None))
    directive = body.buf[body.starts] == ord("#")  # QIIME 2 '#q2:types' lines
    body = body.subset(~directive)
    if len(body) == 0:
        raise ContractViolation(
            path, "empty table: a header but no rows", expected="one row per feature", row=header_line
        )
    ragged_error(path, body, len(header))
    cells = split_fields(path, body, body.starts, body.ends, len(header), "\t")
    ids = cells[:, id_pos]
    dup = first_duplicate_pos(ids.tolist())
    if dup is not None:
        raise ContractViolation(
            path,
            f"duplicate feature id {clip(ids[dup])}",
            expected="one row per feature",
            row=int(body.lines[dup]),
            column=short(header[id_pos]),
        )
    blank = np.flatnonzero(ids == "")
    if len(blank):
        raise ContractViolation(
            path,
            "empty feature id",
            expected="a feature id",
            row=int(body.lines[blank[0]]),
            column=short(header[id_pos]),
        )
    size = pd.array([pd.NA] * len(ids), dtype="Int64")
    if size_pos is not None:
        size = _numbers(path, body, cells[:, size_pos], header[size_pos], integer=True)
    conf = pd.array([pd.NA] * len(ids), dtype="Float64")
    if conf_pos is not None:
        conf = _numbers(path, body, cells[:, conf_pos], header[conf_pos], integer=False)
    return pd.DataFrame(
        {
            "feature_id": pd.Series(ids, dtype=object),
            "taxonomy": pd.Series(cells[:, tax_pos], dtype=object),
            "size": size,
            "confidence": conf,
            "source_row": body.lines.astype(np.int64),
        }
    )


def _numbers(path, body, col: np.ndarray, name: str, integer: bool):
    num = pd.to_numeric(pd.Series(col, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(num)
    if integer:
        bad |= (num < 0) | (num != np.floor(np.nan_to_num(num)))
    if bad.any():
        i = int(np.argmax(bad))
        raise ContractViolation(
            path,
            f"{name} {clip(col[i])} is not a {'count' if integer else 'number'}",
            expected="a non-negative integer" if integer else "a number",
            row=int(body.lines[i]),
            column=name,
        )
    return pd.array(num.astype(np.int64), dtype="Int64") if integer else pd.array(num, dtype="Float64")


def read_taxonomy(path: str | Path) -> dict[str, str]:
    """Feature id -> taxonomy string as delivered (mothur ``.cons.taxonomy``, QIIME 2 ``taxonomy.tsv``/``.qza``)."""
    df = read_taxonomy_table(path)
    return dict(zip(df["feature_id"].tolist(), df["taxonomy"].tolist(), strict=True))
