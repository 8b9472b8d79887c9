"""Phylogenetic trees of a sequencing batch (optional; for UniFrac): Newick text or a QIIME 2 tree artifact.

Formats (``analysis.contract.SEQ_TREE_SUFFIXES``):

* **Newick** (``.nwk``, ``.tre``, ``.tree``, ``.newick``, optionally gzipped): one tree ending in ``;``, tips named by
  the batch's feature ids, a branch length on every node but the root (Felsenstein's Newick; what QIIME 2
  ``phylogeny export``, FastTree, IQ-TREE and RAxML write). Labels are taken literally: an underscore is not
  turned into a space (scikit-bio ``convert_underscores=False``), so ``ASV_1`` matches feature ``ASV_1``.
* **QIIME 2 artifact** (``rooted-tree.qza``, ``tree.qza``, any ``*tree.qza``): ``type: Phylogeny[Rooted]`` or
  ``Phylogeny[Unrooted]``, payload ``<uuid>/data/tree.nwk`` (``NewickDirectoryFormat``), opened with the same
  zip-bomb and path checks as feature-table artifacts.

Rooting. UniFrac needs a rooted tree. A QIIME 2 artifact says which it is (``Phylogeny[Rooted]`` is used as
delivered). A Newick file whose root has one or two children is taken as rooted; a root with three or more
children is how unrooted trees are written (FastTree's, RAxML's and PHYLIP's basal trifurcation), so such a
tree — like an artifact typed ``Phylogeny[Unrooted]`` — is **midpoint-rooted** (scikit-bio
``TreeNode.root_at_midpoint``: the root goes to the middle of the longest tip-to-tip path, as QIIME 2
``phylogeny midpoint-root``). A rooted tree with a multifurcating root must therefore come as a rooted artifact
or with a zero-length edge under its root (``((A:1,B:1,C:1):0);``). ``raw.seq_trees`` keeps the text as
delivered with ``rooted = 'N'``; every consumer re-parses it with :func:`parse_newick` (passing that flag), which
applies the same rule.

Rejected (``ContractViolation`` naming the file and what was expected): text that does not parse as Newick,
no tips, an unnamed or duplicated tip, a node other than the root without a branch length, a negative or
non-finite branch length; and, checked against the batch's feature table by :func:`check_tips`, a tree whose
tips miss a feature of the table (UniFrac would be undefined for that feature) or share none of its features
(a tree of another delivery). Extra tips are allowed, as in QIIME 2 (a study-wide tree may be delivered with
every batch; features filtered out of a table keep their tips).
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from analysis.contract import SEQ_TREE_QZA_TYPES
from analysis.errors import ContractViolation
from analysis.readers._biom import open_qza, read_member
from analysis.readers._text import ZIP_MAGICS, base_name, clip, load_bytes, to_utf8

__all__ = ["PhylogenyFile", "check_tips", "newick_sha256", "parse_newick", "read_tree"]

NEWICK_EXPECTED = "a Newick tree: '(A:0.1,(B:0.2,C:0.3):0.05);' with a branch length on every node but the root"


@dataclass(frozen=True)
class PhylogenyFile:
    """A delivered tree: the Newick text as delivered, the parsed (rooted) tree and what was checked."""

    newick: str
    tree: Any  #: ``skbio.TreeNode``, rooted (midpoint-rooted when delivered unrooted)
    tips: tuple[str, ...]
    rooted: bool  #: as delivered
    format: str  #: ``newick`` or ``qza``

    @property
    def sha256(self) -> str:
        return newick_sha256(self.newick)


def newick_sha256(text: str) -> str:
    """SHA-256 of the Newick text with surrounding whitespace stripped (identifies the same tree in several
    batches, whether delivered as ``.nwk`` or inside a ``.qza``)."""
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


def parse_newick(text: str, source: str | Path = "<newick>", *, rooted: bool | None = None) -> tuple[Any, bool]:
    """Parse and validate one Newick tree; returns ``(rooted skbio.TreeNode, rooted as delivered)``.

    ``rooted``: what the delivery declares (a QIIME 2 artifact type); None infers it from the root's degree. See
    the module docstring for the rules (rooting, labels, branch lengths).
    """
    from skbio import TreeNode
    from skbio.io import NewickFormatError

    body = text.strip()
    if not body:
        raise ContractViolation(source, "empty tree file", expected=NEWICK_EXPECTED)
    if not body.endswith(";"):
        raise ContractViolation(source, "the Newick text does not end with ';'", expected=NEWICK_EXPECTED)
    if body.count(";") != 1:
        raise ContractViolation(source, f"{body.count(';')} ';' found: one tree per file", expected=NEWICK_EXPECTED)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # skbio's format sniffer warns before its parser raises
            tree = TreeNode.read(io.StringIO(body), format="newick", convert_underscores=False)
    except (NewickFormatError, ValueError, TypeError, RecursionError) as exc:
        raise ContractViolation(
            source, f"not a parsable Newick tree ({clip(str(exc), 160)})", expected=NEWICK_EXPECTED
        ) from None
    tips = [node.name for node in tree.tips()]
    if len(tips) < 2:
        raise ContractViolation(source, f"the tree has {len(tips)} tip(s)", expected="a tree of at least 2 features")
    unnamed = sum(1 for name in tips if not name)
    if unnamed:
        raise ContractViolation(source, f"{unnamed} tip(s) have no name", expected="every tip named by a feature id")
    seen: set[str] = set()
    for name in tips:
        if name in seen:
            raise ContractViolation(source, f"tip {clip(name)} appears twice", expected="unique tip names")
        seen.add(name)
    for node in tree.traverse(include_self=False):
        what = f"tip {clip(node.name)}" if node.is_tip() else "an internal node"
        if node.name and not node.is_tip():
            what += f" ({clip(node.name)})"
        if node.length is None:
            raise ContractViolation(
                source,
                f"{what} has no branch length",
                expected="a branch length on every node but the root (UniFrac sums branch lengths)",
            )
        if not math.isfinite(node.length) or node.length < 0:
            raise ContractViolation(
                source, f"negative or non-finite branch length {node.length} on {what}", expected="branch lengths >= 0"
            )
    if rooted is None:
        rooted = len(tree.children) <= 2
    if not rooted:
        tree = tree.root_at_midpoint()
    return tree, rooted


def _tree_text(path: str | Path) -> tuple[str, str, bool | None]:
    """(Newick text, format, rooted as declared by a QIIME 2 artifact type or None)."""
    raw = load_bytes(path)
    if raw[:4] in ZIP_MAGICS or base_name(path).endswith(".qza"):
        if raw[:4] not in ZIP_MAGICS:
            raise ContractViolation(path, "not a zip archive", expected="a QIIME 2 artifact (.qza is a zip file)")
        typ, root, zf = open_qza(path, raw, SEQ_TREE_QZA_TYPES, "phylogeny")
        names = [n for n in zf.namelist() if PurePosixPath(n).match(f"{root}/data/tree.nwk")]
        if not names:
            raise ContractViolation(
                path, "the artifact has no tree payload", expected=f"{root}/data/tree.nwk", column="data/tree.nwk"
            )
        data = read_member(path, zf, names[0])
        return to_utf8(path, data).decode("utf-8"), "qza", SEQ_TREE_QZA_TYPES[typ]
    return to_utf8(path, raw).decode("utf-8"), "newick", None


def read_tree(path: str | Path) -> PhylogenyFile:
    """Read and validate a batch's tree file (Newick, gzipped Newick or QIIME 2 tree artifact).

    The tips are checked against the feature table separately (:func:`check_tips`): the table may be another
    file of the batch.
    """
    text, fmt, declared_rooted = _tree_text(path)
    tree, rooted = parse_newick(text, path, rooted=declared_rooted)
    return PhylogenyFile(text, tree, tuple(node.name for node in tree.tips()), rooted, fmt)


def check_tips(tips: Iterable[str], feature_ids: Iterable[str], path: str | Path) -> int:
    """Check a tree's tips against the batch's feature ids; returns how many features are tips.

    Every feature must be a tip (else UniFrac is undefined for it), and so at least one tip is a feature.
    """
    tip_set = set(tips)
    features = list(dict.fromkeys(feature_ids))
    if not features:
        raise ContractViolation(
            path,
            "the batch has no loaded feature table to check the tree against",
            expected="a feature table in the same batch folder",
        )
    missing = [f for f in features if f not in tip_set]
    if len(missing) == len(features):
        raise ContractViolation(
            path,
            f"no tip of the tree is a feature of the batch's table (e.g. tip {clip(next(iter(sorted(tip_set)), ''))}, "
            f"feature {clip(features[0])})",
            expected="a tree whose tips are the batch's feature ids",
        )
    if missing:
        shown = ", ".join(clip(m, 40) for m in missing[:5])
        raise ContractViolation(
            path,
            f"{len(missing)} feature(s) of the batch's table are not tips of the tree: {shown}"
            + (" ..." if len(missing) > 5 else ""),
            expected="every feature of the table as a tip (extra tips are allowed)",
        )
    return len(features)
