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
import struct
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import scipy.sparse as sp

from analysis.contract import MAX_COMPRESSION_RATIO, MAX_DECOMPRESSED_BYTES
from analysis.errors import ContractViolation
from analysis.readers._text import (
    GZIP_MAGIC,
    HDF5_MAGIC,
    ZIP_MAGICS,
    clip,
    first_duplicate_pos,
    gunzip,
    integral_or_float,
    short,
)
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


def _check_values(
    path, data: np.ndarray, locate, obs_ids, sample_ids, allow_float: bool, where: str = "data"
) -> tuple[np.ndarray, bool]:
    """Validate the stored (non-zero) values; cast integral floats to int64.

    ``locate(i)`` maps a value's position to (observation index, sample index); it is only called to name
    an offending value, so the happy path never builds per-value index arrays. ``where`` names the values'
    dataset (HDF5) or key (JSON) in the message.
    """

    def err(i: int, problem: str, expected: str) -> ContractViolation:
        o, s_ = locate(i)
        return ContractViolation(
            path,
            f"{problem} value {clip(data[i].item())} for observation {clip(obs_ids[o])} (in {where})",
            expected=expected,
            column=short(sample_ids[s_]),
        )

    if data.dtype.kind not in "iuf":
        raise ContractViolation(
            path, f"matrix values in {where} are of type {data.dtype}", expected="numeric counts", column=where
        )
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
            f"duplicate {what} id {clip(ids[dup])} (position {dup + 1} in {where})",
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
                f"BIOM JSON lacks the required key {clip(key)}",
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
            path, f"shape {clip(shape)} is not a pair of integers", expected="[n_rows, n_columns]", column="shape"
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
            f"matrix_element_type {clip(obj.get('matrix_element_type'))}",
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
        raise ContractViolation(
            path, f"matrix_type {clip(mtype)}", expected="'sparse' or 'dense'", column="matrix_type"
        )
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
            path, f"{key}[{bad}].id {clip(ids[bad])} is not a string", expected="string ids", column=key
        )
    return ids


def _sparse_triples(path, raw: list, n_obs: int, n_samp: int):
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (ValueError, TypeError):
        bad = next((i for i, t in enumerate(raw) if not _is_numeric_triple(t)), None)
        raise ContractViolation(
            path,
            f"sparse data entry {bad} is {clip(raw[bad])}"
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
            f"sparse data entry {i} {clip(raw[i])} addresses a cell outside shape [{n_obs}, {n_samp}]",
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


#: What h5py raises on a damaged file (corrupt B-trees and heaps, truncated datasets, a group where a dataset
#: should be, undecodable strings). Any of them rejects the file naming the dataset being read.
_H5_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    KeyError,
    ValueError,
    TypeError,
    RuntimeError,
    IndexError,
    AttributeError,
    OverflowError,
)
#: Above this many declared bytes a dataset must also store at least 1/MAX_COMPRESSION_RATIO of them.
_H5_RATIO_FLOOR = 64 * 1024**2


class _Where:
    """The HDF5 object being read, so that a library error can name it."""

    name = "the file structure"


def read_biom_hdf5(
    path: str | Path, source: str | Path | io.BytesIO, allow_relative: bool = False, fmt: str = "biom-hdf5"
) -> FeatureTable:
    import h5py  # local: h5py is only needed for HDF5 inputs

    try:
        f = h5py.File(source, "r")
    except _H5_ERRORS as exc:
        raise ContractViolation(path, f"corrupt or unreadable HDF5 ({exc})", expected="a BIOM 2.1 HDF5 file") from None
    where = _Where()
    try:
        with f:
            return _read_h5(path, f, allow_relative, fmt, where)
    except ContractViolation:
        raise
    except _H5_ERRORS as exc:
        raise ContractViolation(
            path,
            f"corrupt BIOM HDF5 content while reading {where.name} ({type(exc).__name__}: {clip(str(exc), 200)})",
            expected="a BIOM 2.1 HDF5 file",
        ) from None


