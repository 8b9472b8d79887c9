"""Faster Dagster event-log writes for a headless run (``guttrial build``) recorded in ``$DAGSTER_HOME``.

A run of ``refresh_all`` stores ~1,000 events: before its first step Dagster records one "planned" event per
asset and per asset check (several hundred: every dbt data test and great-expectations suite is a check), then
every materialisation and check result. Dagster's default storage in ``$DAGSTER_HOME`` is SQLite, and for each
event it builds a new SQLAlchemy engine and opens, commits and closes a new connection, several times (the run's
own database and the cross-run index). Two costs of that are pure overhead:

* closing the last connection to a WAL-mode SQLite file checkpoints the write-ahead log into the database and
  deletes it, so every event paid a checkpoint, a file deletion and their fsyncs;
* building an engine (dialect set-up) costs more CPU than the insert itself.

:func:`fast_event_log` keeps one idle read connection open to each of these SQLite files for the duration of the
run (no connection is ever the last one, so the log is checkpointed once at the end, as SQLite does anyway) and
reuses one engine per database (connections are still opened per write: NullPool, as Dagster configures it).
Nothing changes in what is stored or where; a run started this way is an ordinary run in the UI. Any other
storage (Postgres, the in-memory storage of an ephemeral instance) is left alone.
"""

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import urlparse

import dagster as dg


def _sqlite_paths(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The SQLite files the run writes: its own event-log shard (created now, as its first event would), the
    cross-run index shard and the run storage. Empty for a non-SQLite instance."""
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
    from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

    paths: list[str] = []
    storage = instance.event_log_storage
    if isinstance(storage, SqliteEventLogStorage):
        with storage.run_connection(run_id):
            pass
        with storage.index_connection():
            pass
        paths += [storage.path_for_shard(run_id), storage.path_for_shard(INDEX_SHARD_NAME)]
    run_storage = instance.run_storage
    if isinstance(run_storage, SqliteRunStorage):
        paths.append(urlparse(run_storage._conn_string).path)
    return paths


def _cached(create_engine: Callable[..., Any]) -> Callable[..., Any]:
    engines: dict[tuple[str, str], Any] = {}

    def create_engine_once(url: Any, **kwargs: Any) -> Any:
        key = (str(url), repr(sorted(kwargs.items(), key=lambda item: item[0])))
        if key not in engines:
            engines[key] = create_engine(url, **kwargs)
        return engines[key]

    return create_engine_once


@contextmanager
def fast_event_log(instance: dg.DagsterInstance, run_id: str) -> Iterator[None]:
    """Within the block, event-log writes of run ``run_id`` on ``instance`` skip the per-event WAL checkpoint
    and engine set-up (see the module docstring). Best effort: if the storage is not SQLite, or Dagster's
    internals differ from what this expects, the block runs unchanged."""
    with ExitStack() as stack:
        try:
            from dagster._core.storage.event_log.sqlite import sqlite_event_log
            from dagster._core.storage.runs.sqlite import sqlite_run_storage

            for path in _sqlite_paths(instance, run_id):
                holder = sqlite3.connect(path)
                stack.callback(holder.close)
                holder.execute("select count(*) from sqlite_master").fetchall()  # maps the WAL index
            for module in (sqlite_event_log, sqlite_run_storage):
                original = module.create_engine
                module.create_engine = _cached(original)
                stack.callback(setattr, module, "create_engine", original)
        except Exception:  # an optimisation only: never the reason a build fails
            stack.close()
        yield
