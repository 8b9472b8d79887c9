"""Realistic CRF mess, injected on purpose and logged cell by cell in ``truth/mess.csv``.

Each injector picks rows at a given rate (at least one when there is a candidate, so even a 12-patient
trial exercises every cleaning rule), rewrites the cell, and records the clean and the written value. Rows
carry a hidden ``_rid``; line numbers are resolved only when the file is written, after duplicates have
been inserted, and follow the loader's convention (the header is line 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
MESS_COLUMNS = ("kind", "form", "file", "line", "SUBJID", "column", "clean_value", "written_value", "note")


@dataclass
class MessLog:
    entries: list[dict] = field(default_factory=list)

    def add(self, kind: str, form: str, rid: int, subjid: str, column: str, clean: str, written: str, note: str = ""):
        self.entries.append(
            {
                "kind": kind,
                "form": form,
                "_rid": int(rid),
                "SUBJID": subjid,
                "column": column,
                "clean_value": clean,
                "written_value": written,
                "note": note,
            }
        )

    def to_frame(self, line_of: dict[str, dict[int, int]], file_of: dict[str, str]) -> pd.DataFrame:
        rows = []
        for e in self.entries:
            form = e["form"]
            line = line_of.get(form, {}).get(e["_rid"], "")
            note = e["note"]
            if note.startswith("duplicate of rid "):
                note = f"exact duplicate of line {line_of[form][int(note.rsplit(' ', 1)[1])]}"
            rows.append({**{k: v for k, v in e.items() if k != "_rid"}, "file": file_of.get(form, ""), "line": line,
                         "note": note})  # fmt: skip
        df = pd.DataFrame(rows, columns=list(MESS_COLUMNS))
        return df.sort_values(["form", "line", "column", "kind"], kind="stable", ignore_index=True)


def add_rid(df: pd.DataFrame) -> pd.DataFrame:
    df = df.reset_index(drop=True)
    df["_rid"] = np.arange(len(df))
    return df


def _pick(rng: np.random.Generator, candidates: np.ndarray, rate: float) -> np.ndarray:
    if len(candidates) == 0 or rate <= 0:
        return candidates[:0]
    k = min(len(candidates), max(1, round(rate * len(candidates))))
    return np.sort(rng.choice(candidates, size=k, replace=False))


def _apply(df: pd.DataFrame, form: str, column: str, positions: np.ndarray, written: list[str], kind: str,
           log: MessLog) -> None:  # fmt: skip
    """Write ``written`` into ``column`` at ``positions`` (one vectorised assignment) and log each cell."""
    if len(positions) == 0:
        return
    col = df.columns.get_loc(column)
    clean = df[column].to_numpy()[positions]
    df.iloc[positions, col] = written
    rids = df["_rid"].to_numpy()[positions]
    subjects = df["SUBJID"].to_numpy()[positions]
    for rid, subj, c, w in zip(rids, subjects, clean, written, strict=True):
        log.add(kind, form, rid, str(subj), column, str(c), w)


def partial_dates(
    df: pd.DataFrame, form: str, column: str, rate: float, rng: np.random.Generator, log: MessLog
) -> None:
    """``2024-UNK-UNK`` (day and month unknown), ``2024-05-UN`` (day unknown), ``UN/JAN/2024``."""
    values = df[column].astype(str)
    candidates = np.flatnonzero(values.str.match(r"^\d{4}-\d{2}-\d{2}$").to_numpy())
    positions = _pick(rng, candidates, rate)
    written = []
    for clean in values.to_numpy()[positions]:
        year, month = clean[:4], int(clean[5:7])
        style = int(rng.integers(0, 3))
        written.append((f"{year}-UNK-UNK", f"{clean[:7]}-UN", f"UN/{MONTHS[month - 1]}/{year}")[style])
    _apply(df, form, column, positions, written, "partial_date", log)


def missing_markers(
    df: pd.DataFrame,
    form: str,
    column: str,
    rate: float,
    rng: np.random.Generator,
    log: MessLog,
    *,
    markers: tuple[str, ...] = ("ND", "NA", ""),
    mask: np.ndarray | None = None,
    kind: str = "missing_marker",
) -> None:
    """Replace delivered values by the EDC's "not done" / "not available" / blank."""
    ok = df[column].astype(str).str.len().to_numpy() > 0
    if mask is not None:
        ok &= mask
    positions = _pick(rng, np.flatnonzero(ok), rate)
    written = [str(x) for x in rng.choice(markers, size=len(positions))] if len(positions) else []
    _apply(df, form, column, positions, written, kind, log)


def code_format(df: pd.DataFrame, form: str, column: str, rate: float, rng: np.random.Generator, log: MessLog) -> None:
    """Coded values with stray spaces and mixed case (``Hbv ``, `` y``); valid after strip + upper."""
    positions = _pick(rng, np.flatnonzero(df[column].astype(str).str.len().to_numpy() > 0), rate)
    written = []
    for clean in df[column].astype(str).to_numpy()[positions]:
        variants = [clean.lower() + " ", " " + clean.title(), clean + "  ", " " + clean.lower(), clean.capitalize()]
        variants = [v for v in variants if v != clean]
        written.append(str(variants[int(rng.integers(0, len(variants)))]))
    _apply(df, form, column, positions, written, "code_format", log)


def duplicates(df: pd.DataFrame, form: str, rate: float, rng: np.random.Generator, log: MessLog) -> pd.DataFrame:
    """Exact duplicate records (an EDC export re-run that appended a page twice), placed after the original."""
    chosen = _pick(rng, np.arange(len(df)), rate)
    if len(chosen) == 0:
        return df
    next_rid = int(df["_rid"].max()) + 1
    copies = df.iloc[chosen].copy()
    copies["_rid"] = np.arange(next_rid, next_rid + len(copies))
    copies["_order"] = chosen + 0.5
    out = df.copy()
    out["_order"] = np.arange(len(out), dtype=float)
    out = pd.concat([out, copies]).sort_values("_order", kind="stable").drop(columns="_order")
    subjects = df["SUBJID"].to_numpy()[chosen]
    for orig, dup, subj in zip(df["_rid"].to_numpy()[chosen], copies["_rid"].to_numpy(), subjects, strict=True):
        log.add("duplicate_row", form, dup, str(subj), "", "", "", f"duplicate of rid {orig}")
    return out.reset_index(drop=True)


def line_numbers(df: pd.DataFrame) -> dict[int, int]:
    """``_rid`` -> line in the written file (header = line 1)."""
    return dict(zip(df["_rid"].to_numpy().tolist(), range(2, len(df) + 2), strict=True))
