"""How far `churn stream` is behind its Redis stream, for the service's /readyz.

The lag is the age of the oldest entry the consumer group has not acknowledged: pending (read,
not yet stored) or not yet delivered. An entry id is its arrival time in milliseconds, so the
lag needs no clock of the consumer's; a group that keeps up has none and a lag of 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Lag:
    """The consumer group's backlog."""

    seconds: float
    """Age of the oldest unacknowledged entry (0 without one)."""
    pending: int
    """Entries read and not yet acknowledged."""
    undelivered: int | None
    """Entries not yet read by the group (None when Redis does not say)."""


def _text(value: Any) -> str:  # noqa: ANN401
    return value.decode() if isinstance(value, bytes) else str(value)


def _arrival_s(entry_id: str) -> float:
    return int(entry_id.split("-", 1)[0]) / 1000


def group_lag(client: Any, stream: str, group: str, now: float | None = None) -> Lag | None:  # noqa: ANN401
    """The backlog of `group` on `stream`; None when the stream or the group does not exist.

    Args:
        client: A redis.Redis.
        stream: The events stream.
        group: The consumer group.
        now: Unix time (default: now).
    """
    from redis.exceptions import ResponseError

    now = time.time() if now is None else now
    try:
        groups = client.xinfo_groups(stream)
    except ResponseError:  # no such stream
        return None
    info = next((g for g in groups if _text(g["name"]) == group), None)
    if info is None:
        return None
    oldest: list[float] = []
    pending = int(info["pending"])
    if pending:
        summary = client.xpending(stream, group)
        oldest.append(_arrival_s(_text(summary["min"])))
    after = _text(info["last-delivered-id"])
    following = client.xrange(stream, min=f"({after}", max="+", count=1)
    if following:
        oldest.append(_arrival_s(_text(following[0][0])))
    lag = info.get("lag")
    return Lag(max(0.0, now - min(oldest)) if oldest else 0.0, pending, None if lag is None else int(lag))


def lag_problem(client: Any, stream: str, group: str, max_lag_s: float, now: float | None = None) -> str | None:  # noqa: ANN401
    """Why the consumer is too far behind (the oldest unacknowledged entry older than `max_lag_s`), or None.

    A stream with entries but no consumer group yet counts as behind by its oldest entry's age.
    """
    now = time.time() if now is None else now
    lag = group_lag(client, stream, group, now)
    if lag is None:
        try:
            first = client.xrange(stream, count=1)
        except Exception:  # noqa: BLE001  (no stream: nothing to consume)
            return None
        if first and now - _arrival_s(_text(first[0][0])) > max_lag_s:
            return f"stream {stream} has entries but no consumer group {group}: run `churn stream`"
        return None
    if lag.seconds > max_lag_s:
        return (
            f"the stream consumer is {lag.seconds:.1f} s behind on {stream} (stream.max_lag_s {max_lag_s:g}):"
            f" {lag.pending} pending, {lag.undelivered if lag.undelivered is not None else '?'} not yet read;"
            " is `churn stream` running?"
        )
    return None
