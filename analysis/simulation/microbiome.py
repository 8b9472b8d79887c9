"""16S rRNA amplicon counts: a Dirichlet-multinomial per sample, delivered in one format per batch.

Model. Each ASV has a log abundance (genus level + heavy-tailed ASV noise) and a prevalence; each patient
carries a random subset of ASVs with patient-specific deviations; each sample draws Dirichlet proportions
(gamma draws, precision ``dirichlet_precision``) from those weights plus the true effects (capsule genera up
in the capsule arm after each course, responder genera up in true responders), then multinomial counts
with a log-normal library size. Work is done in row chunks so a 20,000 x 5,000 trial never holds a dense
float matrix; counts are kept sparse.

Delivery. Batch k (``SEQ01`` ...) uses format ``SEQ_FORMATS[(k-1) % 5]``: BIOM 2.1 HDF5, mothur
``.shared`` + ``.cons.taxonomy``, classic TSV (gzipped), BIOM 1.0 JSON, QIIME 2 ``.qza`` + ``taxonomy.tsv``.
Feature ids are the ASV ids (MD5-like, as QIIME 2 names ASVs) except in the mothur batch, which numbers
OTUs ``Otu0001`` ... by abundance; ``truth/feature_map.csv`` maps every delivered id back to its ASV. Every ASV
batch also carries the study phylogeny (:func:`tree_newick`: a tree of all ASVs consistent with their lineage,
``tree.nwk``, or ``rooted-tree.qza`` in the QIIME 2 batch), the same file in each, as a core delivers a tree built
on the study's merged representative sequences; the mothur batch has none (its OTU ids are batch-local).
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import biom
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from analysis.simulation import catalogues as cat
from analysis.simulation._io import open_binary, write_csv, write_dense_int_rows, write_text, write_zip
from analysis.simulation.params import SimulationParams

SEQ_FORMATS = ("biom-hdf5", "mothur", "tsv-gz", "biom-json", "qza")
RANKS = ("d", "p", "c", "o", "f", "g", "s")
GENERATED_BY = "guttrial demo simulator"
LOG2 = np.log(2.0)


@dataclass
class AsvCatalogue:
    ids: list[str]
    genus: np.ndarray  # index into cat.GENERA
    lineage: list[tuple[str, ...]]  # true 7-rank lineage (species may be "")
    taxonomy: list[str]  # SILVA-style string as the classifier reports it
    mothur: list[str]
    confidence: np.ndarray
    mu: np.ndarray
    prevalence: np.ndarray
    role: list[str]  # gut, capsule_strain, mock_strain, contaminant


def _genus_index() -> dict[str, int]:
    return {g.name: k for k, g in enumerate(cat.GENERA)}


def build_catalogue(n_asvs: int, rng: np.random.Generator) -> AsvCatalogue:
    gi = _genus_index()
    genus: list[int] = []
    role: list[str] = []
    for name in cat.MOCK_COMMUNITY:
        genus.append(gi[name])
        role.append("mock_strain")
    for name in cat.CONTAMINANT_GENERA:
        genus.append(gi[name])
        role.append("contaminant")
    for name in cat.CAPSULE_GENERA_UP:
        genus.extend([gi[name]] * 2)
        role.extend(["capsule_strain"] * 2)
    # The reserved ASVs (mock strains, kit contaminants, capsule strains) always exist, so the catalogue
    # has at least len(RESERVED) ASVs whatever ``n_asvs`` says.
    n_rest = max(n_asvs - len(genus), 0)
    richness = np.array([g.richness for g in cat.GENERA])
    genus.extend(rng.choice(len(cat.GENERA), size=n_rest, p=richness / richness.sum()).tolist())
    role.extend(["gut"] * n_rest)
    genus_arr = np.array(genus)
    n = len(genus_arr)

    base = np.array([cat.GENERA[g].abundance for g in genus_arr])
    mu = base + rng.normal(0, 1.4, n) - rng.exponential(1.2, n)
    is_role = np.array(role)
    mu[is_role == "mock_strain"] = -6.0
    mu[is_role == "contaminant"] = -7.0
    mu[is_role == "capsule_strain"] = base[is_role == "capsule_strain"] - 1.0
    raw = 1.0 / (1.0 + np.exp(-(0.9 * (mu - np.median(mu)) - 0.5)))
    # Per-sample richness stays in the low hundreds whatever the catalogue size, as in real stool.
    target = min(0.4, 320.0 / n)
    prevalence = np.clip(raw * target / raw.mean(), 0.005, 0.95)
    prevalence[is_role == "mock_strain"] = 0.01
    prevalence[is_role == "contaminant"] = 0.003
    prevalence[is_role == "capsule_strain"] = 0.05

    ids, lineages, taxonomy, mothur = [], [], [], []
    confidence = np.round(rng.uniform(0.7, 1.0, n), 6)
    # Rare ASVs are the ones a classifier fails to resolve deeply (0 = most abundant, 1 = rarest).
    rarity = np.argsort(np.argsort(-mu)) / max(n - 1, 1)
    for j in range(n):
        g = cat.GENERA[int(genus_arr[j])]
        species = ""
        if g.species and (is_role[j] != "gut" or rng.random() < 0.35):
            species = f"{g.name}_{rng.choice(g.species)}"
        lineage = (*g.lineage, g.name, species)
        lineages.append(lineage)
        ids.append(hashlib.md5(rng.bytes(32)).hexdigest())
        # How deep the classifier resolved this ASV: index of the last resolved rank (6 = species).
        u = rng.random() / (0.2 + 1.6 * rarity[j])
        if is_role[j] != "gut":
            depth = 6 if species else 5
        elif u < 0.02:
            depth = -1  # Unassigned
        elif u < 0.05:
            depth = 2
        elif u < 0.08:
            depth = 3
        elif u < 0.20:
            depth = 4
        else:
            depth = 6 if species else 5
        if depth < 0:
            taxonomy.append("Unassigned")
            mothur.append("unknown(100);" + "unknown_unclassified(100);" * 5)
            continue
        named = [f"{RANKS[r]}__{lineage[r]}" for r in range(depth + 1)]
        style = rng.random()
        if depth < 6 and style < 0.5:
            named += [f"{RANKS[r]}__" for r in range(depth + 1, 7)]  # padded with empty ranks
        elif depth == 5 and style < 0.6:
            named.append("s__uncultured_bacterium")
        taxonomy.append("; ".join(named))
        levels = []
        for r in range(6):
            if r <= depth:
                conf = 100 if r < 4 or rng.random() < 0.6 else int(rng.integers(80, 100))
                levels.append(f"{lineage[r]}({conf});")
            else:
                levels.append(f"{lineage[depth]}_unclassified({100});")
        mothur.append("".join(levels))
    return AsvCatalogue(ids, genus_arr, lineages, taxonomy, mothur, confidence, mu, prevalence, list(role))


def _effect_vectors(catalogue: AsvCatalogue) -> tuple[np.ndarray, np.ndarray]:
    """Per-ASV natural-log effect of the capsule (at full ramp) and of being a true responder."""
    names = np.array([cat.GENERA[g].name for g in catalogue.genus])
    capsule = np.zeros(len(names))
    for name, lfc in {**cat.CAPSULE_GENERA_UP, **cat.CAPSULE_GENERA_DOWN}.items():
        capsule[names == name] = lfc * LOG2
    responder = np.zeros(len(names))
    for name, lfc in cat.RESPONDER_GENERA.items():
        responder[names == name] = lfc * LOG2
    return capsule, responder


def differential_taxa_table(catalogue: AsvCatalogue) -> pd.DataFrame:
    names = [cat.GENERA[g].name for g in catalogue.genus]
    rows = []
    for effects, contrast in (
        ({**cat.CAPSULE_GENERA_UP, **cat.CAPSULE_GENERA_DOWN}, "capsule_vs_placebo"),
        (cat.RESPONDER_GENERA, "responder_vs_nonresponder"),
    ):
        for name, lfc in effects.items():
            g = cat.GENERA[_genus_index()[name]]
            lineage = "; ".join(f"{r}__{x}" for r, x in zip(RANKS, (*g.lineage, g.name), strict=False))
            timepoints = (
                [(tp, ramp) for tp, ramp in cat.CAPSULE_RAMP.items() if tp != "baseline"]
                if contrast == "capsule_vs_placebo"
                else [("all", 1.0)]
            )
            for tp, ramp in timepoints:
                rows.append(
                    {
                        "rank": "genus",
                        "taxon": name,
                        "lineage": lineage,
                        "n_asvs": names.count(name),
                        "contrast": contrast,
                        "timepoint": tp,
                        "log2_fold_change": round(lfc * ramp, 4),
                        "direction": "up" if lfc > 0 else "down",
                    }
                )
    return pd.DataFrame(rows)


@dataclass
class SequencingResult:
    manifest: pd.DataFrame  # truth: every sequenced sample with batch, role, subject, library size
    batches: dict[str, str]  # batch -> format
    n_features: int
    files: list[Path]


def _fixed_datetime(p: SimulationParams, day: int) -> datetime:
    return datetime(p.start_date.year, p.start_date.month, p.start_date.day) + timedelta(days=int(day))


def _segments(rows: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Start offset and length of each row's run in a row-sorted triplet list (every row present)."""
    lengths = np.bincount(rows, minlength=n_rows)
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths


