"""BIOM 1.0 JSON, BIOM 2.1 HDF5 and QIIME 2 ``.qza`` feature tables.

Specs (omics.md section 6): biom-format ``doc/documentation/format_versions/biom-1.0.rst`` (JSON: ``rows``
and ``columns`` lists of ``{id, metadata}``, ``shape`` [n_obs, n_samples], ``matrix_type`` sparse
(``[row, col, value]`` triples) or dense (row lists), taxonomy in ``rows[i].metadata.taxonomy``) and
``biom-2.1.rst`` (HDF5: ``observation/ids``, ``sample/ids``, ``observation/matrix/{data,indices,indptr}``
CSR over observations, ``sample/matrix/...`` the same data CSR over samples, attribute ``shape``,
``observation/metadata/taxonomy`` an N x ranks string dataset). BIOM rows are observations (features) and
columns samples; the :class:`FeatureTable` is samples x features.

A QIIME 2 artifact (``.qza``) is a zip with one root directory named by the artifact UUID holding
``metadata.yaml`` (``type: FeatureTable[Frequency]``) and ``data/feature-table.biom`` (HDF5 2.1); the
payload is found by pattern, never by hard-coding the UUID.

HDF5 is read with h5py directly (faster than ``biom.load_table``): the ``sample/matrix`` group already is
the samples x features CSR, so no transpose is needed.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import scipy.sparse as sp

from analysis.errors import ContractViolation
from analysis.readers._text import GZIP_MAGIC, HDF5_MAGIC, first_duplicate_pos, gunzip, integral_or_float
from analysis.readers.tables import FeatureTable

try:  # orjson is several times faster on big JSON tables; the standard library is the fallback
    import orjson

    def _json_loads(data: bytes) -> Any:
        return orjson.loads(data)

    _JSON_ERRORS: tuple[type[Exception], ...] = (orjson.JSONDecodeError, ValueError)
except ImportError:  # pragma: no cover

    def _json_loads(data: bytes) -> Any:
        return json.loads(data)

    _JSON_ERRORS = (ValueError,)

#: QIIME 2 feature-table semantic types accepted, and whether their values are relative abundances.
QZA_TABLE_TYPES: dict[str, bool] = {
    "FeatureTable[Frequency]": False,
    "FeatureTable[PresenceAbsence]": False,
    "FeatureTable[RelativeFrequency]": True,
}
QZA_TAXONOMY_TYPES: tuple[str, ...] = ("FeatureData[Taxonomy]",)


# ---------------------------------------------------------------------------------------------- common


def _check_values(path, data: np.ndarray, locate, obs_ids, sample_ids, allow_float: bool) -> tuple[np.ndarray, bool]:
    """Validate the stored (non-zero) values; cast integral floats to int64.

    ``locate(i)`` maps a value's position to (observation index, sample index); it is only called to name
    an offending value, so the happy path never builds per-value index arrays.
    """

    def err(i: int, problem: str, expected: str) -> ContractViolation:
        o, s_ = locate(i)
        return ContractViolation(
            path,
            f"{problem} value {data[i].item()!r} for observation {obs_ids[o]!r}",
            expected=expected,
            column=str(sample_ids[s_]),
        )

    if data.dtype.kind not in "iuf":
        raise ContractViolation(path, f"matrix values are of type {data.dtype}", expected="numeric counts")
    if data.dtype.kind == "f":
        finite = np.isfinite(data)
        if not finite.all():
            raise err(int(np.argmin(finite)), "non-finite", "a finite number")
    neg = data < 0
    if neg.any():
        raise err(int(np.argmax(neg)), "negative", "a non-negative count")
    if data.dtype.kind in "iu":
        return data.astype(np.int64, copy=False), True
    vals, is_int = integral_or_float(
        data.reshape(-1, 1), allow_float, lambda r, c, problem, expected: err(int(r), problem, expected)
    )
    return vals.ravel(), is_int


def _check_ids(path, ids: list[str], what: str, where: str) -> None:
    dup = first_duplicate_pos(ids)
    if dup is not None:
        raise ContractViolation(
            path,
            f"duplicate {what} id {ids[dup]!r} (position {dup + 1} in {where})",
            expected=f"unique {what} ids",
            column=where,
        )
    empty = np.flatnonzero(np.array(ids, dtype=object) == "")
    if len(empty):
        raise ContractViolation(
            path, f"empty {what} id (position {int(empty[0]) + 1} in {where})", expected=f"a {what} id", column=where
        )


# ---------------------------------------------------------------------------------------------- JSON


def read_biom_json_bytes(
    path: str | Path, data: bytes, allow_relative: bool = False, fmt: str = "biom-json"
) -> FeatureTable:
    try:
        obj = _json_loads(data)
    except _JSON_ERRORS as exc:
        line = getattr(exc, "lineno", None)
        raise ContractViolation(path, f"invalid JSON ({exc})", expected="a BIOM 1.0 JSON document", row=line) from None
    if not isinstance(obj, dict):
        raise ContractViolation(path, "the JSON document is not an object", expected="a BIOM 1.0 JSON object")
    for key in ("rows", "columns", "data", "shape", "matrix_type"):
        if key not in obj:
            raise ContractViolation(
                path,
                f"BIOM JSON lacks the required key {key!r}",
                expected="the BIOM 1.0 keys rows, columns, data, shape, matrix_type",
                column=key,
            )
    obs_ids = _json_ids(path, obj["rows"], "rows")
    sample_ids = _json_ids(path, obj["columns"], "columns")
    shape = obj["shape"]
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in shape)
    ):
        raise ContractViolation(
            path, f"shape {shape!r} is not a pair of integers", expected="[n_rows, n_columns]", column="shape"
        )
    if shape != [len(obs_ids), len(sample_ids)]:
        raise ContractViolation(
            path,
            f"shape {shape} does not match {len(obs_ids)} row ids and {len(sample_ids)} column ids",
            expected="shape equal to [len(rows), len(columns)]",
            column="shape",
        )
    _check_ids(path, obs_ids, "observation", "rows")
    _check_ids(path, sample_ids, "sample", "columns")
    if obj.get("matrix_element_type") not in (None, "int", "float"):
        raise ContractViolation(
            path,
            f"matrix_element_type {obj.get('matrix_element_type')!r}",
            expected="'int' or 'float' counts",
            column="matrix_element_type",
        )
    n_obs, n_samp = shape
    mtype = obj["matrix_type"]
    raw = obj["data"]
    if not isinstance(raw, list):
        raise ContractViolation(path, "data is not a list", expected="a JSON array", column="data")
    if mtype == "sparse":
        rows, cols, vals = _sparse_triples(path, raw, n_obs, n_samp)
    elif mtype == "dense":
        rows, cols, vals = _dense_rows(path, raw, n_obs, n_samp)
    else:
        raise ContractViolation(path, f"matrix_type {mtype!r}", expected="'sparse' or 'dense'", column="matrix_type")
    vals, is_int = _check_values(path, vals, lambda i: (rows[i], cols[i]), obs_ids, sample_ids, allow_relative)
    keep = vals != 0
    counts = sp.csr_matrix((vals[keep], (cols[keep], rows[keep])), shape=(n_samp, n_obs))
    counts.sort_indices()
    tax = _json_taxonomy(obj["rows"], obs_ids)
    return FeatureTable(
        sample_ids,
        obs_ids,
        counts,
        tax,
        fmt,
        None,
        np.arange(1, n_obs + 1, dtype=np.int64),
        str(path),
        relative=not is_int,
        rows_are="features",
    )


def _json_ids(path, entries: Any, key: str) -> list[str]:
    if not isinstance(entries, list):
        raise ContractViolation(path, f"{key} is not a list", expected="a list of {id, metadata} objects", column=key)
    try:
        ids = [e["id"] for e in entries]
    except (TypeError, KeyError):
        bad = next(i for i, e in enumerate(entries) if not isinstance(e, dict) or "id" not in e)
        raise ContractViolation(
            path, f"{key}[{bad}] has no id", expected="{id, metadata} objects", column=key
        ) from None
    if not all(isinstance(i, str) for i in ids):
        bad = next(i for i, x in enumerate(ids) if not isinstance(x, str))
        raise ContractViolation(
            path, f"{key}[{bad}].id {ids[bad]!r} is not a string", expected="string ids", column=key
        )
    return ids


def _sparse_triples(path, raw: list, n_obs: int, n_samp: int):
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (ValueError, TypeError):
        bad = next((i for i, t in enumerate(raw) if not _is_numeric_triple(t)), None)
        raise ContractViolation(
            path,
            f"sparse data entry {bad} is {raw[bad]!r}"
            if bad is not None
            else "sparse data is not a list of numeric triples",
            expected="[row, column, value] number triples",
            column="data",
        ) from None
    if arr.size == 0:
        arr = arr.reshape(0, 3)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ContractViolation(
            path,
            "sparse data is not a list of [row, column, value] triples",
            expected="[row, column, value] number triples",
            column="data",
        )
    rc = arr[:, :2]
    bad = np.flatnonzero(
        (rc != np.floor(rc)).any(axis=1) | (rc[:, 0] < 0) | (rc[:, 0] >= n_obs) | (rc[:, 1] < 0) | (rc[:, 1] >= n_samp)
    )
    if len(bad):
        i = int(bad[0])
        raise ContractViolation(
            path,
            f"sparse data entry {i} {raw[i]!r} addresses a cell outside shape [{n_obs}, {n_samp}]",
            expected="0-based indices within shape",
            column="data",
        )
    rows, cols = rc[:, 0].astype(np.int64), rc[:, 1].astype(np.int64)
    key = rows * max(n_samp, 1) + cols
    dup = first_duplicate_pos(key.tolist()) if len(np.unique(key)) != len(key) else None
    if dup is not None:
        raise ContractViolation(
            path,
            f"sparse data entry {dup} repeats cell [{rows[dup]}, {cols[dup]}]",
            expected="each cell at most once",
            column="data",
        )
    return rows, cols, arr[:, 2]


def _is_numeric_triple(t: Any) -> bool:
    return (
        isinstance(t, list) and len(t) == 3 and all(isinstance(x, int | float) and not isinstance(x, bool) for x in t)
    )


def _dense_rows(path, raw: list, n_obs: int, n_samp: int):
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (ValueError, TypeError):
        arr = None
    if arr is None or (arr.shape != (n_obs, n_samp) and not (n_obs == 0 and arr.size == 0)):
        lens = [len(r) if isinstance(r, list) else -1 for r in raw]
        if len(raw) != n_obs:
            problem = f"dense data has {len(raw)} rows for {n_obs} row ids"
        else:
            bad = next((i for i, n in enumerate(lens) if n != n_samp), None)
            if bad is not None:
                problem = f"dense data row {bad} has {lens[bad]} values for {n_samp} column ids"
            else:
                bad = next(
                    i
                    for i, r in enumerate(raw)
                    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in r)
                )
                problem = f"dense data row {bad} holds a non-numeric value"
        raise ContractViolation(path, problem, expected="a numeric n_rows x n_columns matrix", column="data")
    arr = arr.reshape(n_obs, n_samp)
    rows, cols = np.nonzero(arr != 0)
    return rows.astype(np.int64), cols.astype(np.int64), arr[rows, cols]


def _json_taxonomy(entries: list, obs_ids: list[str]) -> dict[str, str] | None:
    tax = [_lineage_text(e.get("metadata")) for e in entries]
    if all(t is None for t in tax):
        return None
    return {i: t for i, t in zip(obs_ids, tax, strict=True) if t is not None}


def _lineage_text(md: Any) -> str | None:
    if not isinstance(md, dict):
        return None
    val = next((md[k] for k in ("taxonomy", "Taxonomy", "taxon", "Taxon") if k in md), None)
    if val is None:
        return None
    if isinstance(val, list):
        return "; ".join(str(x) for x in val if x is not None and str(x) != "")
    return str(val)


# ---------------------------------------------------------------------------------------------- HDF5


def read_biom_hdf5(
    path: str | Path, source: str | Path | io.BytesIO, allow_relative: bool = False, fmt: str = "biom-hdf5"
) -> FeatureTable:
    import h5py  # local: h5py is only needed for HDF5 inputs

    try:
        f = h5py.File(source, "r")
    except (OSError, ValueError) as exc:
        raise ContractViolation(path, f"corrupt or unreadable HDF5 ({exc})", expected="a BIOM 2.1 HDF5 file") from None
    try:
        with f:
            return _read_h5(path, f, allow_relative, fmt)
    except (OSError, KeyError, ValueError, TypeError) as exc:  # h5py raises these on damaged datasets
        if isinstance(exc, ContractViolation):
            raise
        raise ContractViolation(path, f"corrupt BIOM HDF5 content ({exc})", expected="a BIOM 2.1 HDF5 file") from None


def _h5_strings(ds) -> list[str]:
    if ds.dtype.kind in "SO":
        return ds.asstr()[()].tolist()  # h5py decodes UTF-8 in C
    return ds[()].astype(str).tolist()


def _read_h5(path, f, allow_relative: bool, fmt: str) -> FeatureTable:
    for name in ("observation/ids", "sample/ids"):
        if name not in f:
            raise ContractViolation(
                path, f"BIOM HDF5 lacks the dataset {name!r}", expected="a BIOM 2.1 HDF5 file", column=name
            )
    obs_ids = _h5_strings(f["observation/ids"])
    sample_ids = _h5_strings(f["sample/ids"])
    shape = f.attrs.get("shape")
    if shape is None:
        raise ContractViolation(
            path, "BIOM HDF5 lacks the 'shape' attribute", expected="a BIOM 2.1 HDF5 file", column="shape"
        )
    shape = [int(x) for x in np.asarray(shape).ravel()]
    if shape != [len(obs_ids), len(sample_ids)]:
        raise ContractViolation(
            path,
            f"shape {shape} does not match {len(obs_ids)} observation ids and {len(sample_ids)} sample ids",
            expected="shape equal to [len(observation/ids), len(sample/ids)]",
            column="shape",
        )
    _check_ids(path, obs_ids, "observation", "observation/ids")
    _check_ids(path, sample_ids, "sample", "sample/ids")
    n_obs, n_samp = shape
    # sample/matrix is CSR over samples: exactly the samples x features layout wanted.
    group, n_major, n_minor, transpose = "sample/matrix", n_samp, n_obs, False
    if not all(f"{group}/{k}" in f for k in ("data", "indices", "indptr")):
        group, n_major, n_minor, transpose = "observation/matrix", n_obs, n_samp, True
    for k in ("data", "indices", "indptr"):
        if f"{group}/{k}" not in f:
            raise ContractViolation(
                path, f"BIOM HDF5 lacks the dataset {group}/{k}", expected="a BIOM 2.1 HDF5 file", column=f"{group}/{k}"
            )
    data = f[f"{group}/data"][()]
    # biom stores int32 indices: keep them (scipy accepts them) rather than doubling memory with int64
    indices = f[f"{group}/indices"][()]
    indptr = f[f"{group}/indptr"][()]
    if indices.dtype.kind not in "iu" or indptr.dtype.kind not in "iu":
        raise ContractViolation(path, f"{group} has non-integer indices", expected="a BIOM 2.1 HDF5 file", column=group)
    if (
        len(indptr) != n_major + 1
        or indptr[0] != 0
        or indptr[-1] != len(data)
        or len(indices) != len(data)
        or (np.diff(indptr) < 0).any()
        or (len(indices) and (indices.min() < 0 or indices.max() >= n_minor))
    ):
        raise ContractViolation(
            path,
            f"{group} is not a valid CSR matrix of shape ({n_major}, {n_minor})",
            expected="indptr of length n+1, indices within the shape",
            column=group,
        )

    def locate(i: int) -> tuple[int, int]:
        major = int(np.searchsorted(indptr, i, side="right") - 1)
        return (major, int(indices[i])) if transpose else (int(indices[i]), major)

    data, is_int = _check_values(path, data, locate, obs_ids, sample_ids, allow_relative)
    mat = sp.csr_matrix((data, indices, indptr), shape=(n_major, n_minor))
    counts = mat.T.tocsr() if transpose else mat
    counts.sum_duplicates()
    counts.eliminate_zeros()
    tax = None
    tname = next(
        (f"observation/metadata/{k}" for k in ("taxonomy", "Taxonomy") if f"observation/metadata/{k}" in f), None
    )
    if tname is not None:
        tax = _h5_taxonomy(f[tname], obs_ids)
    return FeatureTable(
        sample_ids,
        obs_ids,
        counts,
        tax,
        fmt,
        None,
        np.arange(1, n_obs + 1, dtype=np.int64),
        str(path),
        relative=not is_int,
        rows_are="features",
    )


def _h5_taxonomy(ds, obs_ids: list[str]) -> dict[str, str] | None:
    arr = ds.asstr()[()] if ds.dtype.kind in "SO" else ds[()].astype(str)
    if arr.ndim == 1:
        # biom writes non-list metadata as JSON text; a list-valued category may arrive that way too
        vals = [_lineage_text({"taxonomy": json.loads(v)}) if v.startswith("[") else v for v in arr.tolist()]
        return dict(zip(obs_ids, vals, strict=True))
    # N x ranks, padded with empty strings: join the non-empty ranks rank by rank (vectorised over features)
    out = arr[:, 0].astype(str)
    for j in range(1, arr.shape[1]):
        col = arr[:, j].astype(str)
        out = np.where(col == "", out, np.char.add(np.char.add(out, "; "), col))
    return dict(zip(obs_ids, out.tolist(), strict=True))


# ---------------------------------------------------------------------------------------------- QZA


def open_qza(
    path: str | Path, raw: bytes, accept: dict[str, bool] | tuple[str, ...], want: str
) -> tuple[str, str, zipfile.ZipFile]:
    """Open a QIIME 2 artifact and check its type; returns (type, uuid root, zip)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
        names = zf.namelist()
        bad_member = zf.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise ContractViolation(path, f"corrupt zip archive ({exc})", expected="a QIIME 2 artifact (.qza)") from None
    if bad_member is not None:
        raise ContractViolation(
            path, f"corrupt zip member {bad_member!r} (CRC mismatch)", expected="a QIIME 2 artifact (.qza)"
        )
    roots = {PurePosixPath(n).parts[0] for n in names if n.strip("/")}
    if len(roots) != 1:
        raise ContractViolation(
            path,
            f"the archive has {len(roots)} top-level entries",
            expected="a QIIME 2 artifact: one root directory named by its UUID",
        )
    root = roots.pop()
    meta_name = f"{root}/metadata.yaml"
    if meta_name not in names:
        raise ContractViolation(
            path, "the archive has no metadata.yaml", expected="a QIIME 2 artifact", column=meta_name
        )
    import yaml  # local: only artifacts need it

    try:
        meta = yaml.safe_load(zf.read(meta_name).decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ContractViolation(
            path, f"unreadable metadata.yaml ({exc})", expected="a QIIME 2 artifact", column=meta_name
        ) from None
    typ = str(meta.get("type")) if isinstance(meta, dict) else "?"
    if typ not in accept:
        raise ContractViolation(
            path, f"artifact type is {typ}", expected=f"a {want} artifact ({' or '.join(accept)})", column="type"
        )
    return typ, root, zf


def read_qza_bytes(path: str | Path, raw: bytes, allow_relative: bool = False) -> FeatureTable:
    typ, root, zf = open_qza(path, raw, QZA_TABLE_TYPES, "feature table")
    payload = [n for n in zf.namelist() if PurePosixPath(n).match(f"{root}/data/*.biom")]
    if not payload:
        raise ContractViolation(
            path,
            "the artifact has no feature-table payload",
            expected=f"{root}/data/feature-table.biom",
            column="data/feature-table.biom",
        )
    inner = zf.read(payload[0])
    if inner[:2] == GZIP_MAGIC:
        inner = gunzip(path, inner)
    declared_relative = QZA_TABLE_TYPES[typ]
    relative = allow_relative or declared_relative
    if inner.startswith(HDF5_MAGIC):
        table = read_biom_hdf5(path, io.BytesIO(inner), relative, fmt="qza")
    elif inner.lstrip()[:1] == b"{":  # BIOMV100DirFmt (older artifacts) holds JSON
        table = read_biom_json_bytes(path, inner, relative, fmt="qza")
    else:
        table = None
    if table is not None:
        if declared_relative:  # FeatureTable[RelativeFrequency] stays relative even if values are whole
            table.counts, table.relative = table.counts.astype(np.float64), True
        return table
    raise ContractViolation(
        path,
        f"the payload {payload[0]!r} is neither BIOM HDF5 nor BIOM JSON",
        expected="a BIOM feature table",
        column=payload[0],
    )
