"""The stream's state: which event ids were stored, each customer's newest event, alert cool-downs.

Two backends with one interface: a SQLite file in the workspace (embedded default, shared by the
service's workers) and Redis (services profile, shared by every consumer). Each stored id keeps
when it was stored, so the store does not grow without bound: ids older than
`stream.seen_retention_days` are forgotten (`forget_seen`), after which a redelivery of that event
would count again, so the retention must outlast any redelivery or CRM retry.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol


class StreamState(Protocol):
    """What the real-time path remembers between events."""

    def unseen(self, event_ids: Sequence[str]) -> list[bool]:
        """Per id, whether no event with it was stored yet."""
        ...

    def mark_seen(self, event_ids: Sequence[str]) -> None:
        """Remember that these events were stored (called after the event log has them)."""
        ...

    def forget_seen(self, older_than_s: float, now: float | None = None) -> int:
        """Forget the ids stored more than `older_than_s` ago (the store's retention); how many."""
        ...

    def newest(self, customer_ids: Sequence[str]) -> list[str | None]:
        """Per customer, the time (ISO 8601) of the newest event its online features include."""
        ...

    def set_newest(self, stamps: dict[str, str]) -> None:
        """Record each customer's newest included event time (ISO 8601, UTC, so it sorts as text)."""
        ...

    def claim_alert(self, key: str, cooldown_s: float) -> bool:
        """True once per `cooldown_s` for a key (customer and rule): whether an alert may go out now."""
        ...


class SqliteState:
    """`StreamState` in a SQLite file (WAL, so the service's workers share it)."""

    def __init__(self, path: Path) -> None:
        """Open (and create) the state file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY, at REAL)")
        if "at" not in {row[1] for row in self._db.execute("PRAGMA table_info(seen)")}:
            # A state file written before ids had a storage time: theirs is now, so they age from here.
            self._db.execute("ALTER TABLE seen ADD COLUMN at REAL")
            self._db.execute("UPDATE seen SET at = ?", (time.time(),))
        self._db.execute("CREATE INDEX IF NOT EXISTS seen_at ON seen (at)")
        self._db.execute("CREATE TABLE IF NOT EXISTS newest (customer_id TEXT PRIMARY KEY, at TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS cooldown (key TEXT PRIMARY KEY, until REAL NOT NULL)")

    def _many(self, sql: str, values: Sequence[Any]) -> list[Any]:
        out: list[Any] = []
        for start in range(0, len(values), 500):
            chunk = list(values[start : start + 500])
            marks = ",".join("?" * len(chunk))
            out += self._db.execute(sql.format(marks=marks), chunk).fetchall()
        return out

    def unseen(self, event_ids: Sequence[str]) -> list[bool]:
        """See `StreamState.unseen`."""
        with self._lock:
            known = {r[0] for r in self._many("SELECT event_id FROM seen WHERE event_id IN ({marks})", event_ids)}
        return [i not in known for i in event_ids]

    def mark_seen(self, event_ids: Sequence[str]) -> None:
        """See `StreamState.mark_seen`."""
        now = time.time()
        with self._lock:
            self._db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?)", [(i, now) for i in event_ids])

    def forget_seen(self, older_than_s: float, now: float | None = None) -> int:
        """See `StreamState.forget_seen`."""
        cutoff = (time.time() if now is None else now) - older_than_s
        with self._lock:
            return self._db.execute("DELETE FROM seen WHERE at < ?", (cutoff,)).rowcount

    def newest(self, customer_ids: Sequence[str]) -> list[str | None]:
        """See `StreamState.newest`."""
        with self._lock:
            rows = dict(self._many("SELECT customer_id, at FROM newest WHERE customer_id IN ({marks})", customer_ids))
        return [rows.get(c) for c in customer_ids]

    def set_newest(self, stamps: dict[str, str]) -> None:
        """See `StreamState.set_newest`."""
        with self._lock:
            self._db.executemany(
                "INSERT INTO newest VALUES (?, ?) ON CONFLICT(customer_id) DO UPDATE SET at = max(at, excluded.at)",
                list(stamps.items()),
            )

    def claim_alert(self, key: str, cooldown_s: float) -> bool:
        """See `StreamState.claim_alert`."""
        now = time.time()
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO cooldown VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET until = excluded.until"
                " WHERE cooldown.until <= ?",
                (key, now + cooldown_s, now),
            )
            return cursor.rowcount > 0

    def close(self) -> None:
        """Close the file."""
        self._db.close()


class RedisState:
    """`StreamState` in Redis, its keys prefixed (the events stream's name by default)."""

    def __init__(self, client: Any, prefix: str) -> None:  # noqa: ANN401  (a redis.Redis)
        """Use `client` with keys under `prefix`."""
        self.client = client
        self.prefix = prefix
        self._seen = f"{prefix}:seen-at"
        """Sorted set: each stored event id, scored with when it was stored."""

    def unseen(self, event_ids: Sequence[str]) -> list[bool]:
        """See `StreamState.unseen`."""
        if not event_ids:
            return []
        return [v is None for v in self.client.zmscore(self._seen, list(event_ids))]

    def mark_seen(self, event_ids: Sequence[str]) -> None:
        """See `StreamState.mark_seen`."""
        if event_ids:
            now = time.time()
            # NX: an id keeps the time it was first stored.
            self.client.zadd(self._seen, dict.fromkeys(event_ids, now), nx=True)

    def forget_seen(self, older_than_s: float, now: float | None = None) -> int:
        """See `StreamState.forget_seen`."""
        cutoff = (time.time() if now is None else now) - older_than_s
        return int(self.client.zremrangebyscore(self._seen, "-inf", f"({cutoff}"))

    def newest(self, customer_ids: Sequence[str]) -> list[str | None]:
        """See `StreamState.newest`."""
        if not customer_ids:
            return []
        values = self.client.hmget(f"{self.prefix}:newest", list(customer_ids))
        return [v.decode() if isinstance(v, bytes) else v for v in values]

    def set_newest(self, stamps: dict[str, str]) -> None:
        """See `StreamState.set_newest`."""
        if not stamps:
            return
        key = f"{self.prefix}:newest"
        current = dict(zip(stamps, self.newest(list(stamps)), strict=True))
        update = {c: at for c, at in stamps.items() if current[c] is None or at > str(current[c])}
        if update:
            self.client.hset(key, mapping=update)

    def claim_alert(self, key: str, cooldown_s: float) -> bool:
        """See `StreamState.claim_alert`."""
        if cooldown_s <= 0:
            return True
        return bool(self.client.set(f"{self.prefix}:cooldown:{key}", "1", nx=True, px=max(1, int(cooldown_s * 1000))))