def _sample_entries(
    sub: pd.DataFrame,
    catalogue: AsvCatalogue,
    presence: np.ndarray,
    deviation: np.ndarray,
    effects: tuple[np.ndarray, np.ndarray, np.ndarray],
    precision: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dirichlet proportions of stool samples as sparse (row, col, p) triplets, rows sorted.

    Only the ASVs a sample carries are drawn (a few hundred of thousands), so the cost follows the number
    of non-zero cells, not samples x ASVs.
    """
    capsule_eff, responder_eff, strain_cols = effects
    n_asv = len(catalogue.ids)
    k = len(sub)
    pidx = sub["patient_index"].to_numpy().astype(int)
    ramp = np.array([cat.CAPSULE_RAMP[t] for t in sub["timepoint"].to_numpy()])
    on = (sub["arm"].to_numpy() == "CAPSULE") * ramp
    resp = sub["responder"].to_numpy().astype(float)
    rr, cc = np.nonzero(presence[pidx])
    keep = rng.random(len(rr)) > 0.1  # a tenth of a patient's ASVs are missed in any one sample
    rr, cc = rr[keep], cc[keep]
    cap_rows = np.flatnonzero(on > 0)
    if len(cap_rows) and len(strain_cols):
        # Capsule strains engraft in most capsule-arm samples after a course, whatever the baseline flora.
        er, ec = np.repeat(cap_rows, len(strain_cols)), np.tile(strain_cols, len(cap_rows))
        ok = rng.random(len(er)) < 0.85
        rr, cc = np.concatenate([rr, er[ok]]), np.concatenate([cc, ec[ok]])
    # A stool sample always has some bacteria: with tiny test catalogues a row could end up empty.
    empty = np.flatnonzero(np.bincount(rr, minlength=k) == 0)
    if len(empty):
        best = np.argmax(catalogue.mu[None, :] + deviation[pidx[empty]], axis=1)
        rr, cc = np.concatenate([rr, empty]), np.concatenate([cc, best])
    key = np.unique(rr.astype(np.int64) * n_asv + cc)
    rr, cc = (key // n_asv).astype(np.int64), (key % n_asv).astype(np.int64)
    logw = (
        catalogue.mu[cc]
        + deviation[pidx[rr], cc]
        + rng.normal(0.0, 0.5, len(rr))
        + on[rr] * capsule_eff[cc]
        + resp[rr] * responder_eff[cc]
    )
    starts, lengths = _segments(rr, k)
    weight = np.exp(logw - np.repeat(np.maximum.reduceat(logw, starts), lengths))
    alpha = precision * weight / np.repeat(np.add.reduceat(weight, starts), lengths)
    draws = rng.gamma(alpha)
    totals = np.repeat(np.add.reduceat(draws, starts), lengths)
    fallback = np.repeat(np.add.reduceat(weight, starts), lengths)
    prob = np.where(totals > 0, draws / np.where(totals > 0, totals, 1.0), weight / fallback)
    return rr, cc, prob


def _simulate_counts(
    samples: pd.DataFrame,
    catalogue: AsvCatalogue,
    presence: np.ndarray,
    deviation: np.ndarray,
    p: SimulationParams,
    rng: np.random.Generator,
) -> sp.csr_matrix:
    """Counts (samples x ASVs) for the rows of ``samples`` (columns role, patient_index, arm, responder,
    timepoint, library_size)."""
    n_asv = len(catalogue.ids)
    capsule_eff, responder_eff = _effect_vectors(catalogue)
    roles_arr = np.array(catalogue.role)
    strain_cols = np.flatnonzero(roles_arr == "capsule_strain")
    mock_cols = np.flatnonzero(roles_arr == "mock_strain")
    contam_cols = np.flatnonzero(roles_arr == "contaminant")
    mock_p = np.zeros(n_asv)
    for j in mock_cols:
        mock_p[j] = cat.MOCK_COMMUNITY[cat.GENERA[catalogue.genus[j]].name]
    mock_p = 0.998 * mock_p / mock_p.sum()
    mock_p[contam_cols] += 0.002 / len(contam_cols)
    gut = np.exp(catalogue.mu - catalogue.mu.max()) * catalogue.prevalence
    gut /= gut.sum()

    roles = samples["role"].to_numpy()
    lib = samples["library_size"].to_numpy().astype(np.int64)
    rows_out: list[np.ndarray] = []
    cols_out: list[np.ndarray] = []
    vals_out: list[np.ndarray] = []
    chunk = max(1, int(4_000_000 // max(n_asv, 1)))
    for start in range(0, len(samples), chunk):
        idx = np.arange(start, min(start + chunk, len(samples)))
        stool = idx[roles[idx] == "SAMPLE"]
        if len(stool):
            rr, cc, prob = _sample_entries(
                samples.iloc[stool],
                catalogue,
                presence,
                deviation,
                (capsule_eff, responder_eff, strain_cols),
                p.dirichlet_precision,
                rng,
            )
            starts, lengths = _segments(rr, len(stool))
            counts = np.empty(len(rr), dtype=np.int64)
            for j, (a, n) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True)):
                seg = prob[a : a + n]
                counts[a : a + n] = rng.multinomial(lib[stool[j]], seg / seg.sum())
            rows_out.append(stool[rr])
            cols_out.append(cc)
            vals_out.append(counts)
        for r in idx[roles[idx] != "SAMPLE"]:
            if roles[r] == "MOCK":
                prob_r = mock_p
            else:
                kit = np.zeros(n_asv)
                kit[contam_cols] = rng.dirichlet(np.full(len(contam_cols), 0.8))
                # Cross-talk: a tenth of a blank's reads come from the gut profile of the run.
                prob_r = 0.9 * kit + 0.1 * gut
            counts_r = rng.multinomial(lib[r], prob_r / prob_r.sum())
            nz = np.flatnonzero(counts_r)
            rows_out.append(np.full(len(nz), r))
            cols_out.append(nz)
            vals_out.append(counts_r[nz])
    if not rows_out:
        return sp.csr_matrix((len(samples), n_asv), dtype=np.int32)
    data = np.concatenate(vals_out).astype(np.int32)
    matrix = sp.csr_matrix(
        (data, (np.concatenate(rows_out), np.concatenate(cols_out))), shape=(len(samples), n_asv), dtype=np.int32
    )
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


def _biom_table(counts_obs_by_sample: sp.csr_matrix, obs_ids: list[str], sample_ids: list[str],
                taxonomy: list[str], table_id: str) -> biom.Table:  # fmt: skip
    metadata = [{"taxonomy": [x.strip() for x in t.split(";")]} for t in taxonomy]
    return biom.Table(
        counts_obs_by_sample.astype(np.float64),
        obs_ids,
        sample_ids,
        observation_metadata=metadata,
        table_id=table_id,
        type="OTU table",
    )


def _hdf5_bytes(table: biom.Table, created: datetime) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as fh:
        table.to_hdf5(fh, GENERATED_BY, compress=True, creation_date=created)
    return buffer.getvalue()


def _write_biom_json(path: Path, batch: str, counts: sp.csr_matrix, obs_ids: list[str], sample_ids: list[str],
                     taxonomy: list[str], created: datetime) -> None:  # fmt: skip
    """BIOM 1.0 (JSON, sparse). Written by hand so the date is fixed and large tables stay fast."""
    coo = counts.tocoo()
    order = np.lexsort((coo.col, coo.row))
    r, c, v = coo.row[order], coo.col[order], coo.data[order]
    rows = [{"id": o, "metadata": {"taxonomy": [x.strip() for x in t.split(";")]}} for o, t in
            zip(obs_ids, taxonomy, strict=True)]  # fmt: skip
    head = {
        "id": batch,
        "format": "Biological Observation Matrix 1.0.0",
        "format_url": "http://biom-format.org",
        "type": "OTU table",
        "generated_by": GENERATED_BY,
        "date": created.isoformat(),
        "matrix_type": "sparse",
        "matrix_element_type": "int",
        "shape": [counts.shape[0], counts.shape[1]],
        "rows": rows,
        "columns": [{"id": s, "metadata": None} for s in sample_ids],
    }
    text = json.dumps(head, separators=(",", ":"))[:-1]
    with open_binary(path) as fh:
        fh.write(text.encode())
        fh.write(b',"data":[')
        step = 500_000
        for start in range(0, len(v), step):
            part = ",".join(
                f"[{a},{b},{x}]" for a, b, x in zip(r[start : start + step].tolist(), c[start : start + step].tolist(),
                                                    v[start : start + step].tolist(), strict=True)
            )  # fmt: skip
            fh.write((b"," if start else b"") + part.encode())
        fh.write(b"]}")


#: Branch length from a taxon to its parent, by the taxon's rank (domain .. genus); tips get 0.01-0.05.
TREE_BRANCH_LENGTHS = (0.30, 0.20, 0.12, 0.10, 0.08, 0.06)


def tree_newick(catalogue: AsvCatalogue) -> str:
    """A rooted phylogeny of every ASV consistent with its true lineage (Newick; tips named by ASV id).

    Internal nodes are the taxa (domain .. genus) of ``catalogue.lineage``, joined at a root; the edge above a taxon
    has the length of its rank (:data:`TREE_BRANCH_LENGTHS`), the edge above an ASV 0.01-0.05 from the ASV id's
    MD5 (no random draw, so the other files of a seed stay byte-identical); nodes with a single child are merged
    into their child (lengths added). Deterministic: children sorted by name.
    """
    root: dict = {}
    for j, asv in enumerate(catalogue.ids):
        node = root
        for name in catalogue.lineage[j][:6]:
            node = node.setdefault(name, {})
        node[asv] = None

    def render(name: str, children: dict | None, length: float, depth: int) -> str:
        if children is None:
            tip = 0.01 + 0.04 * int(hashlib.md5(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            return f"{name}:{length + tip:.6f}"
        if len(children) == 1:  # merge a single-child node into its child
            ((child, grand),) = children.items()
            step = TREE_BRANCH_LENGTHS[depth] if grand is not None and depth < len(TREE_BRANCH_LENGTHS) else 0.0
            return render(child, grand, length + step, depth + 1)
        inner = ",".join(
            render(child, grand, TREE_BRANCH_LENGTHS[depth] if grand is not None else 0.0, depth + 1)
            for child, grand in sorted(children.items())
        )
        return f"({inner}):{length:.6f}"

    domains = [
        render(name, children, TREE_BRANCH_LENGTHS[0] if len(root) > 1 else 0.0, 1)
        for name, children in sorted(root.items())
    ]
    if len(domains) == 2:
        return f"({','.join(domains)});\n"
    # one domain (or more than two): a single zero-length edge under the root, so the root is explicit (a root
    # with three or more children is read as an unrooted tree, analysis.readers.tree)
    return f"(({','.join(domains)}):0.000000);\n" if len(domains) > 2 else f"({domains[0]});\n"


def _tree_files(batch_dir: Path, batch: str, fmt: str, newick: str) -> list[Path]:
    """The batch's copy of the study phylogeny: ``tree.nwk``, or ``rooted-tree.qza`` in the QIIME 2 batch; none in
    the mothur batch (its OTU ids are local to the batch, so a study tree of ASVs does not name them)."""
    if fmt == "mothur":
        return []
    if fmt != "qza":
        path = batch_dir / "tree.nwk"
        write_text(path, newick)
        return [path]
    path = batch_dir / "rooted-tree.qza"
    tree_uuid = str(uuid.UUID(bytes=hashlib.md5(f"{batch}:{newick}".encode()).digest(), version=4))
    version = b"QIIME 2\narchive: 5\nframework: 2024.5.0\n"
    metadata = f"uuid: {tree_uuid}\ntype: Phylogeny[Rooted]\nformat: NewickDirectoryFormat\n".encode()
    members = [("VERSION", version), ("metadata.yaml", metadata), ("data/tree.nwk", newick.encode())]
    checksums = "".join(f"{hashlib.md5(data).hexdigest()}  {name}\n" for name, data in members).encode()
    write_zip(path, [(f"{tree_uuid}/{name}", data) for name, data in [*members, ("checksums.md5", checksums)]])
    return [path]


def write_batch(
    batch_dir: Path,
    batch: str,
    fmt: str,
    counts: sp.csr_matrix,
    sample_ids: list[str],
    catalogue: AsvCatalogue,
    created: datetime,
    qza_uuid: str,
    newick: str | None = None,
) -> tuple[list[Path], pd.DataFrame]:
    """Write one batch's feature table (samples x ASVs in) in ``fmt`` (and, given ``newick``, the study
    phylogeny: :func:`_tree_files`); returns files and the feature map."""
    totals = np.asarray(counts.sum(axis=0)).ravel()
    keep = np.flatnonzero(totals > 0)  # real tables drop features unseen in the batch
    table = counts[:, keep].T.tocsr()  # features x samples
    asv_ids = [catalogue.ids[j] for j in keep]
    taxonomy = [catalogue.taxonomy[j] for j in keep]
    files: list[Path] = []
    feature_ids = asv_ids
    if fmt == "biom-hdf5":
        path = batch_dir / "feature-table.biom"
        path.write_bytes(_hdf5_bytes(_biom_table(table, asv_ids, sample_ids, taxonomy, batch), created))
        files.append(path)
    elif fmt == "biom-json":
        path = batch_dir / "otu_table.biom"
        _write_biom_json(path, batch, table, asv_ids, sample_ids, taxonomy, created)
        files.append(path)
    elif fmt == "tsv-gz":
        path = batch_dir / "feature-table.tsv.gz"
        with open_binary(path) as fh:
            fh.write(("# Constructed from biom file\n#OTU ID\t" + "\t".join(sample_ids) + "\ttaxonomy\n").encode())
            write_dense_int_rows(fh, asv_ids, table, suffixes=taxonomy)
        files.append(path)
    elif fmt == "mothur":
        # mothur numbers OTUs by decreasing size; names are zero-padded to the digits of numOtus.
        order = np.lexsort((np.arange(len(keep)), -totals[keep]))
        n_otu = len(keep)
        width = len(str(n_otu))
        feature_ids = [""] * n_otu
        for rank, pos in enumerate(order, start=1):
            feature_ids[pos] = f"Otu{rank:0{width}d}"
        ordered = table[order].T.tocsr()  # samples x OTUs, OTU columns in rank order
        shared = batch_dir / "final.opti_mcc.shared"
        with open_binary(shared) as fh:
            header = ["label", "Group", "numOtus", *[feature_ids[pos] for pos in order]]
            fh.write(("\t".join(header) + "\n").encode())
            write_dense_int_rows(fh, [f"0.03\t{s}\t{n_otu}" for s in sample_ids], ordered)
        tax = batch_dir / "final.opti_mcc.0.03.cons.taxonomy"
        lines = ["OTU\tSize\tTaxonomy"] + [
            f"{feature_ids[pos]}\t{int(totals[keep[pos]])}\t{catalogue.mothur[keep[pos]]}" for pos in order
        ]
        write_text(tax, "\n".join(lines) + "\n")
        files += [shared, tax]
    elif fmt == "qza":
        path = batch_dir / "table.qza"
        biom_bytes = _hdf5_bytes(_biom_table(table, asv_ids, sample_ids, taxonomy, batch), created)
        version = b"QIIME 2\narchive: 5\nframework: 2024.5.0\n"
        metadata = f"uuid: {qza_uuid}\ntype: FeatureTable[Frequency]\nformat: BIOMV210DirFmt\n".encode()
        members = [("VERSION", version), ("metadata.yaml", metadata), ("data/feature-table.biom", biom_bytes)]
        checksums = "".join(f"{hashlib.md5(data).hexdigest()}  {name}\n" for name, data in members).encode()
        write_zip(path, [(f"{qza_uuid}/{name}", data) for name, data in [*members, ("checksums.md5", checksums)]])
        tax_path = batch_dir / "taxonomy.tsv"
        conf = [f"{catalogue.confidence[j]:.6f}".rstrip("0").rstrip(".") for j in keep]
        tax_df = pd.DataFrame({"Feature ID": asv_ids, "Taxon": taxonomy, "Confidence": conf})
        write_csv(tax_df, tax_path, sep="\t")
        files += [path, tax_path]
    else:  # pragma: no cover - guarded by SEQ_FORMATS
        raise ValueError(fmt)
    if newick is not None:
        files += _tree_files(batch_dir, batch, fmt, newick)
    fmap = pd.DataFrame({"batch": batch, "format": fmt, "feature_id": feature_ids, "asv_id": asv_ids})
    return files, fmap


def simulate_sequencing(
    landing: Path,
    truth: Path,
    faeces: pd.DataFrame,
    orphan_barcode: str,
    n_patients: int,
    p: SimulationParams,
    rng: np.random.Generator,
) -> SequencingResult:
    catalogue = build_catalogue(p.n_asvs, rng)
    n_asv = len(catalogue.ids)
    presence = rng.random((n_patients, n_asv)) < catalogue.prevalence[None, :]
    deviation = rng.normal(0.0, 1.0, (n_patients, n_asv)).astype(np.float32)

    # 1% of specimens fail library preparation and are never delivered.
    spec = faeces[rng.random(len(faeces)) >= 0.01].sort_values(["day", "BSREFID"], kind="stable")
    spec = spec.reset_index(drop=True)
    n_batches = max(1, min(p.n_seq_batches, max(len(spec), 1)))
    parts = np.array_split(np.arange(len(spec)), n_batches)
    orphan_batch = n_batches // 2
    batch_of = np.empty(len(spec), dtype=object)
    for b, idx in enumerate(parts):
        batch_of[idx] = f"SEQ{b + 1:02d}"
    real = pd.DataFrame(
        {
            "batch": batch_of,
            "role": "SAMPLE",
            "specimen_barcode": spec["BSREFID"].to_numpy(),
            "SUBJID": spec["SUBJID"].to_numpy(),
            "patient_index": spec["patient_index"].to_numpy().astype(int),
            "arm": spec["arm"].to_numpy(),
            "responder": spec["responder"].to_numpy().astype(bool),
            "timepoint": spec["timepoint"].to_numpy(),
            "VISIT": spec["VISIT"].to_numpy(),
            "orphan": False,
        }
    )
    control = {"specimen_barcode": "", "SUBJID": "", "patient_index": -1, "arm": "", "responder": False,
               "timepoint": "", "VISIT": "", "orphan": False}  # fmt: skip
    extra: list[dict] = []
    for b in range(n_batches):
        batch = f"SEQ{b + 1:02d}"
        if b == orphan_batch and n_patients:
            # A specimen that reached the sequencing core but was never logged in the biospecimen form.
            extra.append({**control, "batch": batch, "role": "SAMPLE", "specimen_barcode": orphan_barcode,
                          "patient_index": int(rng.integers(0, n_patients)), "arm": "PLACEBO",
                          "timepoint": "baseline", "orphan": True})  # fmt: skip
        extra += [{**control, "batch": batch, "role": "NEGATIVE_CONTROL"}] * p.negative_controls_per_batch
        extra.append({**control, "batch": batch, "role": "MOCK"})
    samples = pd.concat([real, pd.DataFrame(extra, columns=real.columns)], ignore_index=True)
    # Controls are interleaved with the samples on the plate, so sample ids do not reveal the role.
    samples["_key"] = rng.random(len(samples))
    samples = samples.sort_values(["batch", "_key"], kind="stable", ignore_index=True).drop(columns="_key")
    width = max(4, len(str(len(samples))))
    samples.insert(0, "sample_id", [f"S{i:0{width}d}" for i in range(1, len(samples) + 1)])
    lib = np.exp(rng.normal(np.log(p.library_size_median), 0.55, len(samples)))
    lib = np.clip(lib, p.library_size_min, p.library_size_max)
    neg = (samples["role"] == "NEGATIVE_CONTROL").to_numpy()
    lib[neg] = np.clip(np.exp(rng.normal(np.log(150), 0.8, neg.sum())), 20, 2000)
    samples["library_size"] = np.round(lib).astype(np.int64)
    # MiSeq runs hold up to 384 libraries; bigger batches are spread over several runs.
    run_ids = []
    for b, (_batch, grp) in enumerate(samples.groupby("batch", sort=True)):
        n_runs = (len(grp) - 1) // 384 + 1
        names = [f"{(p.start_date.year % 100):02d}{b + 1:02d}{r + 1:02d}_M05123_{100 + 10 * b + r:04d}_000000000-"
                 f"{''.join(rng.choice(list('ABCDEFGHJKLMNPRSTUVWXYZ'), 5))}" for r in range(n_runs)]  # fmt: skip
        run_ids.extend(names[k // 384] for k in range(len(grp)))
    samples["run_id"] = run_ids

    counts = _simulate_counts(samples, catalogue, presence, deviation, p, rng)
    # ASVs are inferred from the reads, so every ASV of the study was seen at least once: the rarest ones
    # get a handful of reads in one stool sample (the catalogue size is then the study's feature count).
    unseen = np.flatnonzero(np.asarray(counts.sum(axis=0)).ravel() == 0)
    stool_rows = np.flatnonzero((samples["role"] == "SAMPLE").to_numpy())
    if len(unseen) and len(stool_rows):
        extra = sp.csr_matrix(
            (rng.integers(1, 6, len(unseen)).astype(np.int32), (rng.choice(stool_rows, len(unseen)), unseen)),
            shape=counts.shape,
        )
        counts = (counts + extra).tocsr()
    samples["reads"] = np.asarray(counts.sum(axis=1)).ravel()

    files: list[Path] = []
    fmaps: list[pd.DataFrame] = []
    batches: dict[str, str] = {}
    newick = tree_newick(catalogue)
    last_day = int(faeces["day"].max()) if len(faeces) else 0
    for b, batch in enumerate(sorted(samples["batch"].unique())):
        fmt = SEQ_FORMATS[b % len(SEQ_FORMATS)]
        batches[batch] = fmt
        sel = np.flatnonzero((samples["batch"] == batch).to_numpy())
        sub = samples.iloc[sel]
        batch_dir = landing / "sequencing" / batch
        batch_dir.mkdir(parents=True, exist_ok=True)
        created = _fixed_datetime(p, last_day + 30 * (b + 1))
        qza_uuid = str(uuid.UUID(bytes=rng.bytes(16), version=4))
        bfiles, fmap = write_batch(
            batch_dir, batch, fmt, counts[sel], sub["sample_id"].tolist(), catalogue, created, qza_uuid, newick
        )
        manifest = pd.DataFrame(
            {
                "sample_id": sub["sample_id"],
                "specimen_barcode": sub["specimen_barcode"],
                "sample_role": sub["role"],
                "run_id": sub["run_id"],
            }
        )
        write_csv(manifest, batch_dir / "manifest.csv")
        files += [*bfiles, batch_dir / "manifest.csv"]
        fmaps.append(fmap)

    # ---- truth
    truth.mkdir(parents=True, exist_ok=True)
    taxa = pd.DataFrame(
        {
            "asv_id": catalogue.ids,
            "role": catalogue.role,
            **{f"true_{name}": [lin[k] for lin in catalogue.lineage] for k, name in enumerate(
                ("domain", "phylum", "class", "order", "family", "genus", "species"))},
            "taxonomy_delivered": catalogue.taxonomy,
            "taxonomy_mothur": catalogue.mothur,
            "log_abundance": np.round(catalogue.mu, 4),
            "prevalence": np.round(catalogue.prevalence, 5),
        }
    )  # fmt: skip
    write_csv(taxa, truth / "taxa.csv")
    write_csv(differential_taxa_table(catalogue), truth / "differential_taxa.csv")
    mock = pd.DataFrame(
        {
            "asv_id": [catalogue.ids[j] for j, r in enumerate(catalogue.role) if r == "mock_strain"],
            "genus": [cat.GENERA[catalogue.genus[j]].name for j, r in enumerate(catalogue.role) if r == "mock_strain"],
        }
    )
    mock["expected_fraction"] = mock["genus"].map(cat.MOCK_COMMUNITY)
    write_csv(mock, truth / "mock_community.csv")
    write_csv(pd.concat(fmaps, ignore_index=True), truth / "feature_map.csv")
    seq_truth = samples.drop(columns=["patient_index"]).assign(format=samples["batch"].map(batches))
    write_csv(seq_truth, truth / "sequencing_samples.csv")
    n_features = int((np.asarray(counts.sum(axis=0)).ravel() > 0).sum())
    return SequencingResult(seq_truth, batches, n_features, files)
