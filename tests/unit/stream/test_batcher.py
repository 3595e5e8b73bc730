"""POST /events's group commit: requests processed together, each answered with its own share."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pandas as pd
import pytest

from stream.batcher import Batcher, split
from stream.intake import EventsRefused
from stream.processor import Outcome

T = pd.Timestamp("2026-01-01T10:00:00Z")


def frame(*rows: tuple[str, str, int]) -> pd.DataFrame:
    """Contract rows (event id, customer, minutes after T)."""
    return pd.DataFrame(
        {
            "event_id": [r[0] for r in rows],
            "customer_id": [r[1] for r in rows],
            "event_timestamp": [T + pd.Timedelta(minutes=r[2]) for r in rows],
            "event_type": ["complaint"] * len(rows),
        }
    )


class Processor:
    """Validates (an event of type 'bad' refuses its request) and records each batch it processes."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[str], dt.datetime | None]] = []
        self.seen: set[str] = set()
        self.validations = 0

    def validate(self, records: Sequence[Any]) -> pd.DataFrame:
        self.validations += 1
        if any(r["event_type"] == "bad" for r in records):
            raise EventsRefused(["events[0].event_type: bad"])
        return frame(*[(r["event_id"], r["customer_id"], r["minute"]) for r in records])

    def process(self, events: pd.DataFrame, arrived_at: dt.datetime | None = None) -> Outcome:
        ids = events["event_id"].tolist()
        self.batches.append((ids, arrived_at))
        fresh = [i for i in dict.fromkeys(ids) if i not in self.seen]
        self.seen.update(fresh)
        alerts = [{"customer_id": c} for c in sorted(set(events["customer_id"]))]
        return Outcome(len(fresh), len(ids) - len(fresh), 0, alerts, None, frozenset(fresh))


def event(event_id: str, customer: str, minute: int = 0, kind: str = "complaint") -> dict[str, Any]:
    return {"event_id": event_id, "customer_id": customer, "minute": minute, "event_type": kind}


def test_waiting_requests_go_in_one_batch_and_each_gets_its_share() -> None:
    processor = Processor()
    batcher = Batcher(processor)  # type: ignore[arg-type]
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    a, start = batcher.submit([event("e1", "c1", 1), event("e2", "c1", 3)], t0 + dt.timedelta(seconds=1))
    b, again = batcher.submit([event("e3", "c2", 2), event("e1", "c1", 1)], t0)
    bad, _ = batcher.submit([event("e4", "c3", kind="bad")], t0)
    assert start and not again  # the first request starts the drain; the others wait for it
    batcher.drain_all()
    assert processor.batches == [(["e1", "e2", "e3"], t0)]  # one batch (each id once), from the oldest arrival
    first, second = a.result(), b.result()
    assert (first.accepted, first.duplicates, first.customers) == (2, 0, 1)
    assert (second.accepted, second.duplicates, second.customers) == (1, 1, 1)  # e1 went in with the first
    assert [x["customer_id"] for x in first.alerts] == ["c1"] and [x["customer_id"] for x in second.alerts] == ["c2"]
    assert first.newest_event == (T + pd.Timedelta(minutes=3)).isoformat()
    with pytest.raises(EventsRefused, match="bad"):
        bad.result()
    assert batcher.drain() == 0 and len(processor.batches) == 1  # nothing left waiting
    assert batcher.submit([event("e5", "c5")], t0)[1]  # the drain ended: the next request starts one


def test_valid_requests_are_validated_once_together() -> None:
    processor = Processor()
    batcher = Batcher(processor)  # type: ignore[arg-type]
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    futures = [batcher.submit([event(f"e{i}", f"c{i}", i), event("same", "c0")], t0)[0] for i in range(5)]
    batcher.drain_all()
    assert processor.validations == 1
    shares = [f.result() for f in futures]
    assert [s.accepted for s in shares] == [2, 1, 1, 1, 1]  # the repeated id counts for the first request
    assert [s.duplicates for s in shares] == [0, 1, 1, 1, 1]


def test_a_request_of_events_stored_before_counts_them_as_duplicates() -> None:
    outcome = Outcome(0, 2, 0, [], None, frozenset())
    (share,) = split(outcome, [["x", "y"]], frame(("x", "c", 0), ("y", "c", 1)))
    assert (share.accepted, share.duplicates, share.alerts, share.newest_event) == (0, 2, [], None)
