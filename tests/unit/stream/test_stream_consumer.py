"""The consumer's batch handling without Redis: bad entries dead-lettered, every entry acked, one
event id once per batch, a refused batch retried event by event."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from stream.consumer import Consumer
from stream.intake import EventsRefused


class FakeClient:
    def __init__(self) -> None:
        self.acked: list[str] = []

    def xack(self, stream: str, group: str, *ids: str) -> None:
        self.acked += ids


class FakeProcessor:
    """Refuses a batch holding an event of type 'bad', as the contract does."""

    def __init__(self) -> None:
        self.settings = SimpleNamespace(
            stream=SimpleNamespace(events_stream="s", group="g", max_batch=10, batch_wait_ms=50, claim_idle_s=60.0)
        )
        self.applied: list[list[str]] = []
        self.arrived: list[Any] = []

    def validate(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        bad = [f"events[{i}]: unknown event_type 'bad'" for i, r in enumerate(records) if r["event_type"] == "bad"]
        if bad:
            raise EventsRefused(bad)
        return records

    def apply(self, records: list[dict[str, Any]], arrived_at: Any = None) -> Any:  # noqa: ANN401
        self.arrived.append(arrived_at)
        self.validate(records)
        self.applied.append([r["event_id"] for r in records])
        return SimpleNamespace(accepted=len(records), duplicates=0)


def _entry(i: int, **fields: Any) -> tuple[bytes, dict[bytes, bytes]]:  # noqa: ANN401
    return f"{i}-0".encode(), {
        k.encode(): (v if isinstance(v, str) else json.dumps(v)).encode() for k, v in fields.items()
    }


def _event(event_id: str, event_type: str = "visit") -> dict[str, str]:
    return {
        "event_id": event_id,
        "customer_id": "c1",
        "event_timestamp": "2026-01-01T00:00:00Z",
        "event_type": event_type,
    }


def test_a_batch_with_bad_entries_takes_the_good_ones_and_acks_all(tmp_path: Path) -> None:
    client, processor = FakeClient(), FakeProcessor()
    consumer = Consumer(client, processor, tmp_path / "dead.jsonl", "c")  # type: ignore[arg-type]
    consumer.handle(
        [
            _entry(1, event=_event("a")),
            _entry(2, event="{nope"),
            _entry(3, event=_event("b", "bad")),
            _entry(4, other="x"),
            _entry(5, event=_event("a")),  # the same event again in the batch
            _entry(6, event=_event("c")),
        ]
    )
    assert processor.applied == [["a", "c"]]
    # Their arrival is the oldest entry's (an entry id is its arrival in milliseconds), whole or one by one.
    assert set(processor.arrived) == {dt.datetime.fromtimestamp(0.001, dt.UTC)}
    assert client.acked == [f"{i}-0" for i in range(1, 7)]
    lines = (tmp_path / "dead.jsonl").read_text().splitlines()
    dead = {d["entry_id"]: d["reason"] for d in map(json.loads, lines)}
    assert sorted(dead) == ["2-0", "3-0", "4-0"]
    assert "not JSON" in dead["2-0"] and "'bad'" in dead["3-0"] and "no field" in dead["4-0"]
    totals = consumer.totals
    assert (totals.entries, totals.accepted, totals.duplicates, totals.dead) == (6, 2, 1, 3)


def test_a_deleted_entry_is_dead_lettered(tmp_path: Path) -> None:
    client, processor = FakeClient(), FakeProcessor()
    consumer = Consumer(client, processor, tmp_path / "dead.jsonl", "c")  # type: ignore[arg-type]
    consumer.handle([(b"1-0", None)])  # type: ignore[list-item]
    assert client.acked == ["1-0"] and processor.applied == []
    assert "deleted" in (tmp_path / "dead.jsonl").read_text()