def _h5_dataset(path, f, name: str, where: _Where, *, required: bool = True):
    """The dataset ``name`` (metadata only, nothing read), or None when absent and not required."""
    import h5py

    where.name = name
    obj = f.get(name)
    if obj is None:
        if not required:
            return None
        raise ContractViolation(
            path, f"BIOM HDF5 lacks the dataset {clip(name)}", expected="a BIOM 2.1 HDF5 file", column=name
        )
    if not isinstance(obj, h5py.Dataset):
        raise ContractViolation(
            path, f"{name} is a {type(obj).__name__}, not a dataset", expected="a BIOM 2.1 HDF5 file", column=name
        )
    return obj


def _h5_read(path, ds, name: str, where: _Where, ndim: int = 1) -> np.ndarray:
    """A whole dataset, read after :func:`_h5_guard`."""
    _h5_guard(path, ds, name, where, ndim)
    return ds[()]


def _h5_guard(path, ds, name: str, where: _Where, ndim: int = 1) -> None:
    """Check, from metadata alone, that a dataset has the dimensions wanted and is not a bomb.

    A chunked dataset may declare 10**9 elements while storing none (the fill value stands for them), and a
    compressed one may expand a thousandfold: both are refused before a byte is allocated.
    """
    where.name = name
    if ds.ndim != ndim:
        raise ContractViolation(
            path,
            f"{name} has {ds.ndim} dimension(s) {tuple(ds.shape)}",
            expected=f"a {ndim}-dimensional dataset",
            column=name,
        )
    declared = int(np.prod(ds.shape, dtype=object)) * max(int(ds.dtype.itemsize), 8)
    if declared > MAX_DECOMPRESSED_BYTES:
        raise ContractViolation(
            path,
            f"{name} declares {tuple(ds.shape)} elements ({declared:,} bytes)",
            expected=f"datasets of at most {MAX_DECOMPRESSED_BYTES:,} bytes",
            column=name,
        )
    if declared > _H5_RATIO_FLOOR:
        stored = int(ds.id.get_storage_size())
        if stored * MAX_COMPRESSION_RATIO < declared:
            raise ContractViolation(
                path,
                f"{name} declares {declared:,} bytes but stores {stored:,} (a decompression bomb or a dataset "
                "that was never written)",
                expected=f"at most {MAX_COMPRESSION_RATIO}x compression",
                column=name,
            )


def _h5_strings(path, ds, name: str, where: _Where) -> list[str]:
    _h5_guard(path, ds, name, where)
    if ds.dtype.kind in "SO":
        try:
            return ds.asstr()[()].tolist()  # h5py decodes UTF-8 in C
        except UnicodeDecodeError as exc:
            raise ContractViolation(
                path, f"{name} holds text that is not UTF-8 ({exc.reason})", expected="UTF-8 ids", column=name
            ) from None
    if ds.dtype.kind not in "iuU":
        raise ContractViolation(path, f"{name} holds {ds.dtype} values", expected="string ids", column=name)
    return ds[()].astype(str).tolist()


def _h5_shape(path, f, where: _Where) -> list[int]:
    where.name = "the 'shape' attribute"
    raw = f.attrs.get("shape")
    if raw is None:
        raise ContractViolation(
            path, "BIOM HDF5 lacks the 'shape' attribute", expected="a BIOM 2.1 HDF5 file", column="shape"
        )
    arr = np.asarray(raw)
    ok = arr.size == 2 and (
        arr.dtype.kind in "iu" or (arr.dtype.kind == "f" and bool(np.all(np.isfinite(arr) & (arr == np.floor(arr)))))
    )
    if not ok or (arr < 0).any():
        raise ContractViolation(
            path,
            f"the shape attribute {clip(arr.tolist())} is not a pair of non-negative integers",
            expected="[n_observations, n_samples]",
            column="shape",
        )
    return [int(x) for x in arr.ravel()]


