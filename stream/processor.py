"""One micro-batch of accepted events through the real-time path.

Order, so that nothing is lost or counted twice: drop events whose id was stored before; append
the rest to the event log; remember their ids; recompute and write the touched customers'
features; score them and send the alerts the update raises. A crash after the append and before
the ids are remembered stores a redelivered event twice, which every read counts once (the log
is read with each event id once). Each alert goes to treatment or control of the day's real-time
campaign (`crm.campaigns.realtime`) before it is sent: a control customer's alert has no action.

The answer before an update is the one this processor gave the customer last (kept for
`LAST_ANSWERS` customers), read from the online store only for the others: an update then reads
and scores the customers once instead of twice. With several processes (service workers,
consumers) a customer's last answer here may predate another process's update; the shared
cool-downs keep an alert from going out twice.

The answer after an update is scored from the rows just written (`stream.scoring.answers_for`
with what the write returned), not read back: the same values, unless another process wrote a
newer row for the customer meanwhile, which a store that keeps the newest row (Redis) then holds.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from core import names
from core.settings import Settings
from crm.freshness import append_record, record
from stream.alerts import AlertSender, warnings
from stream.intake import contract_events
from stream.log import EventLog
from stream.online import OnlineFeatures
from stream.state import StreamState

if TYPE_CHECKING:
    from features.feast_adapter import WrittenRows

logger = logging.getLogger(__name__)
LAST_ANSWERS = 50_000
"""Customers whose last answer a processor keeps, so an update scores them once (after), not twice."""


class Scorer(Protocol):
    """Customer ids -> their /score answers from the online store (an unknown one has an `error`)."""

    def __call__(self, customer_ids: list[str], written: WrittenRows | None = None) -> list[dict[str, Any]]:
        """The answers; `written` is what was just written to the store, scored without reading it back
        (`stream.scoring.answers_for`)."""
        ...


@dataclass(frozen=True)
class Outcome:
    """What one batch did."""

    accepted: int
    duplicates: int
    customers: int
    alerts: list[dict[str, Any]]
    newest_event: str | None
    fresh: frozenset[str] = frozenset()
    """Ids of the events stored (the batch's others were duplicates)."""


def utc_now() -> dt.datetime:
    """Now, UTC."""
    return dt.datetime.now(dt.UTC)


class StreamProcessor:
    """Events in; event log, online features, scores and alerts out."""

    def __init__(
        self,
        settings: Settings,
        log: EventLog,
        online: OnlineFeatures,
        state: StreamState,
        scorer: Scorer | None,
        sender: AlertSender | None,
        clock: Callable[[], dt.datetime] = utc_now,
        measured: Mapping[str, float] | None = None,
    ) -> None:
        """Wire the parts; nothing runs until `process` or `start_refresh`.

        `measured` is each action's measured success (`crm.campaigns.evaluation.measured_success`),
        for the expected profit kept with the real-time campaigns' assignments.
        """
        self.settings = settings
        self.log = log
        self.online = online
        self.state = state
        self.scorer = scorer
        self.sender = sender
        self.clock = clock
        self.measured = dict(measured or {})
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last: dict[str, dict[str, Any]] = {}
        """Customer -> the answer its last update here gave (the next update's "before", read once)."""

    def validate(self, records: Sequence[Any]) -> pd.DataFrame:
        """Pushed events as contract rows; see `stream.intake.contract_events` (raises EventsRefused)."""
        return contract_events(records, self.settings.data.events, self.online.known)

    def apply(self, records: Sequence[Any], arrived_at: dt.datetime | None = None) -> Outcome:
        """Validate pushed events and process them: the one path of POST /events and `churn stream`.

        Args:
            records: The events as JSON objects (`stream.intake.contract_events`).
            arrived_at: When the oldest of them arrived (the request, the Redis entry); default now.

        Raises:
            EventsRefused: An event is malformed or breaks the contract; nothing of the batch is kept.
        """
        arrived_at = arrived_at or self.clock()
        return self.process(self.validate(records), arrived_at)

    def start_refresh(self) -> None:
        """Compute the rank population now, then again every `stream.population_refresh_s` on a thread;
        each time, forget the event ids older than `stream.seen_retention_days`."""
        self.online.refresh_population(self.clock())
        self.forget_old_ids()

        def loop() -> None:
            while not self._stop.wait(self.settings.stream.population_refresh_s):
                try:
                    self.online.refresh_population(self.clock())
                    self.forget_old_ids()
                except Exception:  # the next refresh tries again; events keep flowing meanwhile
                    logger.exception("population refresh failed")

        threading.Thread(target=loop, name="population-refresh", daemon=True).start()

    def _answers_before(self, customers: list[str]) -> dict[str, dict[str, Any]]:
        """Each customer's answer before this update: the one this processor gave last, else scored now."""
        if self.scorer is None:
            return {}
        known = {c: self._last[c] for c in customers if c in self._last}
        missing = [c for c in customers if c not in known]
        if missing:
            known |= {str(a["customer_id"]): a for a in self.scorer(missing) if "error" not in a}
        return known

    def _remember(self, answers: list[dict[str, Any]]) -> None:
        """Keep the newest answers (at most `LAST_ANSWERS`, the least recently updated dropped first)."""
        for answer in answers:
            if "error" not in answer:
                cid = str(answer["customer_id"])
                self._last.pop(cid, None)
                self._last[cid] = answer
        while len(self._last) > LAST_ANSWERS:
            self._last.pop(next(iter(self._last)))

    def forget_old_ids(self) -> int:
        """Forget the stored event ids older than `stream.seen_retention_days`; how many."""
        return self.state.forget_seen(self.settings.stream.seen_retention_days * 86_400)

    def stop(self) -> None:
        """Stop the refresh thread."""
        self._stop.set()

    def process(self, events: pd.DataFrame, arrived_at: dt.datetime | None = None) -> Outcome:
        """Store, featurize, score and alert one batch of contract events (with event_id).

        Args:
            events: Contract rows with event_id.
            arrived_at: When the oldest of them arrived (default now): the start of the lag that
                `stream.freshness_log` records once their features are written.
        """
        arrived_at = arrived_at or self.clock()
        with self._lock:  # one batch at a time per process: an update reads what the previous wrote
            return self._process(events, arrived_at)

    def _process(self, events: pd.DataFrame, arrived_at: dt.datetime) -> Outcome:
        events = events.drop_duplicates(subset=[names.EVENT_ID]).reset_index(drop=True)
        fresh = events[self.state.unseen(events[names.EVENT_ID].astype(str).tolist())]
        duplicates = len(events) - len(fresh)
        if fresh.empty:
            return Outcome(0, duplicates, 0, [], None)
        self.log.append(fresh)
        self.state.mark_seen(fresh[names.EVENT_ID].astype(str).tolist())
        customers = sorted(fresh[names.CUSTOMER_ID].astype(str).unique())
        before = self._answers_before(customers)
        at = self.clock()
        rows = self.online.compute(customers, at)
        written = self.online.write(rows)
        newest = fresh.groupby(fresh[names.CUSTOMER_ID].astype(str))[names.EVENT_TIMESTAMP].max()
        stamps = {c: pd.Timestamp(t).tz_convert("UTC").isoformat() for c, t in newest.items()}
        self.state.set_newest(stamps)
        append_record(
            self.settings.path(self.settings.stream.freshness_log),
            record(self.clock(), len(fresh), arrived_at, pd.Timestamp(newest.max()).to_pydatetime()),
        )
        alerts: list[dict[str, Any]] = []
        if self.scorer is not None:
            after = self.scorer(customers, written)
            self._remember(after)
            for alert, keys in warnings(before, after, self.settings.serving.risk_tiers):
                claimed = [k for k in keys if self.state.claim_alert(k, self.settings.stream.alert_cooldown_s)]
                if not claimed:
                    continue
                alert["newest_event"] = stamps.get(alert["customer_id"])
                alert["features_at"] = at.isoformat()
                alerts.append(alert)
            alerts = self._campaign(alerts, at)
            for alert in alerts:
                if self.sender is not None:
                    self.sender.send(alert)
        fresh_ids = frozenset(fresh[names.EVENT_ID].astype(str))
        return Outcome(len(fresh), duplicates, len(customers), alerts, max(stamps.values()), fresh_ids)

    def _campaign(self, alerts: list[dict[str, Any]], at: dt.datetime) -> list[dict[str, Any]]:
        """The alerts with their real-time campaign and group, kept in the campaigns folder
        (`crm.campaigns.realtime`): a control customer's alert has no action."""
        if not alerts:
            return alerts
        from crm.campaigns.realtime import assign_alerts, record_alerts

        assigned = assign_alerts(alerts, self.settings, at)
        record_alerts(self.settings, assigned, at, self.measured)
        return assigned


def open_state(settings: Settings, redis: Any = None) -> StreamState:  # noqa: ANN401  (a redis.Redis)
    """The stream's state: in Redis with a client (services profile), else the workspace's SQLite file."""
    from stream.state import RedisState, SqliteState

    if redis is not None:
        return RedisState(redis, settings.stream.events_stream)
    return SqliteState(settings.path(settings.stream.state_path))


def open_processor(
    settings: Settings,
    store: Any,  # noqa: ANN401  (a feast.FeatureStore)
    scorer: Scorer | None,
    redis: Any = None,  # noqa: ANN401
    clock: Callable[[], dt.datetime] = utc_now,
) -> StreamProcessor:
    """A processor on the workspace's event log, `store`'s online store and the configured alerts.

    Raises:
        FileNotFoundError: No ingested data yet (`churn data ingest`).
    """
    from features.paths import FeaturePaths

    paths = FeaturePaths.of(settings)
    for path in (paths.clean_events, paths.clean_customers):
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: run `churn data ingest` first")
    log = EventLog(paths.clean_events)
    log.load()
    online = OnlineFeatures(settings, log, store)
    sender = AlertSender(settings.stream, settings.path(settings.stream.alert_log), redis)
    from crm.campaigns.evaluation import measured_success

    state = open_state(settings, redis)
    return StreamProcessor(settings, log, online, state, scorer, sender, clock, measured_success(settings))
