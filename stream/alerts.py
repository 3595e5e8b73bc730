"""Alerts on arrival: which updates warn, and their delivery (alert log, webhook, Redis stream).

A customer is alerted when an update makes it meet a warning rule it did not meet before, or
moves it to a higher risk tier; each (customer, rule) and (customer, tier) is alerted at most once
per `stream.alert_cooldown_s`. Delivery runs on its own thread, so a slow or failing webhook never
holds up the events behind it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from core.stream_settings import StreamSettings

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Churn-Signature"


def tier_rank(tiers: Mapping[str, float]) -> dict[str, int]:
    """Tier -> its rank, 0 for the lowest probability band."""
    return {name: i for i, (name, _) in enumerate(sorted(tiers.items(), key=lambda kv: kv[1]))}


def warnings(
    before: Mapping[str, Mapping[str, Any]], after: Sequence[Mapping[str, Any]], tiers: Mapping[str, float]
) -> list[tuple[dict[str, Any], list[str]]]:
    """The alerts an update raises, each with the cool-down keys that let it out.

    Args:
        before: Customer -> its answer before the update (a customer without one had none).
        after: Answers after the update (`/score` answers; those with an error are skipped).
        tiers: `serving.risk_tiers`.

    Returns:
        (alert, keys): the alert body (customer, probability, tier, previous tier, rules hit with
        values, the rules newly hit, top reasons, action, segment, customer value, model version) and its
        cool-down keys. The processor adds the real-time campaign and group (`crm.campaigns.realtime`).
    """
    rank = tier_rank(tiers)
    out: list[tuple[dict[str, Any], list[str]]] = []
    for answer in after:
        if "error" in answer:
            continue
        cid = str(answer["customer_id"])
        previous = before.get(cid)
        old_rules = {h["rule"] for h in previous.get("rule_hits", [])} if previous else set()
        hits = list(answer.get("rule_hits") or [])
        new_rules = [h["rule"] for h in hits if h["rule"] not in old_rules]
        old_tier = previous.get("risk_tier") if previous else None
        tier = answer["risk_tier"]
        rose = rank.get(tier, 0) > (rank.get(old_tier, 0) if old_tier is not None else 0)
        keys = [f"{cid}:rule:{r}" for r in new_rules] + ([f"{cid}:tier:{tier}"] if rose else [])
        if not keys:
            continue
        alert = {
            "customer_id": cid,
            "churn_probability": answer["churn_probability"],
            "risk_tier": tier,
            "previous_tier": old_tier,
            "tier_rose": rose,
            "new_rules": new_rules,
            "rule_hits": hits,
            "reasons": answer.get("reasons", []),
            "action": answer.get("action"),
            "segment": answer.get("segment"),
            "customer_value": answer.get("customer_value"),
            "model_version": answer.get("model_version"),
        }
        out.append((alert, keys))
    return out


def signature(secret: str, body: bytes) -> str:
    """The webhook signature header's value: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class AlertSender:
    """Delivers alerts on a thread: the alert log, the Redis alert stream, the webhook (with retries)."""

    def __init__(self, settings: StreamSettings, alert_log: Path, redis: Any = None) -> None:  # noqa: ANN401
        """Start the delivery thread.

        Args:
            settings: Webhook, secret, retries, backoff and the alert stream's name.
            alert_log: The JSON-lines file every alert is appended to.
            redis: A redis client for the alert stream (services profile), or None.
        """
        self.settings = settings
        self.alert_log = alert_log
        self.redis = redis
        self.delivered = 0
        self.failed = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._client = httpx.Client(timeout=5)
        self._thread = threading.Thread(target=self._run, name="alert-sender", daemon=True)
        self._thread.start()

    def send(self, alert: dict[str, Any]) -> None:
        """Queue an alert for delivery."""
        self._queue.put(alert)

    def close(self, timeout_s: float = 30) -> None:
        """Deliver what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout_s)
        self._client.close()

    def _run(self) -> None:
        while (alert := self._queue.get()) is not None:
            try:
                self._deliver(alert)
            except Exception:  # one alert's failure must not stop the others
                log.exception("alert for %s not delivered", alert.get("customer_id"))

    def _deliver(self, alert: dict[str, Any]) -> None:
        alert = {**alert, "sent_at": dt.datetime.now(dt.UTC).isoformat()}
        body = json.dumps(alert, default=str).encode()
        self.alert_log.parent.mkdir(parents=True, exist_ok=True)
        with self.alert_log.open("ab") as out:  # one write per line: a reader never sees half an alert
            out.write(body + b"\n")
        if self.redis is not None and self.settings.alerts_stream:
            self.redis.xadd(self.settings.alerts_stream, {"alert": body})
        if self.settings.webhook_url:
            if self.post(body):
                self.delivered += 1
            else:
                self.failed += 1

    def post(self, body: bytes) -> bool:
        """POST one alert to the webhook, retrying with doubling waits; whether it was taken (2xx)."""
        assert self.settings.webhook_url is not None
        headers = {"content-type": "application/json"}
        if self.settings.webhook_secret:
            headers[SIGNATURE_HEADER] = signature(self.settings.webhook_secret, body)
        wait = self.settings.webhook_backoff_s
        for attempt in range(self.settings.webhook_retries + 1):
            try:
                answer = self._client.post(self.settings.webhook_url, content=body, headers=headers)
                if answer.is_success:
                    return True
                problem = f"HTTP {answer.status_code}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            if attempt < self.settings.webhook_retries:
                log.warning("webhook %s (attempt %d); retrying in %.1f s", problem, attempt + 1, wait)
                time.sleep(wait)
                wait *= 2
        log.error("webhook gave up after %d attempts", self.settings.webhook_retries + 1)
        return False