def _read_h5(path, f, allow_relative: bool, fmt: str, where: _Where) -> FeatureTable:
    obs_ds = _h5_dataset(path, f, "observation/ids", where)
    sample_ds = _h5_dataset(path, f, "sample/ids", where)
    _h5_guard(path, obs_ds, "observation/ids", where)
    _h5_guard(path, sample_ds, "sample/ids", where)
    shape = _h5_shape(path, f, where)
    n_ids = [obs_ds.shape[0], sample_ds.shape[0]]
    if shape != n_ids:  # compared on metadata first: a lying shape never makes us read giant id lists
        raise ContractViolation(
            path,
            f"shape {shape} does not match {n_ids[0]} observation ids and {n_ids[1]} sample ids",
            expected="shape equal to [len(observation/ids), len(sample/ids)]",
            column="shape",
        )
    obs_ids = _h5_strings(path, obs_ds, "observation/ids", where)
    sample_ids = _h5_strings(path, sample_ds, "sample/ids", where)
    _check_ids(path, obs_ids, "observation", "observation/ids")
    _check_ids(path, sample_ids, "sample", "sample/ids")
    n_obs, n_samp = shape
    # sample/matrix is CSR over samples: exactly the samples x features layout wanted.
    group, n_major, n_minor, transpose = "sample/matrix", n_samp, n_obs, False
    if not all(f"{group}/{k}" in f for k in ("data", "indices", "indptr")):
        group, n_major, n_minor, transpose = "observation/matrix", n_obs, n_samp, True
    ds = {k: _h5_dataset(path, f, f"{group}/{k}", where) for k in ("data", "indices", "indptr")}
    for k in ("data", "indices", "indptr"):
        if ds[k].ndim != 1:
            raise ContractViolation(
                path,
                f"{group}/{k} has shape {tuple(ds[k].shape)}",
                expected="a one-dimensional dataset",
                column=f"{group}/{k}",
            )
    if ds["indptr"].shape[0] != n_major + 1:
        raise ContractViolation(
            path,
            f"{group}/indptr has {ds['indptr'].shape[0]} entries for {n_major} rows",
            expected=f"{n_major + 1} entries (rows + 1) for a CSR matrix of shape ({n_major}, {n_minor})",
            column=f"{group}/indptr",
        )
    if ds["indices"].shape[0] != ds["data"].shape[0]:
        raise ContractViolation(
            path,
            f"{group}/indices has {ds['indices'].shape[0]} entries but {group}/data has {ds['data'].shape[0]}",
            expected="one column index per stored value",
            column=f"{group}/indices",
        )
    for k in ("indices", "indptr"):
        if ds[k].dtype.kind not in "iu":
            raise ContractViolation(
                path,
                f"{group}/{k} holds {ds[k].dtype} values",
                expected="integer indices (a BIOM 2.1 HDF5 file)",
                column=f"{group}/{k}",
            )
    data = _h5_read(path, ds["data"], f"{group}/data", where)
    # biom stores int32 indices: keep them (scipy accepts them) rather than doubling memory with int64
    indices = _h5_read(path, ds["indices"], f"{group}/indices", where)
    indptr = _h5_read(path, ds["indptr"], f"{group}/indptr", where)
    where.name = group
    steps = np.diff(indptr.astype(np.int64))
    if indptr[0] != 0 or indptr[-1] != len(data) or (steps < 0).any():
        raise ContractViolation(
            path,
            f"{group}/indptr is not a valid CSR row pointer (first {int(indptr[0])}, last {int(indptr[-1])}, "
            f"{len(data)} stored values{', decreasing' if (steps < 0).any() else ''})",
            expected="non-decreasing offsets from 0 to the number of stored values",
            column=f"{group}/indptr",
        )
    if len(indices) and (indices.min() < 0 or indices.max() >= n_minor):
        bad = int(np.flatnonzero((indices < 0) | (indices >= n_minor))[0])
        raise ContractViolation(
            path,
            f"{group}/indices[{bad}] = {int(indices[bad])} is outside 0..{n_minor - 1}",
            expected=f"column indices within the shape ({n_major}, {n_minor})",
            column=f"{group}/indices",
        )

    def locate(i: int) -> tuple[int, int]:
        major = int(np.searchsorted(indptr, i, side="right") - 1)
        return (major, int(indices[i])) if transpose else (int(indices[i]), major)

    data, is_int = _check_values(path, data, locate, obs_ids, sample_ids, allow_relative, f"{group}/data")
    mat = sp.csr_matrix((data, indices, indptr), shape=(n_major, n_minor))
    counts = mat.T.tocsr() if transpose else mat
    counts.sum_duplicates()
    counts.eliminate_zeros()
    tax = None
    tname = next(
        (f"observation/metadata/{k}" for k in ("taxonomy", "Taxonomy") if f"observation/metadata/{k}" in f), None
    )
    if tname is not None:
        tax = _h5_taxonomy(path, _h5_dataset(path, f, tname, where), tname, obs_ids, where)
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


