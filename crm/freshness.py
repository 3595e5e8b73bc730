"""Event-to-feature lag of the real-time path: one record per stored batch, and their summary.

The stream processor (`stream.processor`) appends one JSON line per batch to `stream.freshness_log`
once the batch's online features are written: when (`written_at`), how many events, the lag from
the batch's oldest arrival (the POST /events request, or the oldest Redis entry's id) to that
write, the lag from its newest event's own timestamp to that write, and that newest event's time.
`churn monitor` and the ops report summarise the records of a window (`summarize`): lag
percentiles over events, each event counted with its batch's lag (from the batch's oldest arrival,
so an upper bound for the others), and the newest event seen.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

NO_EVENTS = "no streamed events"
"""What the summary says of a window without streamed events."""


class Freshness(BaseModel):
    """The event-to-feature lag of the events streamed in a window."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_start: dt.datetime
    window_end: dt.datetime
    events: int
    batches: int
    lag_p50_s: float | None = None
    """Seconds from an event's arrival to its features written in the online store (median over events)."""
    lag_p99_s: float | None = None
    lag_max_s: float | None = None
    event_lag_p50_s: float | None = None
    """Seconds from a batch's newest event timestamp (the CRM's clock) to its features written (median over batches)."""
    newest_event: dt.datetime | None = None
    """The newest event timestamp whose features were written in the window."""

    def describe(self) -> str:
        """One line: the lag percentiles and the newest event, or `NO_EVENTS`."""
        if not self.events or self.lag_p50_s is None:
            return NO_EVENTS
        newest = f"{self.newest_event:%Y-%m-%d %H:%M:%S} UTC" if self.newest_event else "-"
        return (
            f"{self.events:,} streamed events in {self.batches:,} batch{'es' if self.batches != 1 else ''}: "
            f"event-to-feature lag p50 "
            f"{_seconds(self.lag_p50_s)}, p99 {_seconds(self.lag_p99_s)}, max {_seconds(self.lag_max_s)}; "
            f"newest event {newest}"
        )


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def record(written_at: dt.datetime, events: int, arrived_at: dt.datetime, newest_event: dt.datetime) -> dict[str, Any]:
    """The freshness record of one batch (what `append_record` writes).

    Args:
        written_at: When the batch's features were written.
        events: Events the batch stored.
        arrived_at: The batch's oldest arrival.
        newest_event: The newest event timestamp in the batch.
    """
    written_at, arrived_at, newest_event = _utc(written_at), _utc(arrived_at), _utc(newest_event)
    return {
        "written_at": written_at.isoformat(),
        "events": int(events),
        "lag_s": round(max(0.0, (written_at - arrived_at).total_seconds()), 6),
        "event_lag_s": round((written_at - newest_event).total_seconds(), 6),
        "newest_event": newest_event.isoformat(),
    }


def append_record(path: Path, line: dict[str, Any]) -> None:
    """Append one record as a JSON line (one write, so concurrent writers never interleave a line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as out:
        out.write(json.dumps(line).encode() + b"\n")


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every record in the file (none when it does not exist); a line that does not parse is skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash
        if isinstance(value, dict) and {"written_at", "events", "lag_s"} <= set(value):
            out.append(value)
    return out


def _weighted_quantile(values: Sequence[float], weights: Sequence[int], q: float) -> float:
    """The `q` quantile of `values` each repeated `weights` times (the lower value at a tie)."""
    order = np.argsort(values)
    sorted_values = np.asarray(values, float)[order]
    cumulative = np.cumsum(np.asarray(weights, float)[order])
    rank = max(1, math.ceil(q * cumulative[-1]))
    return float(sorted_values[int(np.searchsorted(cumulative, rank))])


def summarize(records: Iterable[dict[str, Any]], start: dt.datetime, end: dt.datetime) -> Freshness:
    """The lag of the batches written in [start, end).

    Args:
        records: Freshness records (`read_records`).
        start: The window's start (naive means UTC).
        end: Its end.
    """
    start, end = _utc(start), _utc(end)
    inside = []
    for r in records:
        try:
            written = _utc(dt.datetime.fromisoformat(r["written_at"]))
        except (TypeError, ValueError):
            continue
        if start <= written < end and int(r["events"]) > 0:
            inside.append(r)
    if not inside:
        return Freshness(window_start=start, window_end=end, events=0, batches=0)
    lags = [float(r["lag_s"]) for r in inside]
    counts = [int(r["events"]) for r in inside]
    newest = [dt.datetime.fromisoformat(r["newest_event"]) for r in inside if r.get("newest_event")]
    event_lags = [float(r["event_lag_s"]) for r in inside if r.get("event_lag_s") is not None]
    return Freshness(
        window_start=start,
        window_end=end,
        events=sum(counts),
        batches=len(inside),
        lag_p50_s=_weighted_quantile(lags, counts, 0.5),
        lag_p99_s=_weighted_quantile(lags, counts, 0.99),
        lag_max_s=max(lags),
        event_lag_p50_s=float(np.median(event_lags)) if event_lags else None,
        newest_event=max(_utc(n) for n in newest) if newest else None,
    )


def freshness_of(path: Path, start: dt.datetime, end: dt.datetime) -> Freshness:
    """`summarize` of the records in the file at `path`."""
    return summarize(read_records(path), start, end)
