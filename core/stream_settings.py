"""Settings of the real-time path (`stream/`): broker, batching, alerts and their webhook, freshness."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StreamSettings(_Frozen):
    """The real-time path: events pushed or streamed in, online features and alerts out (`stream/`)."""

    redis_url: str | None = None
    """The broker of the services profile (Redis Streams), e.g. redis://127.0.0.1:6379/0. None: the
    embedded default, where events come in through the service's POST /events and the stream's
    state (seen event ids, cool-downs, newest event times) lives in a SQLite file."""
    events_stream: str = "churn:events"
    """The Redis stream `churn stream` consumes; each entry's field `event` holds one event as JSON."""
    alerts_stream: str | None = "churn:alerts"
    """The Redis stream alerts are added to (services profile); None: webhook only."""
    group: str = "churn-stream"
    """The consumer group: each event goes to one consumer and is acknowledged after it is stored."""
    dead_letter: str = "stream/dead_letter.jsonl"
    """Where `churn stream` writes each entry it could not take (one JSON object a line, with the
    reason); the entry is acknowledged, so a bad one never blocks the stream."""
    claim_idle_s: float = Field(60.0, gt=0)
    """`churn stream` takes over (XAUTOCLAIM) entries another consumer of the group read and left
    unacknowledged this long (a consumer that died and was not restarted under its name)."""
    max_batch: int = Field(200, gt=0)
    """Events read and processed together (one feature computation for the customers they touch)."""
    batch_wait_ms: int = Field(50, ge=0)
    """How long the consumer waits for more events before it processes what it has."""
    max_events: int = Field(1_000, gt=0)
    """Events per POST /events request."""
    seen_retention_days: float = Field(30.0, gt=0)
    """How long a stored event id is remembered (a redelivery or retry within it never counts twice);
    older ids are forgotten at each population refresh, so the id store stays bounded. Keep it
    longer than any CRM retry or broker redelivery."""
    state_path: str = "stream/state.db"
    """The embedded default's state: seen event ids, newest event per customer, alert cool-downs."""
    freshness_log: str = "stream/freshness.jsonl"
    """One JSON line per stored batch: when its features were written and the lag from its arrival
    (what `churn monitor` and the ops report show as event-to-feature lag)."""
    alert_log: str = "alerts/stream.jsonl"
    """Every alert sent, one JSON object a line (as the prediction log keeps every score)."""
    webhook_url: str | None = None
    """Where alerts are POSTed as JSON; None: no webhook."""
    webhook_secret: str | None = None
    """With it, each webhook carries `X-Churn-Signature: sha256=<HMAC-SHA256 of the body>`."""
    webhook_retries: int = Field(5, ge=0)
    """Retries after a failed delivery (connection error or non-2xx answer)."""
    webhook_backoff_s: float = Field(0.2, gt=0)
    """First wait between retries; it doubles each time."""
    alert_cooldown_s: float = Field(3600.0, ge=0)
    """A customer is alerted for the same rule (or tier rise) at most once in this time."""
    max_lag_s: float = Field(5.0, gt=0)
    """/readyz reports the service not ready while the consumer is further behind than this."""
    population_refresh_s: float = Field(300.0, gt=0)
    """How often the population the rank-based features (RFM scores, BG/NBD) compare against is recomputed."""
