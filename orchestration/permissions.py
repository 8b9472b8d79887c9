"""Owner-only permissions for the outputs of an unblinded run.

An unblinded warehouse, its published copy, its write-ahead log and the folders written beside it (Data Docs,
reports, distance matrices) carry the randomised arm, so only the account that ran the unblinded build may read
them: files ``0o600`` (the published copy ``0o400``: it is read-only by design), folders ``0o700``. A blinded
run leaves the modes alone.

Two layers, so no file is ever readable by others even for a moment:

* :func:`owner_only_umask` - the ``settings`` resource sets umask ``0o077`` for the duration of an unblinded
  run, so every file and folder the run creates (DuckDB's ``.wal`` and temporary files, dbt's logs, Data Docs,
  reports) is created owner-only;
* :func:`restrict_if_unblinded` - the code that creates an output (the warehouse connection, the publish step,
  the report and Data Docs writers) also sets the mode explicitly, covering files that existed before the run
  or were created by a process with another umask.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

OWNER_ONLY_UMASK = 0o077
FILE_MODE = 0o600
DIR_MODE = 0o700


class _Unblindable(Protocol):
    @property
    def is_unblinded(self) -> bool: ...


def restrict(path: Path, recursive: bool = True) -> list[Path]:
    """Make ``path`` owner-only (folders 0o700, files 0o600 keeping a missing owner-write bit off); returns
    the paths changed. Missing paths are ignored."""
    changed: list[Path] = []
    for item in _walk(Path(path), recursive):
        try:
            mode = stat.S_IMODE(item.lstat().st_mode)
        except FileNotFoundError:
            continue
        if item.is_symlink():
            continue  # chmod would follow the link to a file that is not ours
        # Read-only files stay read-only (the published copy is 0o400); every group/other bit goes.
        wanted = DIR_MODE if item.is_dir() else (mode & 0o700) or FILE_MODE
        if mode != wanted:
            os.chmod(item, wanted)
            changed.append(item)
    return changed


def _walk(path: Path, recursive: bool) -> Iterator[Path]:
    if not path.exists():
        return
    yield path
    if recursive and path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                yield Path(root) / name


def restrict_if_unblinded(paths: Path | Iterable[Path], settings: _Unblindable) -> list[Path]:
    """:func:`restrict` every path when the run is unblinded; nothing for a blinded run."""
    if not settings.is_unblinded:
        return []
    items = [paths] if isinstance(paths, Path) else list(paths)
    changed: list[Path] = []
    for item in items:
        changed.extend(restrict(Path(item)))
    return changed


def is_owner_only(path: Path) -> bool:
    """True when neither group nor others have any permission bit on ``path``."""
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


@contextmanager
def owner_only_umask(active: bool = True) -> Iterator[None]:
    """Create files owner-only inside the block (umask 0o077) when ``active``."""
    if not active:
        yield
        return
    previous = os.umask(OWNER_ONLY_UMASK)
    try:
        yield
    finally:
        os.umask(previous)
