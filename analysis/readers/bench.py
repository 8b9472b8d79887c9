"""Micro benchmark of :func:`read_feature_table` on large generated tables.

Run ``python -m analysis.readers.bench [--workdir DIR] [--repeat N]``. It writes, once per work dir:

* ``bench.shared``: a mothur .shared of 5,000 groups x 5,000 OTUs, 10 % non-zero counts (~55 MB);
* ``bench.biom``: a BIOM 2.1 HDF5 table of 20,000 samples x 5,000 observations, 10 % non-zero, written
  by biom-format's own ``Table.to_hdf5``;
* with ``--tsv``, ``bench_otu_table.tsv``: the 20,000 x 5,000 shape as a classic ``#OTU ID`` text table
  with a taxonomy column (~230 MB);

then reads each file ``N`` times, every read in a fresh Python process, and reports the best wall time
(and its CPU time, since the machine may be shared) and the peak resident memory of the reading process
(``VmHWM``), also as the increase over its baseline after imports.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp


def _random_counts(n_rows: int, n_cols: int, density: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    nnz_per_row = rng.binomial(n_cols, density, size=n_rows)
    indptr = np.concatenate(([0], np.cumsum(nnz_per_row)))
    cols = np.concatenate([np.sort(rng.choice(n_cols, k, replace=False)) for k in nnz_per_row])
    data = rng.geometric(0.02, size=len(cols)).astype(np.int64)  # heavy-ish tail like OTU counts
    return sp.csr_matrix((data, cols, indptr), shape=(n_rows, n_cols))


def write_shared(path: Path, n_groups: int = 5000, n_otus: int = 5000, density: float = 0.1, seed: int = 0) -> None:
    """Write a mothur .shared (label 0.03) the way mothur lays it out. A data generator, not a reader:
    plain per-row string joins are fine here (a few seconds, once per work dir)."""
    mat = _random_counts(n_groups, n_otus, density, seed).toarray()
    width = len(str(n_otus))
    with open(path, "w") as fh:
        fh.write("label\tGroup\tnumOtus\t" + "\t".join(f"Otu{i:0{width}d}" for i in range(1, n_otus + 1)) + "\n")
        for g in range(n_groups):
            fh.write(f"0.03\tG{g:05d}\t{n_otus}\t" + "\t".join(map(str, mat[g].tolist())) + "\n")


def write_classic_tsv(
    path: Path, n_samples: int = 20000, n_features: int = 5000, density: float = 0.1, seed: int = 2
) -> None:
    """Write a classic ``#OTU ID`` table (features as rows, one column per sample) with a taxonomy column."""
    mat = _random_counts(n_features, n_samples, density, seed).toarray()
    with open(path, "w") as fh:
        fh.write("# Constructed from biom file\n#OTU ID\t" + "\t".join(f"S{i:05d}" for i in range(n_samples)))
        fh.write("\ttaxonomy\n")
        for f in range(n_features):
            tax = f"k__Bacteria; p__P{f % 9}; c__C{f % 17}; o__O{f % 29}; f__F{f % 53}; g__G{f % 97}; s__"
            fh.write(f"ASV{f:05d}\t" + "\t".join(map(str, mat[f].tolist())) + f"\t{tax}\n")


def write_biom_hdf5(path: Path, n_samples: int = 20000, n_obs: int = 5000, density: float = 0.1, seed: int = 1) -> None:
    import biom
    import h5py

    mat = _random_counts(n_obs, n_samples, density, seed).astype(np.float64)
    table = biom.Table(mat.tocsr(), [f"ASV{i}" for i in range(n_obs)], [f"S{i:05d}" for i in range(n_samples)])
    with h5py.File(path, "w") as fh:
        table.to_hdf5(fh, "guttrial-bench")


_CHILD = """
import json, sys, time
from analysis.readers import read_feature_table

def hwm_mb():
    # VmHWM (peak RSS) is per address space and restarts at exec, unlike ru_maxrss which a child
    # inherits from the process that forked it
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")

base = hwm_mb()
t0 = time.perf_counter(); c0 = time.process_time()
ft = read_feature_table(sys.argv[1])
wall = time.perf_counter() - t0; cpu = time.process_time() - c0
peak = hwm_mb()
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak, "delta_rss_mb": peak - base,
                  "shape": list(ft.shape), "nnz": int(ft.counts.nnz)}))
"""


def time_read(path: Path, repeat: int = 3) -> dict:
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["wall_s"])
    return {
        "file": str(path),
        "bytes": path.stat().st_size,
        "best_wall_s": round(best["wall_s"], 3),
        "wall_s_all": [round(r["wall_s"], 3) for r in runs],
        "cpu_s": round(best["cpu_s"], 3),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1),
        "delta_rss_mb": round(max(r["delta_rss_mb"] for r in runs), 1),
        "shape": best["shape"],
        "nnz": best["nnz"],
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/guttrial-readers-bench"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tsv", action="store_true", help="also a 20,000-sample x 5,000-ASV classic TSV (~230 MB)")
    args = ap.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    shared, h5 = args.workdir / "bench.shared", args.workdir / "bench.biom"
    jobs = [(shared, write_shared), (h5, write_biom_hdf5)]
    if args.tsv:
        jobs.append((args.workdir / "bench_otu_table.tsv", write_classic_tsv))
    for path, writer in jobs:
        if not path.exists():
            t = time.perf_counter()
            writer(path)
            print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t:.1f} s")
    for path, _ in jobs:
        print(json.dumps(time_read(path, args.repeat)))


if __name__ == "__main__":
    main()
