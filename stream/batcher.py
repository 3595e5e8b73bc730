"""Group commit for POST /events: requests that arrive while a batch is processed go in together.

The waiting requests' events are validated together (one check; only when it refuses, each
request alone, so a bad request is refused whole and never affects another), then every valid
request is processed as one batch: one append to the event log, one feature computation and write
for the customers they touch, one scoring. One batch runs at a time (`drain_all`), and each
takes every request that arrived while the one before ran: under load the cost of a batch is
shared by the requests in it instead of each paying it in turn, so the wait stays about one batch
long instead of growing with the queue. Each request gets its own share of the outcome: its
events taken or repeated, the alerts of its customers.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pandas as pd

from core import names
from stream.intake import EventsRefused
from stream.processor import Outcome, StreamProcessor

logger = logging.getLogger(__name__)


@dataclass
class _Request:
    records: Sequence[Any]
    arrived_at: dt.datetime
    future: Future[Outcome]


class Batcher:
    """Collects requests (`submit`) and processes all that wait in one batch (`drain`)."""

    def __init__(self, processor: StreamProcessor) -> None:
        """Process batches with `processor`."""
        self.processor = processor
        self._pending: list[_Request] = []
        self._lock = threading.Lock()
        self._draining = False

    def submit(self, records: Sequence[Any], arrived_at: dt.datetime) -> tuple[Future[Outcome], bool]:
        """Queue one request's events.

        Returns:
            The future of its outcome (or EventsRefused), and whether the caller must start
            `drain_all` (no drain is running or about to run): one runs at a time, so each batch
            takes every request that arrived while the one before was processed.
        """
        request = _Request(records, arrived_at, Future())
        with self._lock:
            self._pending.append(request)
            start, self._draining = not self._draining, True
        return request.future, start

    def drain_all(self) -> None:
        """Process batches until no request waits (`submit` said when to start it)."""
        while True:
            with self._lock:
                if not self._pending:
                    self._draining = False
                    return
            try:
                self.drain()
            except Exception:  # drain sets each request's future; this keeps the loop alive
                logger.exception("POST /events batch failed")

    def _validate(self, requests: Sequence[_Request]) -> tuple[list[tuple[_Request, list[str]]], pd.DataFrame]:
        """Each valid request with its event ids, and the contract rows of them all (each id once, in
        the order sent); a refused request's future gets its refusal.

        One validation of every request's events together (the cost of a check is mostly per call,
        not per event); only when that refuses, each request alone, to find the refused ones.
        """
        try:
            frame = self.processor.validate(_merged(requests))
        except EventsRefused:
            pass
        else:
            return [(request, _ids_of(request.records)) for request in requests], frame
        valid: list[tuple[_Request, list[str]]] = []
        frames: list[pd.DataFrame] = []
        for request in requests:
            try:
                frames.append(self.processor.validate(request.records))
            except EventsRefused as exc:
                request.future.set_exception(exc)
            else:
                valid.append((request, _ids_of(request.records)))
        if not frames:
            return [], pd.DataFrame()
        rows = pd.concat(frames, ignore_index=True)
        # An id sent by an earlier request counts for it, as in `_merged`.
        return valid, rows[~rows[names.EVENT_ID].astype(str).duplicated()].reset_index(drop=True)

    def drain(self) -> int:
        """Validate and process every waiting request as one batch; how many requests it took.

        One thread at a time (`drain_all` calls it until no request waits).
        """
        with self._lock:
            requests, self._pending = self._pending, []
        if not requests:
            return 0
        try:
            valid, rows = self._validate(requests)
        except Exception as exc:  # noqa: BLE001  (each request's caller reports it)
            for request in requests:
                if not request.future.done():
                    request.future.set_exception(exc)
            return len(requests)
        if not valid:
            return len(requests)
        try:
            outcome = self.processor.process(rows, min(r.arrived_at for r, _ in valid))
        except Exception as exc:  # noqa: BLE001
            for request, _ in valid:
                request.future.set_exception(exc)
            return len(requests)
        for (request, _), share in zip(valid, split(outcome, [ids for _, ids in valid], rows), strict=True):
            request.future.set_result(share)
        return len(requests)


def _merged(requests: Sequence[_Request]) -> list[Any]:
    """The requests' events in order, an event id sent by an earlier request left out (it counts once)."""
    earlier: set[str] = set()
    out: list[Any] = []
    for request in requests:
        ids = set()
        for record in request.records:
            event_id = record.get(names.EVENT_ID) if isinstance(record, Mapping) else None
            if isinstance(event_id, str) and event_id in earlier:
                continue
            if isinstance(event_id, str):
                ids.add(event_id)
            out.append(record)
        earlier |= ids
    return out


def _ids_of(records: Sequence[Any]) -> list[str]:
    """A valid request's event ids, in the order sent."""
    return [str(r[names.EVENT_ID]) for r in records]


def split(outcome: Outcome, requests: Sequence[Sequence[str]], rows: pd.DataFrame) -> list[Outcome]:
    """Each request's share of a batch's outcome.

    An event stored is counted for the first request that sent it; the others, and events stored
    before, are its duplicates. A request gets the alerts of the customers whose events it stored.

    Args:
        outcome: The outcome of the batch.
        requests: Each request's event ids, in the order the batch took the requests.
        rows: The batch's contract rows (event_id, customer_id, event_timestamp), each id at least once.
    """
    ids = rows[names.EVENT_ID].astype(str).tolist()
    customer_of = dict(zip(ids, rows[names.CUSTOMER_ID].astype(str).tolist(), strict=True))
    stamp_of = dict(zip(ids, rows[names.EVENT_TIMESTAMP].tolist(), strict=True))
    taken: set[str] = set()
    out = []
    for sent in requests:
        mine = [i for i in dict.fromkeys(sent) if i in outcome.fresh and i not in taken]
        taken.update(mine)
        customers = {customer_of[i] for i in mine}
        newest = max((stamp_of[i] for i in mine), default=None)
        out.append(
            Outcome(
                accepted=len(mine),
                duplicates=len(sent) - len(mine),
                customers=len(customers),
                alerts=[a for a in outcome.alerts if str(a["customer_id"]) in customers],
                newest_event=None if newest is None else pd.Timestamp(newest).tz_convert("UTC").isoformat(),
                fresh=frozenset(mine),
            )
        )
    return out
