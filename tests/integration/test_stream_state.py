"""The stream's state on SQLite and on the machine's Redis: event ids are forgotten past their retention, and an
alert key (customer and rule, or customer and tier) lets one alert out per cool-down."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream.state import RedisState, SqliteState, StreamState


@pytest.fixture
def redis_state(redis_address: str) -> Iterator[RedisState]:
    import redis

    client = redis.Redis.from_url(f"redis://{redis_address}/0")
    prefix = f"test:state:{uuid.uuid4().hex[:10]}"
    yield RedisState(client, prefix)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def _forgets_by_age(state: StreamState) -> None:
    state.mark_seen(["old-1", "old-2"])
    stored = time.time()
    state.mark_seen(["old-1"])  # stored again: keeps the time it was first stored
    assert state.unseen(["old-1", "old-2", "new"]) == [False, False, True]
    # A minute later nothing is 30 minutes old; an hour later both are, and go.
    assert state.forget_seen(1800, now=stored + 60) == 0
    assert state.forget_seen(1800, now=stored + 3600) == 2
    assert state.unseen(["old-1", "old-2"]) == [True, True]


def test_sqlite_forgets_ids_past_the_retention(tmp_path: Path) -> None:
    _forgets_by_age(SqliteState(tmp_path / "state.db"))


def test_redis_forgets_ids_past_the_retention(redis_state: RedisState) -> None:
    _forgets_by_age(redis_state)


def test_a_state_file_from_before_retention_gets_storage_times(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE seen (event_id TEXT PRIMARY KEY)")
    db.execute("INSERT INTO seen VALUES ('legacy')")
    db.commit()
    db.close()
    state: Any = SqliteState(path)
    assert state.unseen(["legacy"]) == [False]
    assert state.forget_seen(60) == 0  # aged from the upgrade, not forgotten at once
    assert state.forget_seen(60, now=time.time() + 120) == 1


def _cools_down(state: StreamState, other: StreamState) -> None:
    """One alert per customer and rule within the cool-down; `other` shares `state`'s store (another worker)."""
    spike = "C1:rule:complaint_spike"
    assert state.claim_alert(spike, 60)
    assert not state.claim_alert(spike, 60)  # the same customer and rule stay quiet within the cool-down
    assert not other.claim_alert(spike, 60)  # another worker or consumer on the same store too
    assert state.claim_alert("C1:rule:engagement_drop", 60)  # another rule of the same customer
    assert state.claim_alert("C2:rule:complaint_spike", 60)  # the same rule of another customer
    tier = "C3:tier:high"
    assert state.claim_alert(tier, 0.3)
    assert not state.claim_alert(tier, 0.3)
    time.sleep(0.5)
    assert other.claim_alert(tier, 0.3)  # once the cool-down has passed, the next alert goes out


def test_sqlite_lets_one_alert_out_per_cool_down(tmp_path: Path) -> None:
    _cools_down(SqliteState(tmp_path / "state.db"), SqliteState(tmp_path / "state.db"))


def test_redis_lets_one_alert_out_per_cool_down(redis_state: RedisState) -> None:
    _cools_down(redis_state, RedisState(redis_state.client, redis_state.prefix))
