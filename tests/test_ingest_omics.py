"""Loading sequencing and metabolomics batches into raw: every format, sparse long storage, rejections."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest

from analysis.ingest import load_family
from analysis.readers import read_feature_table, read_metabolomics_table
from analysis.simulation import generate_trial


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    generate_trial(out, n_patients=12, seed=7)
    return out


@pytest.fixture
def landing(demo: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "landing"
    shutil.copytree(demo / "landing", copy)
    return copy


def test_every_sequencing_format_loads_sparse_and_exact(landing: Path, tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    report = load_family(con, landing, "sequencing", load_id="L1")
    assert report.rejected == []
    formats = set(con.execute("select distinct table_format from raw.seq_samples").fetchall())
    assert {f for (f,) in formats} >= {"biom-hdf5", "biom-json", "shared", "tsv", "qza"}
    for table_path in sorted(
        p for p in (landing / "sequencing").rglob("*") if p.is_file() and "manifest" not in p.name
    ):
        if "taxonomy" in table_path.name.lower() or "tree" in table_path.name.lower():
            continue  # taxonomy files and phylogenies (analysis/readers/tree.py) are not feature tables
        table = read_feature_table(table_path)
        rel = table_path.relative_to(landing).as_posix()
        n_rows, total = con.execute(
            "select count(*), sum(count) from raw.seq_counts where _source_file = ?", [rel]
        ).fetchone()
        assert n_rows == table.counts.nnz  # only non-zero counts are stored
        assert total == table.counts.sum()
        sizes = dict(
            con.execute("select sample_id, library_size from raw.seq_samples where _source_file = ?", [rel]).fetchall()
        )
        assert [sizes[s] for s in table.sample_ids] == table.sample_totals().tolist()


def test_metabolomics_intensities_long_and_features_kept(landing: Path, tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    report = load_family(con, landing, "metabolomics", load_id="L1")
    assert report.rejected == []
    for features in sorted((landing / "metabolomics").rglob("features.csv")):
        table = read_metabolomics_table(features)
        rel = features.relative_to(landing).as_posix()
        n, total = con.execute(
            "select count(*), sum(intensity) from raw.mtb_intensities where _source_file = ?", [rel]
        ).fetchone()
        observed = ~np.isnan(table.intensities)
        assert n == observed.sum()
        assert total == pytest.approx(np.nansum(table.intensities), rel=1e-12)
        n_features = con.execute("select count(*) from raw.mtb_features where _source_file = ?", [rel]).fetchone()[0]
        assert n_features == len(table.annotations)  # unannotated and all-missing features are kept


def test_bad_batch_is_rejected_with_row_and_column_and_others_load(landing: Path, tmp_path: Path) -> None:
    tsv = next((landing / "sequencing").rglob("*.tsv.gz"))
    lines = gzip.decompress(tsv.read_bytes()).decode().splitlines()
    header_index = max(i for i, line in enumerate(lines) if line.startswith("#"))
    fields = lines[header_index + 1].split("\t")
    fields[1] = "-3"
    lines[header_index + 1] = "\t".join(fields)
    tsv.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    report = load_family(con, landing, "sequencing", load_id="L1")
    bad, *cascade = report.rejected
    assert bad.path == tsv.relative_to(landing).as_posix()
    assert f"row {header_index + 2}" in (bad.reason or "") and "negative" in (bad.reason or "").lower()
    # the batch's phylogeny cannot be checked against a rejected table, so it waits with it
    assert [(o.path, "no loaded feature table" in (o.reason or "")) for o in cascade] == [
        (bad.path.rsplit("/", 1)[0] + "/tree.nwk", True)
    ]
    loaded = {o.path for o in report.outcomes if o.status == "loaded"}
    assert len(loaded) == len(report.outcomes) - 2
    assert con.execute("select count(*) from raw.seq_counts where _source_file = ?", [bad.path]).fetchone() == (0,)


def test_reloading_sequencing_is_idempotent(landing: Path, tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    load_family(con, landing, "sequencing", load_id="L1")
    before = con.execute("select count(*), sum(count) from raw.seq_counts").fetchone()
    report = load_family(con, landing, "sequencing", load_id="L2")
    assert {o.status for o in report.outcomes} == {"unchanged"}
    assert con.execute("select count(*), sum(count) from raw.seq_counts").fetchone() == before
