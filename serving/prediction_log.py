"""The prediction log: every scored row, appended off the request path, read back by monitoring.

Requests put rows on an in-memory queue and return; one background thread collects them and
hands them to a writer process, which writes them as Parquet part files
`predictions/date=YYYY-MM-DD/part-<time>-<id>.parquet`, each written to a temporary name and
renamed, so a reader never sees half a file. The thread flushes every `flush_rows` rows or
`flush_seconds` seconds, and `close()` drains the queue, so stopping the service loses nothing it
accepted.

Why a process: turning rows into Arrow columns and encoding Parquet hold the interpreter lock
for much of their time, and on a small machine the requests in flight waited for it. The writer
process ignores SIGINT and SIGTERM, which a server's shutdown may send its whole process group: it
stops when the log closes (after writing everything) or when the process that started it is gone.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import pandas as pd
import pyarrow as pa

from core import names
from core.io import write_atomic_parquet
from core.prediction_log import FEATURE_PREFIX, LOGGED_AT, MODEL_VERSION

log = logging.getLogger(__name__)


class PredictionLog:
    """A background writer of scored rows."""

    def __init__(
        self, root: Path, flush_rows: int = 1_000, flush_seconds: float = 2.0, writer_process: bool = True
    ) -> None:
        """Start the collecting thread (the writer process starts with the first write).

        Args:
            root: The folder of the log (`<workspace>/predictions`).
            flush_rows: Write a part file once this many rows wait.
            flush_seconds: Write what waits at least this often.
            writer_process: Write in a process of its own; False writes on the thread itself.
        """
        self.root = Path(root)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._queue: queue.Queue[_Scored | None] = queue.Queue()
        self._writer: Executor | None = _writer() if writer_process else None
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._closed = False
        self.written = 0
        self._thread.start()

    def append(
        self,
        customer_ids: Sequence[str],
        model_version: str,
        features: pd.DataFrame | Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
        probabilities: Sequence[float],
        now: dt.datetime | None = None,
        columns: Sequence[str] | None = None,
    ) -> None:
        """Queue scored rows (returns at once; the writer thread turns them into Arrow columns, in bulk).

        Args:
            customer_ids: One per row.
            model_version: The version that scored them.
            features: The scored feature rows: a DataFrame or columns (feature -> one value per
                row), neither to be changed afterwards, or one dict per row.
            probabilities: One per row.
            now: The log time (default: now, UTC).
            columns: The columns of a `features` DataFrame or columns to log (default: all of them).
        """
        if self._closed:
            raise RuntimeError("the prediction log is closed")
        ids = [str(c) for c in customer_ids]
        if isinstance(features, Mapping):
            features = {c: features[c] for c in columns or features}
            rows = len(next(iter(features.values()))) if features else len(ids)
        elif isinstance(features, pd.DataFrame):
            rows = len(features)
        else:
            features = list(features)
            rows = len(features)
        if len(ids) != rows or len(ids) != len(probabilities):
            raise ValueError(f"{len(ids)} customer ids, {rows} feature rows and {len(probabilities)} probabilities")
        self._queue.put(
            _Scored(now or dt.datetime.now(dt.UTC), ids, model_version, features, list(columns or []), probabilities)
        )

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)
        if self._writer is not None:
            self._writer.shutdown(wait=True)

    def _run(self) -> None:
        pending: list[_Scored] = []
        waiting = 0
        deadline = time.monotonic() + self.flush_seconds
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = _Scored.NOTHING
            if item is None:
                self._flush(pending)
                return
            if item.customer_ids:
                pending.append(item)
                waiting += len(item.customer_ids)
            if waiting >= self.flush_rows or time.monotonic() >= deadline:
                self._flush(pending)
                pending, waiting = [], 0
                deadline = time.monotonic() + self.flush_seconds

    def _flush(self, batches: list[_Scored]) -> None:
        if not batches:
            return
        try:
            self.written += self._write(batches)
        except Exception:  # a full disk, say: keep collecting (the next flush may succeed), and say so
            rows = sum(len(b.customer_ids) for b in batches)
            log.exception("prediction log: %d rows could not be written to %s", rows, self.root)

    def _write(self, batches: list[_Scored]) -> int:
        """Write `batches` (in the writer process, if there is one); returns the rows written."""
        if self._writer is None:
            return write_parts(self.root, batches)
        try:
            return self._writer.submit(write_parts, self.root, batches).result()
        except BrokenProcessPool:  # the writer process died (killed, out of memory): once more, in a new one
            log.warning("prediction log: the writer process died; starting another")
            self._writer.shutdown(wait=False)  # releases the broken pool's queues and threads
            self._writer = _writer()
            return self._writer.submit(write_parts, self.root, batches).result()


def _writer() -> ProcessPoolExecutor:
    """A writer process (started with its first task) for `write_parts`."""
    return ProcessPoolExecutor(
        1, multiprocessing.get_context("spawn"), initializer=_writer_started, initargs=(os.getpid(),)
    )


def write_parts(root: Path, batches: list[_Scored]) -> int:
    """Write scored rows as part files under `root`, one per day of their log time; returns the rows written."""
    written = 0
    for day, group in itertools.groupby(sorted(batches, key=_day), key=_day):
        part = list(group)
        name = f"part-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet"
        write_atomic_parquet(_table(part), root / f"date={day}" / name)
        written += sum(len(b.customer_ids) for b in part)
    return written


def _writer_started(parent: int) -> None:
    """Set up the writer process: deaf to the shutdown signals sent to the server's process group,
    and gone once the process that started it is (a watchdog thread)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="prediction-log-watchdog", daemon=True).start()


