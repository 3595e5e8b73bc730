"""The Redis Streams consumer behind `churn stream` (services profile).

At least once, never counted twice: entries are read in a consumer group (XREADGROUP) in batches
of `stream.max_batch`, applied through `StreamProcessor.apply` (the path of POST /events) and
acknowledged (XACK) only after the update is stored. On start the consumer first re-reads its own
pending entries (read but not acknowledged when it last stopped or was killed), then new ones, and
takes over (XAUTOCLAIM) entries another consumer left pending longer than `stream.claim_idle_s`;
an event taken before is skipped by the event-id store. An entry that cannot be taken (not JSON,
or an event breaking the contract) is written to the dead-letter file with its reason and
acknowledged, so it never blocks the stream.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import names
from stream.intake import EventsRefused
from stream.processor import StreamProcessor

log = logging.getLogger(__name__)
FIELD = "event"
"""The entry field that holds one event as JSON."""


@dataclass
class Totals:
    """What a consumer did since it started."""

    entries: int = 0
    accepted: int = 0
    duplicates: int = 0
    dead: int = 0


def _text(value: Any) -> str:  # noqa: ANN401
    return value.decode() if isinstance(value, bytes) else str(value)


def arrival(entry_id: str) -> dt.datetime:
    """When an entry arrived: its id is its arrival time in milliseconds."""
    return dt.datetime.fromtimestamp(int(entry_id.split("-", 1)[0]) / 1000, dt.UTC)


class Consumer:
    """Reads a Redis stream in a consumer group and applies its events."""

    def __init__(
        self,
        client: Any,  # noqa: ANN401  (a redis.Redis)
        processor: StreamProcessor,
        dead_letter: Path,
        consumer: str,
        stream: str | None = None,
        group: str | None = None,
    ) -> None:
        """Wire the consumer; nothing is read until `run`.

        Args:
            client: The Redis client.
            processor: Where the events go (`stream.processor.open_processor`).
            dead_letter: The file entries that cannot be taken are appended to.
            consumer: This consumer's name in the group; keep it across restarts, so a restarted
                consumer re-reads the entries it had not acknowledged.
            stream: The stream; default `stream.events_stream`.
            group: The consumer group; default `stream.group`.
        """
        cfg = processor.settings.stream
        self.client = client
        self.processor = processor
        self.dead_letter = dead_letter
        self.consumer = consumer
        self.stream = stream or cfg.events_stream
        self.group = group or cfg.group
        self.max_batch = cfg.max_batch
        self.block_ms = max(cfg.batch_wait_ms, 1)
        self.claim_idle_s = cfg.claim_idle_s
        self.totals = Totals()
        self.stopping = threading.Event()

    def ensure_group(self) -> None:
        """Create the group (and the stream) if missing; the group starts at the stream's beginning."""
        from redis.exceptions import ResponseError

        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def run(self, max_entries: int | None = None, on_batch: Callable[[Totals], None] | None = None) -> Totals:
        """Consume until `stop` (or `max_entries` entries): own pending entries first, then new ones.

        Args:
            max_entries: Stop after this many entries (None: until stopped).
            on_batch: Called with the totals after each batch.
        """
        self.ensure_group()
        start = "0"  # this consumer's pending entries, until none are left
        next_claim = 0.0
        while not self.stopping.is_set():
            if max_entries is not None and self.totals.entries >= max_entries:
                break
            if time.monotonic() >= next_claim:
                next_claim = time.monotonic() + self.claim_idle_s
                if self.claim():
                    start = "0"  # claimed entries are this consumer's pending ones now
            block = None if start == "0" else self.block_ms
            reply = self.client.xreadgroup(
                self.group, self.consumer, {self.stream: start}, count=self.max_batch, block=block
            )
            entries = reply[0][1] if reply else []
            if not entries:
                start = ">"
                continue
            self.handle(entries)
            if on_batch is not None:
                on_batch(self.totals)
        return self.totals

    def claim(self) -> int:
        """Take over entries other consumers left pending longer than `stream.claim_idle_s`; how many."""
        claimed = 0
        cursor = "0-0"
        while True:
            reply = self.client.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=int(self.claim_idle_s * 1000),
                start_id=cursor,
                count=self.max_batch,
            )  # [next cursor, claimed entries, deleted ids]; redis-py drops the cursor with justid
            cursor = _text(reply[0])
            claimed += len(reply[1])
            if cursor == "0-0":
                break
        if claimed:
            log.info("claimed %d entries other consumers left pending", claimed)
        return claimed

    def stop(self) -> None:
        """Finish the batch at hand, then return from `run`."""
        self.stopping.set()

    def handle(self, entries: list[tuple[Any, dict[Any, Any] | None]]) -> None:
        """Apply one batch of entries and acknowledge them all once stored."""
        records: list[dict[str, Any]] = []
        ids: list[str] = []
        taken: set[str] = set()
        for entry_id, fields in entries:
            eid = _text(entry_id)
            ids.append(eid)
            record, reason = self._parse(fields)
            if record is None:
                self._bury(eid, fields, reason)
                continue
            event_id = record.get(names.EVENT_ID)
            if isinstance(event_id, str) and event_id in taken:
                self.totals.duplicates += 1  # the same event twice in one batch: once is enough
                continue
            if isinstance(event_id, str):
                taken.add(event_id)
            records.append({"entry": eid, "fields": fields, "record": record})
        if records:
            self._apply(records)
        if ids:
            self.client.xack(self.stream, self.group, *ids)
        self.totals.entries += len(ids)

    def _apply(self, records: list[dict[str, Any]]) -> None:
        """Apply the batch whole; when it is refused, each event alone to find the bad ones."""
        arrived = min(arrival(r["entry"]) for r in records)
        try:
            self._count(self.processor.apply([r["record"] for r in records], arrived))
            return
        except EventsRefused:
            pass
        good = []
        for r in records:
            try:
                self.processor.validate([r["record"]])
            except EventsRefused as exc:
                self._bury(r["entry"], r["fields"], str(exc))
            else:
                good.append(r["record"])
        if good:
            self._count(self.processor.apply(good, arrived))

    def _count(self, outcome: Any) -> None:  # noqa: ANN401  (a stream.processor.Outcome)
        self.totals.accepted += outcome.accepted
        self.totals.duplicates += outcome.duplicates

    @staticmethod
    def _parse(fields: dict[Any, Any] | None) -> tuple[dict[str, Any] | None, str]:
        """The entry's event, or None and why not."""
        if not fields:
            return None, "entry deleted from the stream"
        values = {_text(k): v for k, v in fields.items()}
        if FIELD not in values:
            return None, f"no field '{FIELD}' (fields: {', '.join(sorted(values))})"
        try:
            record = json.loads(_text(values[FIELD]))
        except json.JSONDecodeError as exc:
            return None, f"field '{FIELD}' is not JSON: {exc}"
        if not isinstance(record, dict):
            return None, f"field '{FIELD}' is not a JSON object"
        return record, ""

    def _bury(self, entry_id: str, fields: dict[Any, Any] | None, reason: str) -> None:
        """Append an entry that cannot be taken to the dead-letter file."""
        self.dead_letter.parent.mkdir(parents=True, exist_ok=True)
        line = {
            "at": dt.datetime.now(dt.UTC).isoformat(),
            "stream": self.stream,
            "entry_id": entry_id,
            "fields": {_text(k): _text(v) for k, v in (fields or {}).items()},
            "reason": reason,
        }
        with self.dead_letter.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")
        self.totals.dead += 1
        log.warning("dead letter %s: %s", entry_id, reason)
