"""Errors raised when an input breaks the raw exports contract.

Every rejection names the file, the row and the column where it can, and says what was expected, so the
person who receives the message can fix the export without reading code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class ContractViolation(Exception):
    """A file that breaks the raw exports contract (``docs/raw_exports.md``).

    ``row`` is the 1-based line number in the file where known (the header is line 1); ``column`` is the
    column name (or 1-based position) where known.
    """

    file: str | Path
    problem: str
    expected: str | None = None
    row: int | None = None
    column: str | None = None

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        where = [str(self.file)]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        text = f"{', '.join(where)}: {self.problem}"
        if self.expected:
            text += f" (expected {self.expected})"
        return text
