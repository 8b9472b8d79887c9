"""Run the external reference tools (R/vegan, mothur) on temporary files, for tests and benchmarks.

Nothing in the analyses depends on this module. Every helper says whether its tool is present, so tests can
skip with a reason instead of failing on machines without R or mothur.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["mothur_missing", "run_mothur", "run_r", "vegan_missing"]


@functools.cache
def vegan_missing() -> str | None:
    """None when ``Rscript`` with vegan is available, else the reason it is not."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return "Rscript not installed (Debian r-base-core, r-cran-vegan)"
    proc = subprocess.run(
        [rscript, "-e", "cat(nzchar(system.file(package = 'vegan')))"], capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0 or proc.stdout.strip() != "TRUE":
        return "R package vegan not installed (Debian r-cran-vegan)"
    return None


@functools.cache
def mothur_missing() -> str | None:
    """None when the ``mothur`` executable is on PATH, else the reason it is not."""
    return None if shutil.which("mothur") else "mothur not installed (Debian package mothur)"


def run_r(
    code: str, workdir: Path, inputs: Mapping[str, pd.DataFrame | np.ndarray] | None = None, timeout: int = 300
) -> None:
    """Write ``inputs`` as CSV files ``<name>.csv`` in ``workdir`` and run ``code`` there with vegan loaded.

    DataFrames keep their index as the first column (``row.names=1`` in R); arrays are written without
    header. The R code writes its own outputs; read them back in the caller.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    for name, value in (inputs or {}).items():
        path = workdir / f"{name}.csv"
        if isinstance(value, pd.DataFrame):
            value.to_csv(path, float_format="%.17g")
        else:
            np.savetxt(path, np.atleast_2d(np.asarray(value, dtype=float)), delimiter=",", fmt="%.17g")
    script = workdir / "oracle.R"
    script.write_text("suppressMessages(library(vegan))\nset.seed(1)\n" + code, encoding="utf-8")
    proc = subprocess.run(["Rscript", str(script)], cwd=workdir, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"Rscript failed:\n{proc.stderr[-2000:]}")


def run_mothur(batch: str, workdir: Path, timeout: int = 300) -> str:
    """Run ``mothur "#<batch>"`` in ``workdir``; returns its stdout. Raises when mothur reports an error."""
    proc = subprocess.run(["mothur", f"#{batch}"], cwd=workdir, capture_output=True, text=True, timeout=timeout)
    text = proc.stdout + proc.stderr
    if proc.returncode != 0 or "[ERROR]" in text:
        raise RuntimeError(f"mothur failed:\n{text[-2000:]}")
    return text