def _h5_taxonomy(path, ds, name: str, obs_ids: list[str], where: _Where) -> dict[str, str] | None:
    if ds.ndim not in (1, 2) or ds.shape[0] != len(obs_ids) or (ds.ndim == 2 and ds.shape[1] == 0):
        raise ContractViolation(
            path,
            f"{name} has shape {tuple(ds.shape)} for {len(obs_ids)} observations",
            expected="one lineage (or one row of ranks) per observation",
            column=name,
        )
    _h5_guard(path, ds, name, where, ndim=ds.ndim)
    try:
        arr = ds.asstr()[()] if ds.dtype.kind in "SO" else ds[()].astype(str)
    except UnicodeDecodeError as exc:
        raise ContractViolation(
            path, f"{name} holds text that is not UTF-8 ({exc.reason})", expected="UTF-8 lineages", column=name
        ) from None
    if arr.ndim == 1:
        # biom writes non-list metadata as JSON text; a list-valued category may arrive that way too
        vals = [_json_lineage(v) if v.startswith("[") else v for v in arr.tolist()]
        return dict(zip(obs_ids, vals, strict=True))
    # N x ranks, padded with empty strings: join the non-empty ranks rank by rank (vectorised over features)
    out = arr[:, 0].astype(str)
    for j in range(1, arr.shape[1]):
        col = arr[:, j].astype(str)
        out = np.where(col == "", out, np.char.add(np.char.add(out, "; "), col))
    return dict(zip(obs_ids, out.tolist(), strict=True))


def _json_lineage(text: str) -> str | None:
    """A lineage stored as JSON list text; text that only looks like JSON is kept as delivered."""
    try:
        return _lineage_text({"taxonomy": json.loads(text)})
    except ValueError:
        return text


# ---------------------------------------------------------------------------------------------- QZA


#: What zipfile and its decompressors raise on a damaged archive (bad headers, CRC errors, truncated streams,
#: unsupported methods, undecodable names).
_ZIP_ERRORS: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    OSError,
    ValueError,
    zlib.error,
    NotImplementedError,
    RuntimeError,
    struct.error,
    OverflowError,
)
#: Entries an artifact may hold (QIIME 2 provenance can hold thousands of small files; millions is an attack).
QZA_MAX_ENTRIES = 100_000
#: ``metadata.yaml`` is a few lines; a large one is refused before the (slow, pure-Python) YAML parser sees it.
QZA_MAX_METADATA_BYTES = 64 * 1024
#: Members smaller than this are exempt from the compression-ratio limit (tiny text compresses very well).
_RATIO_FLOOR = 1024**2
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


def _check_members(path: str | Path, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse, from the central directory alone and before anything is decompressed: too many entries,
    unsafe names (``../``, absolute, backslashes), duplicates, encryption, unknown methods and zip bombs
    (declared sizes beyond ``MAX_DECOMPRESSED_BYTES`` or ``MAX_COMPRESSION_RATIO``). Declared sizes are
    binding: zipfile never yields more than a member's declared size (and then fails its CRC check)."""
    if len(infos) > QZA_MAX_ENTRIES:
        raise ContractViolation(
            path,
            f"the archive has {len(infos):,} entries",
            expected=f"at most {QZA_MAX_ENTRIES:,} (a QIIME 2 artifact)",
        )
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name).parts
        if name.startswith("/") or "\\" in name or "\x00" in name or ".." in parts or (parts and ":" in parts[0]):
            raise ContractViolation(
                path,
                f"unsafe member name {clip(name)} (path traversal or absolute path)",
                expected="relative member names inside the artifact's root directory",
                column=short(name),
            )
        if name in seen:
            raise ContractViolation(
                path, f"duplicate member {clip(name)}", expected="each member once", column=short(name)
            )
        seen.add(name)
        if info.flag_bits & 0x1:
            raise ContractViolation(
                path, f"encrypted member {clip(name)}", expected="an unencrypted artifact", column=short(name)
            )
        if info.compress_type not in _ZIP_METHODS:
            raise ContractViolation(
                path,
                f"member {clip(name)} uses compression method {info.compress_type}",
                expected="stored or deflated members",
                column=short(name),
            )
        total += info.file_size
        if info.file_size > _RATIO_FLOOR and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
            raise ContractViolation(
                path,
                f"member {clip(name)} declares {info.file_size:,} bytes from {info.compress_size:,} compressed "
                f"(ratio over {MAX_COMPRESSION_RATIO}: a zip bomb)",
                expected=f"compression ratios up to {MAX_COMPRESSION_RATIO}",
                column=short(name),
            )
    if total > MAX_DECOMPRESSED_BYTES:
        raise ContractViolation(
            path,
            f"the archive declares {total:,} bytes once extracted (a zip bomb or an artifact too large to load)",
            expected=f"at most {MAX_DECOMPRESSED_BYTES:,} bytes uncompressed",
        )


