"""Phylogenetic tree files of a sequencing batch (analysis.readers.tree): Newick, gzipped Newick and QIIME 2
tree artifacts; rejections naming the file and what was expected; rooting; the loader's check against the batch's
feature table (raw.seq_trees); landing classification; the simulator's tree."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import duckdb
import numpy as np
import pytest

from analysis.errors import ContractViolation
from analysis.ingest import load_family
from analysis.ingest.landing import _classify_sequencing
from analysis.readers.tree import check_tips, newick_sha256, parse_newick, read_tree

ROOTED = "((a:1,b:2):0.5,(c:1,d:1):0.5);\n"
#: FastTree/RAxML style: an unrooted tree written with a basal trifurcation
UNROOTED = "(a:1,b:2,(c:1,d:3):0.5);\n"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def qza(path: Path, newick: str, typ: str = "Phylogeny[Rooted]", payload: str = "data/tree.nwk") -> Path:
    root = "3f1c2b7e-0000-4000-8000-000000000001"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{root}/VERSION", "QIIME 2\narchive: 5\nframework: 2024.5.0\n")
        zf.writestr(f"{root}/metadata.yaml", f"uuid: {root}\ntype: {typ}\nformat: NewickDirectoryFormat\n")
        zf.writestr(f"{root}/{payload}", newick)
    return path


def tip_distances(tree: object) -> dict[tuple[str, str], float]:
    tips = sorted(t.name for t in tree.tips())
    return {(a, b): tree.find(a).distance(tree.find(b)) for i, a in enumerate(tips) for b in tips[i + 1 :]}


# ------------------------------------------------------------------------------------------------ formats


def test_reads_newick_gzipped_newick_and_qiime2_artifacts(tmp_path: Path) -> None:
    plain = read_tree(write(tmp_path / "tree.nwk", ROOTED))
    assert plain.format == "newick" and plain.rooted and sorted(plain.tips) == ["a", "b", "c", "d"]
    assert plain.tree.find("b").length == 2.0 and len(plain.tree.children) == 2
    assert plain.sha256 == newick_sha256(ROOTED.strip())
    packed = read_tree(write(tmp_path / "tree.tre.gz", gzip.compress(ROOTED.encode())))
    assert packed.newick == plain.newick and packed.tips == plain.tips
    artifact = read_tree(qza(tmp_path / "rooted-tree.qza", ROOTED))
    assert artifact.format == "qza" and artifact.rooted and artifact.sha256 == plain.sha256
    # labels are literal: underscores stay (scikit-bio's default would turn them into spaces)
    assert set(read_tree(write(tmp_path / "u.nwk", "(ASV_1:1,ASV_2:1);")).tips) == {"ASV_1", "ASV_2"}


def test_unrooted_trees_are_midpoint_rooted(tmp_path: Path) -> None:
    tree, rooted = parse_newick(UNROOTED)
    assert not rooted and len(tree.children) == 2
    # the root sits at the middle of the longest tip-to-tip path (b to d: 2 + 0.5 + 3 = 5.5)
    assert tree.find("d").distance(tree) == pytest.approx(2.75) and tree.find("b").distance(tree) == pytest.approx(2.75)
    original, _ = parse_newick(UNROOTED, rooted=True)
    assert tip_distances(tree) == pytest.approx(tip_distances(original))  # rooting moves no tip
    declared = read_tree(qza(tmp_path / "unrooted-tree.qza", ROOTED, typ="Phylogeny[Unrooted]"))
    assert not declared.rooted
    # a rooted artifact keeps a multifurcating root; a unary root marks a Newick tree as rooted
    assert read_tree(qza(tmp_path / "multi-tree.qza", UNROOTED)).rooted
    assert parse_newick("((a:1,b:1,c:1):0);")[1]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("((a:1,b:2):0.5,(c:1,d:1):0.5", "does not end with ';'"),
        ("((a:1,b:2):0.5,(c:1,d:1):0.5;", "not a parsable Newick"),
        ("(a:1,b:x);", "not a parsable Newick"),
        ("(a:1,b:1);(c:1,d:1);", "one tree per file"),
        ("", "empty tree file"),
        ("(a:1,b:-2);", "negative or non-finite branch length -2.0 on tip 'b'"),
        ("((a:1,b:1):-0.5,c:1);", "negative or non-finite branch length -0.5 on an internal node"),
        ("(a:1,b);", "tip 'b' has no branch length"),
        ("(a:1,a:2);", "tip 'a' appears twice"),
        ("(a:1,:2);", "have no name"),
        ("(a:1);", "1 tip"),
    ],
)
def test_rejects_bad_newick_naming_file_and_expectation(tmp_path: Path, text: str, match: str) -> None:
    path = write(tmp_path / "bad.nwk", text)
    with pytest.raises(ContractViolation, match=match) as err:
        read_tree(path)
    assert err.value.file == path and err.value.expected  # the file and what was expected are named
    assert str(path) in str(err.value)


def test_rejects_bad_artifacts(tmp_path: Path) -> None:
    with pytest.raises(ContractViolation, match="artifact type is FeatureData\\[Taxonomy\\]"):
        read_tree(qza(tmp_path / "wrong-tree.qza", ROOTED, typ="FeatureData[Taxonomy]"))
    with pytest.raises(ContractViolation, match="no tree payload"):
        read_tree(qza(tmp_path / "empty-tree.qza", ROOTED, payload="data/other.txt"))
    with pytest.raises(ContractViolation, match="not a zip archive"):
        read_tree(write(tmp_path / "fake-tree.qza", ROOTED))
    with pytest.raises(ContractViolation, match="not valid UTF-8"):
        read_tree(write(tmp_path / "latin.nwk", "(a\xe9:1,b:1);".encode("latin-1")))


def test_tips_are_checked_against_the_feature_table(tmp_path: Path) -> None:
    path = tmp_path / "tree.nwk"
    tips = ("a", "b", "c", "d")
    assert check_tips(tips, ["a", "c"], path) == 2  # extra tips are allowed (a study-wide tree)
    with pytest.raises(ContractViolation, match=r"2 feature\(s\) of the batch's table are not tips.*'e', 'f'"):
        check_tips(tips, ["a", "e", "f"], path)
    with pytest.raises(ContractViolation, match="no tip of the tree is a feature"):
        check_tips(tips, ["x", "y"], path)
    with pytest.raises(ContractViolation, match="no loaded feature table"):
        check_tips(tips, [], path)


# ------------------------------------------------------------------------------------------------ landing, raw


def test_tree_files_are_classified_before_feature_tables() -> None:
    for name in ("tree.nwk", "tree.tre", "rooted.tree", "x.newick", "tree.nwk.gz", "rooted-tree.qza", "tree.qza"):
        assert _classify_sequencing(name) == "seq_tree", name
    assert _classify_sequencing("table.qza") == "seq_table"
    assert _classify_sequencing("taxonomy.qza") == "seq_taxonomy"


def landing(tmp_path: Path, tree: str | None, name: str = "tree.nwk") -> Path:
    root = tmp_path / "landing"
    table = "# Constructed from biom file\n#OTU ID\tS1\tS2\na\t5\t0\nb\t1\t3\nc\t0\t7\n"
    write(root / "sequencing" / "B1" / "feature-table.tsv", table)
    write(
        root / "sequencing" / "B1" / "manifest.csv",
        "sample_id,specimen_barcode,sample_role\nS1,X1,SAMPLE\nS2,X2,SAMPLE\n",
    )
    if tree is not None:
        # "z" sorts after the table: trees load last whatever their name
        write(root / "sequencing" / "B1" / name, tree)
    return root


def test_loader_checks_the_tree_against_the_batch_table(tmp_path: Path) -> None:
    con = duckdb.connect()
    report = load_family(con, landing(tmp_path / "ok", "(((a:1,b:1):1,c:2):0.5,d:3);", name="a-tree.nwk"), "sequencing")
    assert [o.status for o in report.outcomes] == ["loaded", "loaded", "loaded"]
    assert report.outcomes[-1].path == "sequencing/B1/a-tree.nwk"  # after the table, although named before it
    row = con.execute(
        "select batch_id, tree_format, n_tips, n_table_features, rooted, newick from raw.seq_trees"
    ).fetchone()
    assert row[:5] == ("B1", "newick", 4, 3, "Y") and row[5].startswith("(((a:1")
    assert report.current_rows["seq_trees"] == 1

    bad = duckdb.connect()
    report = load_family(bad, landing(tmp_path / "missing", "((a:1,b:1):1,x:2);"), "sequencing")
    tree = report.outcomes[-1]
    assert tree.status == "rejected" and tree.path == "sequencing/B1/tree.nwk"
    assert "sequencing/B1/tree.nwk" in tree.reason and "'c'" in tree.reason and "expected every feature" in tree.reason
    assert [o.status for o in report.outcomes[:2]] == ["loaded", "loaded"]  # the rest of the batch still loads
    assert bad.execute("select count(*) from raw.seq_trees").fetchone()[0] == 0

    report = load_family(duckdb.connect(), landing(tmp_path / "negative", "((a:1,b:-1):1,c:2);"), "sequencing")
    assert report.outcomes[-1].status == "rejected" and "negative" in report.outcomes[-1].reason
    alone = tmp_path / "alone" / "landing"
    write(alone / "sequencing" / "B2" / "tree.nwk", ROOTED)
    report = load_family(duckdb.connect(), alone, "sequencing")
    assert report.outcomes[0].status == "rejected" and "no loaded feature table" in report.outcomes[0].reason


# ------------------------------------------------------------------------------------------------ simulator


def test_simulated_tree_follows_the_taxonomy() -> None:
    from analysis.simulation.microbiome import TREE_BRANCH_LENGTHS, build_catalogue, tree_newick

    catalogue = build_catalogue(300, np.random.default_rng(3))
    text = tree_newick(catalogue)
    assert text == tree_newick(catalogue)  # deterministic, no random draw
    tree, rooted = parse_newick(text)
    assert rooted and sorted(t.name for t in tree.tips()) == sorted(catalogue.ids)
    lineage = dict(zip(catalogue.ids, catalogue.lineage, strict=True))
    rng = np.random.default_rng(0)
    pairs = rng.choice(len(catalogue.ids), size=(300, 2))
    for i, j in pairs:
        a, b = catalogue.ids[i], catalogue.ids[j]
        if a == b:
            continue
        shared = next((k for k in range(6) if lineage[a][k] != lineage[b][k]), 6)  # first rank where they differ
        distance = tree.find(a).distance(tree.find(b))
        if shared == 6:  # same genus: two tip branches (0.01-0.05 each)
            assert 0.02 <= distance <= 0.1
        else:  # they meet at the parent of the rank where their lineages split: the edges of that rank and
            # every rank below it on both sides, plus two tip branches (single-child nodes merge, sums are kept)
            inner = 2 * sum(TREE_BRANCH_LENGTHS[shared:])
            assert inner + 0.02 - 1e-9 <= distance <= inner + 0.1 + 1e-9, (shared, distance)
