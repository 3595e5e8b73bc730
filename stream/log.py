"""The event log as the real-time path sees it: the clean events plus the parts it appended.

Accepted events are written as Parquet parts beside the clean events (`events.parts/`), which
every read of the event log through `features.snapshots.inputs.relation` includes: the batch
build and the real-time path read the same events. A part is written to a temporary file and
renamed, so a reader never sees half of one. The log is also held in memory (DuckDB), so the
events of a few customers are found without scanning the files; parts written by another
process (another service worker, the consumer) are picked up before each read.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd

from core import names
from core.io import write_atomic_parquet
from features.snapshots.inputs import appended_parts, connect

COLUMNS = (names.EVENT_ID, names.CUSTOMER_ID, names.EVENT_TIMESTAMP, names.EVENT_TYPE, names.AMOUNT, names.CATEGORY)


class EventLog:
    """The clean event log and its appended parts, with an in-memory copy for per-customer reads."""

    def __init__(self, clean_events: Path) -> None:
        """Point at the clean events file; nothing is read until `load`."""
        self.clean_events = clean_events
        self.parts = appended_parts(clean_events)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._loaded: set[str] = set()
        self._lock = threading.Lock()

    def load(self) -> None:
        """Read the whole log (file and parts, each event id once) into memory."""
        con = connect()
        existing = sorted(self.parts.glob("*.parquet")) if self.parts.is_dir() else []
        con.execute(
            "CREATE TABLE log (event_id VARCHAR, customer_id VARCHAR, event_timestamp TIMESTAMPTZ,"
            " event_type VARCHAR, amount DOUBLE, category VARCHAR)"
        )
        con.execute(
            "INSERT INTO log SELECT NULL, customer_id::VARCHAR, timezone('UTC', event_timestamp::TIMESTAMPTZ),"
            f" event_type::VARCHAR, {_optional(con, self.clean_events, names.AMOUNT, 'DOUBLE')},"
            f" {_optional(con, self.clean_events, names.CATEGORY, 'VARCHAR')}"
            f" FROM read_parquet('{_escape(self.clean_events)}')"
        )
        self._con = con
        self._loaded = set()
        self._add_parts(existing)

    def _add_parts(self, paths: Sequence[Path]) -> None:
        assert self._con is not None
        for path in paths:
            if path.name in self._loaded:
                continue
            self._insert(pd.read_parquet(path))
            self._loaded.add(path.name)

    def _insert(self, frame: pd.DataFrame) -> None:
        assert self._con is not None
        rows = frame.reindex(columns=list(COLUMNS))
        self._con.register("_new", rows)
        # An id already held (a redelivery written twice) is not held again.
        self._con.execute(
            f"INSERT INTO log SELECT {', '.join(COLUMNS)} FROM _new"
            " WHERE event_id IS NULL OR event_id NOT IN (SELECT event_id FROM log WHERE event_id IS NOT NULL)"
        )
        self._con.unregister("_new")

    def refresh(self) -> None:
        """Pick up parts another process appended since the last read."""
        if self._con is None:
            self.load()
            return
        if self.parts.is_dir():
            with self._lock:
                self._add_parts([p for p in sorted(self.parts.glob("*.parquet")) if p.name not in self._loaded])

    def append(self, events: pd.DataFrame) -> Path:
        """Store accepted events: a new part on disk (atomically), then the in-memory copy.

        Args:
            events: Contract rows with event_id (`stream.intake.contract_events`).

        Returns:
            The part written.
        """
        if self._con is None:
            self.load()
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        path = self.parts / f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
        self.parts.mkdir(parents=True, exist_ok=True)
        frame = events.reindex(columns=list(COLUMNS)).reset_index(drop=True)
        write_atomic_parquet(frame, path)
        with self._lock:
            self._insert(frame)
            self._loaded.add(path.name)
        return path

    def events_of(self, customer_ids: Sequence[str]) -> pd.DataFrame:
        """Every event of these customers (without event_id), as the feature SQL reads them."""
        self.refresh()
        assert self._con is not None
        with self._lock:
            self._con.register("_ids", pd.DataFrame({"cid": list(customer_ids)}))
            frame = self._con.execute(
                "SELECT customer_id, event_timestamp, event_type, amount, category FROM log"
                " WHERE customer_id IN (SELECT cid FROM _ids)"
            ).df()
            self._con.unregister("_ids")
        return frame


def _escape(path: Path) -> str:
    return str(path).replace("'", "''")


def _optional(con: duckdb.DuckDBPyConnection, path: Path, column: str, kind: str) -> str:
    """The column cast to `kind` if the file has it, else a typed NULL."""
    have = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{_escape(path)}')").fetchall()}
    return f"{column}::{kind}" if column in have else f"NULL::{kind}"