def read_member(path: str | Path, zf: zipfile.ZipFile, name: str) -> bytes:
    """One member's bytes (its declared size was checked by :func:`_check_members`)."""
    try:
        return zf.read(name)
    except _ZIP_ERRORS as exc:
        raise ContractViolation(
            path,
            f"corrupt zip member {clip(name)} ({exc})",
            expected="a QIIME 2 artifact (.qza)",
            column=short(name),
        ) from None


def open_qza(
    path: str | Path, raw: bytes, accept: dict[str, bool] | tuple[str, ...], want: str
) -> tuple[str, str, zipfile.ZipFile]:
    """Open a QIIME 2 artifact and check its type; returns (type, uuid root, zip). Nothing is extracted to
    disk, and archives inside the artifact are never opened."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
        infos = zf.infolist()
    except _ZIP_ERRORS as exc:
        raise ContractViolation(path, f"corrupt zip archive ({exc})", expected="a QIIME 2 artifact (.qza)") from None
    _check_members(path, infos)
    names = [i.filename for i in infos]
    try:
        bad_member = zf.testzip()
    except _ZIP_ERRORS as exc:
        raise ContractViolation(path, f"corrupt zip archive ({exc})", expected="a QIIME 2 artifact (.qza)") from None
    if bad_member is not None:
        raise ContractViolation(
            path, f"corrupt zip member {clip(bad_member)} (CRC mismatch)", expected="a QIIME 2 artifact (.qza)"
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
            path, "the archive has no metadata.yaml", expected="a QIIME 2 artifact", column=short(meta_name)
        )
    if zf.getinfo(meta_name).file_size > QZA_MAX_METADATA_BYTES:
        raise ContractViolation(
            path,
            f"metadata.yaml is {zf.getinfo(meta_name).file_size:,} bytes",
            expected=f"a QIIME 2 metadata.yaml (at most {QZA_MAX_METADATA_BYTES:,} bytes)",
            column=short(meta_name),
        )
    import yaml  # local: only artifacts need it

    try:
        meta = yaml.safe_load(read_member(path, zf, meta_name).decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        raise ContractViolation(
            path,
            f"unreadable metadata.yaml ({clip(str(exc), 200)})",
            expected="a QIIME 2 artifact",
            column=short(meta_name),
        ) from None
    typ = meta.get("type") if isinstance(meta, dict) else None
    # only a plain string is shown: str() of a YAML alias structure (billion laughs) can be exponential
    if isinstance(typ, str):
        shown = typ if len(typ) <= 80 else clip(typ, 80)
    else:
        shown = f"not a type name ({type(typ).__name__})"
    if not isinstance(typ, str) or typ not in accept:
        raise ContractViolation(
            path, f"artifact type is {shown}", expected=f"a {want} artifact ({' or '.join(accept)})", column="type"
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
    inner = read_member(path, zf, payload[0])
    if inner[:4] in ZIP_MAGICS:
        raise ContractViolation(
            path,
            f"the payload {clip(payload[0])} is itself a zip archive (nested archives are not opened)",
            expected="a BIOM feature table",
            column=short(payload[0]),
        )
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
        f"the payload {clip(payload[0])} is neither BIOM HDF5 nor BIOM JSON",
        expected="a BIOM feature table",
        column=short(payload[0]),
    )