def _day(batch: _Scored) -> dt.date:
    return batch.logged_at.date()


def _table(batches: list[_Scored]) -> pa.Table:
    """The rows of `batches` as one Arrow table: the log's columns, then one column per feature."""
    columns: dict[str, pa.Array] = {
        LOGGED_AT: pa.array(
            np.repeat([_microseconds(b.logged_at) for b in batches], [len(b.customer_ids) for b in batches]),
            type=pa.timestamp("us", tz="UTC"),
        ),
        names.CUSTOMER_ID: pa.array([c for b in batches for c in b.customer_ids], type=pa.string()),
        MODEL_VERSION: pa.array([b.model_version for b in batches for _ in b.customer_ids], type=pa.string()),
        names.PREDICTION: pa.array(
            np.concatenate([np.asarray(b.probabilities, dtype=float) for b in batches]), type=pa.float64()
        ),
    }
    features = [(len(b.customer_ids), b.columns_of()) for b in batches]
    wanted = list(dict.fromkeys(f for _, of in features for f in of))
    for feature in wanted:
        pieces = [of.get(feature) for _, of in features]
        if all(isinstance(p, np.ndarray) and p.dtype.kind == "f" for p in pieces):
            # Float columns (as /score_features validates them) convert without a Python object per value.
            columns[FEATURE_PREFIX + feature] = _arrow_floats(np.concatenate(cast(list[np.ndarray], pieces)))
            continue
        values: list[Any] = []
        for (rows, _), given in zip(features, pieces, strict=True):
            values.extend([None] * rows if given is None else _plain_values(given))
        columns[FEATURE_PREFIX + feature] = _arrow(values)
    return pa.table(columns)


def _microseconds(at: dt.datetime) -> int:
    """`at` as microseconds since the epoch, as Arrow stores a UTC timestamp (a naive time counts as UTC)."""
    aware = at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
    return (aware - _EPOCH) // dt.timedelta(microseconds=1)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _plain_values(values: Sequence[Any] | np.ndarray) -> Sequence[Any]:
    """A column's values as Python objects (an array's NaN stays NaN: `_arrow` makes it null)."""
    return values.tolist() if isinstance(values, np.ndarray) else values


def _arrow_floats(values: np.ndarray) -> pa.Array:
    """A float column as `_arrow` logs the same values as Python floats: float64, NaN null, or all
    null (Arrow's null type) when no value is known."""
    if np.isnan(values).all():
        return pa.nulls(len(values))
    return pa.array(values.astype(np.float64, copy=False), from_pandas=True)


def _arrow(values: list[Any]) -> pa.Array:
    """One feature's logged values as an Arrow array: numbers as float64 (or as they are: bools,
    integers), strings as strings, NaN and missing values null; a column mixing kinds as text."""
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    try:
        return pa.array(values, type=pa.float64(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        from features.online import plain_value  # here: the writer process need not import Feast

        text = [None if plain_value(v) is None else str(v) for v in values]
        return pa.array(text, type=pa.string())


@dataclass(frozen=True)
class _Scored:
    """One `append` call's rows, waiting for the writer thread."""

    logged_at: dt.datetime
    customer_ids: list[str]
    model_version: str
    features: pd.DataFrame | Mapping[str, Sequence[Any]] | list[Mapping[str, Any]]
    columns: list[str]
    probabilities: Sequence[float]

    NOTHING: ClassVar[_Scored]

    def columns_of(self) -> dict[str, Sequence[Any] | np.ndarray]:
        """The logged features of these rows as columns: feature -> one value per row."""
        if isinstance(self.features, pd.DataFrame):
            frame = self.features
            return {c: frame[c].tolist() for c in (self.columns or frame.columns)}
        if isinstance(self.features, Mapping):
            return {c: v if isinstance(v, np.ndarray) else list(v) for c, v in self.features.items()}
        rows = cast(list[Mapping[str, Any]], self.features)
        wanted = dict.fromkeys(k for row in rows for k in row)
        return {k: [row.get(k) for row in rows] for k in wanted}


_Scored.NOTHING = _Scored(dt.datetime.min, [], "", [], [], [])
