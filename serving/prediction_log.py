"""The prediction log: every scored row, appended off the request path, read back by monitoring.

Requests put rows on an in-memory queue and return; one background thread writes them as
Parquet part files `predictions/date=YYYY-MM-DD/part-<time>-<id>.parquet`, each written to a
temporary name and renamed, so a reader never sees half a file. The thread flushes every
`flush_rows` rows or `flush_seconds` seconds, and `close()` drains the queue, so stopping the
service loses nothing it accepted.
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from churn import names
from features.io import write_atomic_parquet

LOGGED_AT = "logged_at"
MODEL_VERSION = "model_version"
FEATURES = "features"
"""Column holding the scored feature row as JSON text (feature sets differ between models)."""


class PredictionLog:
    """A background writer of scored rows."""

    def __init__(self, root: Path, flush_rows: int = 1_000, flush_seconds: float = 2.0) -> None:
        """Start the writer thread.

        Args:
            root: The folder of the log (`<workspace>/predictions`).
            flush_rows: Write a part file once this many rows wait.
            flush_seconds: Write what waits at least this often.
        """
        self.root = Path(root)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._closed = False
        self.written = 0
        self._thread.start()

    def append(
        self,
        customer_ids: Sequence[str],
        model_version: str,
        features: Sequence[Mapping[str, Any]],
        probabilities: Sequence[float],
        now: dt.datetime | None = None,
    ) -> None:
        """Queue scored rows (returns at once)."""
        if self._closed:
            raise RuntimeError("the prediction log is closed")
        stamp = now or dt.datetime.now(dt.UTC)
        for cid, row, p in zip(customer_ids, features, probabilities, strict=True):
            self._queue.put(
                {
                    LOGGED_AT: stamp,
                    names.CUSTOMER_ID: str(cid),
                    MODEL_VERSION: model_version,
                    names.PREDICTION: float(p),
                    FEATURES: json.dumps({k: _plain(v) for k, v in row.items()}),
                }
            )

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        pending: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.flush_seconds
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = {}
            if item is None:
                self._flush(pending)
                return
            if item:
                pending.append(item)
            if len(pending) >= self.flush_rows or time.monotonic() >= deadline:
                self._flush(pending)
                pending = []
                deadline = time.monotonic() + self.flush_seconds

    def _flush(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        frame = pd.DataFrame(rows)
        frame[LOGGED_AT] = pd.to_datetime(frame[LOGGED_AT], utc=True)
        for day, part in frame.groupby(frame[LOGGED_AT].dt.date):
            name = f"part-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet"
            write_atomic_parquet(part.reset_index(drop=True), self.root / f"date={day}" / name)
        self.written += len(rows)


def _plain(value: Any) -> Any:  # noqa: ANN401
    """A JSON-safe feature value: NaN and missing become null."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def read_prediction_log(root: Path, start: dt.datetime | None = None, end: dt.datetime | None = None) -> pd.DataFrame:
    """Logged rows with `start <= logged_at < end`, features expanded into columns.

    Returns:
        logged_at, customer_id, model_version, churn_probability and one column per feature;
        empty when nothing was logged in the window.
    """
    files = sorted(Path(root).glob("date=*/part-*.parquet"))
    if start is not None:
        first = start.date().isoformat()
        files = [f for f in files if f.parent.name.removeprefix("date=") >= first]
    if end is not None:
        last = end.date().isoformat()
        files = [f for f in files if f.parent.name.removeprefix("date=") <= last]
    if not files:
        return pd.DataFrame(columns=[LOGGED_AT, names.CUSTOMER_ID, MODEL_VERSION, names.PREDICTION])
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    if start is not None:
        frame = frame[frame[LOGGED_AT] >= pd.Timestamp(start)]
    if end is not None:
        frame = frame[frame[LOGGED_AT] < pd.Timestamp(end)]
    expanded = pd.DataFrame([json.loads(f) for f in frame[FEATURES]], index=frame.index)
    return pd.concat([frame.drop(columns=FEATURES), expanded], axis=1).reset_index(drop=True)
