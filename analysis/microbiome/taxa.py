"""Taxonomy strings to ranks, and count matrices collapsed to a rank.

Parsing uses the shared lineage normaliser :func:`analysis.readers.taxonomy.parse_lineage` (SILVA ``d__``,
Greengenes ``k__``, SILVA 132 ``D_0__``, mothur ``Name(100);``, Majorbio ``norank_``/``unclassified_`` fillers;
placeholders become None; ``omics.md`` §2 and §6), so the reader and the analyses agree on every lineage. On
top of it :func:`parse_taxonomy`

* drops a leading ``Root`` token (RDP classifier output), which would otherwise be read as the domain;
* writes a Greengenes-style bare species epithet (``g__Bacteroides; s__fragilis``) as the binomial
  ``Bacteroides fragilis`` so species from different genera never merge.

:func:`collapse` sums a sparse samples x features matrix into taxa at one rank with a sparse indicator
product (``X @ A``, A features x taxa). Taxa are grouped by their full lineage down to the rank (phyloseq
``tax_glom`` semantics), labelled by their name, disambiguated by the parent when one name occurs under two
parents. Features not assigned at the rank go to one bucket named ``"Unassigned <rank>"`` (or are rolled up
to their deepest assigned rank, ``"Lachnospiraceae (unassigned genus)"``, or dropped).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from analysis.readers.taxonomy import RANKS, parse_lineage

__all__ = ["RANKS", "Collapsed", "collapse", "parse_taxonomy", "taxonomy_table", "unassigned_label"]

_ROOT = re.compile(r"^\s*[\"']?root[\"']?(\(\d+(\.\d+)?\))?\s*(;|$)", re.IGNORECASE)
_EPITHET = re.compile(r"^[a-z][a-z-]*\.?$")


def unassigned_label(rank: str) -> str:
    """Name of the bucket holding features not assigned at ``rank``."""
    return f"Unassigned {rank}"


def parse_taxonomy(text: str | None) -> dict[str, str | None]:
    """``{rank: name or None}`` for the seven ranks domain..species (see the module docstring)."""
    if isinstance(text, str):
        text = _ROOT.sub("", text, count=1)
    out = parse_lineage(text)
    species, genus = out.get("species"), out.get("genus")
    if species and genus and _EPITHET.match(species):
        out["species"] = f"{genus} {species}"
    return out


def taxonomy_table(taxonomy: pd.Series | dict[str, str] | Iterable[tuple[str, str]]) -> pd.DataFrame:
    """One row per feature (index ``feature_id``): ``taxonomy`` (raw string) and the seven ranks.

    Each distinct string is parsed once (thousands of OTUs share a few hundred lineages).
    """
    series = pd.Series(dict(taxonomy)) if not isinstance(taxonomy, pd.Series) else taxonomy
    raw = pd.Series(series.to_numpy(dtype=object), index=pd.Index(series.index.astype(str), name="feature_id"))
    uniq = pd.unique(raw.to_numpy())
    parsed = pd.DataFrame([parse_taxonomy(u) for u in uniq], index=pd.Index(range(len(uniq))), columns=list(RANKS))
    codes = pd.Index(uniq).get_indexer(raw.to_numpy())
    out = parsed.iloc[codes].set_axis(raw.index)
    out.insert(0, "taxonomy", raw)
    return out.astype(object).where(out.notna(), None)


@dataclass(frozen=True)
class Collapsed:
    """Counts collapsed to one rank: samples x taxa CSR, taxon labels and each taxon's lineage."""

    rank: str
    counts: sp.csr_matrix
    taxa: tuple[str, ...]
    lineage: pd.DataFrame  # index = taxon label, columns = ranks down to ``rank``
    feature_taxon: np.ndarray  # taxon index of every input feature (-1 when dropped)

    def to_frame(self, sample_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Dense samples x taxa DataFrame (for small tables and tests)."""
        index = list(sample_ids) if sample_ids is not None else None
        return pd.DataFrame(self.counts.toarray(), index=index, columns=list(self.taxa))


def collapse(
    counts: Any,
    taxonomy: pd.DataFrame,
    rank: str,
    *,
    feature_ids: Sequence[str] | None = None,
    unassigned: Literal["bucket", "parent", "drop"] = "bucket",
) -> Collapsed:
    """Sum features into taxa at ``rank`` (one of :data:`RANKS`).

    ``taxonomy`` has the rank columns (e.g. from :func:`taxonomy_table`), indexed by feature id; when
    ``feature_ids`` is given, it is reindexed to those ids (features without taxonomy count as unassigned);
    otherwise its rows must follow the matrix columns. ``counts`` is samples x features (sparse or dense).
    """
    if rank not in RANKS:
        raise ValueError(f"rank must be one of {RANKS}")
    matrix = sp.csr_matrix(counts, dtype=np.float64)
    depth = RANKS.index(rank) + 1
    ranks = list(RANKS[:depth])
    tax = taxonomy.reindex([str(f) for f in feature_ids]) if feature_ids is not None else taxonomy
    if len(tax) != matrix.shape[1]:
        raise ValueError(f"taxonomy has {len(tax)} rows for {matrix.shape[1]} features")
    lin = tax[ranks].astype(object).where(tax[ranks].notna(), None).to_numpy(dtype=object)
    assigned = np.array([v is not None for v in lin[:, -1]], dtype=bool)

    keys: list[tuple[Any, ...] | None] = []
    for row, ok in zip(lin, assigned, strict=True):
        if ok:
            keys.append(tuple(row))
        elif unassigned == "bucket":
            keys.append(("__unassigned__",))
        elif unassigned == "parent":
            known = [i for i, v in enumerate(row) if v is not None]
            keys.append(("__parent__", *row[: known[-1] + 1]) if known else ("__unassigned__",))
        elif unassigned == "drop":
            keys.append(None)
        else:
            raise ValueError("unassigned must be 'bucket', 'parent' or 'drop'")

    uniq: dict[tuple[Any, ...], int] = {}
    feature_taxon = np.full(len(keys), -1, dtype=np.int64)
    for f, key in enumerate(keys):
        if key is not None:
            feature_taxon[f] = uniq.setdefault(key, len(uniq))
    labels, lineages = _labels(list(uniq), ranks, rank)
    n_taxa = len(uniq)
    kept = np.flatnonzero(feature_taxon >= 0)
    indicator = sp.csr_matrix(
        (np.ones(kept.size), (kept, feature_taxon[kept])), shape=(matrix.shape[1], n_taxa), dtype=np.float64
    )
    collapsed = sp.csr_matrix(matrix @ indicator)
    lineage = pd.DataFrame(lineages, index=pd.Index(labels, name=rank), columns=ranks)
    return Collapsed(rank, collapsed, tuple(labels), lineage, feature_taxon)


def _labels(keys: list[tuple[Any, ...]], ranks: list[str], rank: str) -> tuple[list[str], list[list[Any]]]:
    """Readable unique labels for taxon keys; lineage rows for each."""
    names: list[str] = []
    lineages: list[list[Any]] = []
    for key in keys:
        if key[0] == "__unassigned__":
            names.append(unassigned_label(rank))
            lineages.append([None] * len(ranks))
        elif key[0] == "__parent__":
            parent = key[1:]
            names.append(f"{parent[-1]} (unassigned {rank})")
            lineages.append(list(parent) + [None] * (len(ranks) - len(parent)))
        else:
            names.append(str(key[-1]))
            lineages.append(list(key))
    counts = pd.Series(names).value_counts()
    out = list(names)
    for i, key in enumerate(keys):
        if counts[names[i]] > 1 and key[0] not in ("__unassigned__",):
            parent = next((v for v in reversed(lineages[i][:-1]) if v is not None), None)
            out[i] = f"{names[i]} ({parent})" if parent is not None else names[i]
    # still duplicated (same name and parent, different higher ranks): number them
    repeated = {label for label, c in Counter(out).items() if c > 1}
    seen: dict[str, int] = {}
    for i, label in enumerate(out):
        if label in repeated:
            seen[label] = seen.get(label, 0) + 1
            out[i] = f"{label} [{seen[label]}]"
    return out, lineages
