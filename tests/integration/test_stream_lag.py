"""The consumer's lag as /readyz reads it, on the machine's Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from stream.lag import group_lag, lag_problem

GROUP = "g"


@pytest.fixture
def stream(redis_address: str) -> Iterator[tuple[Any, str]]:
    import redis

    client = redis.Redis.from_url(f"redis://{redis_address}/0")
    name = f"test:lag:{uuid.uuid4().hex[:10]}"
    yield client, name
    client.delete(name)
    client.close()


def _at(entry_id: bytes) -> float:
    return int(entry_id.decode().split("-")[0]) / 1000


def test_no_stream_or_no_entries_is_no_lag(stream: tuple[Any, str]) -> None:
    client, name = stream
    assert group_lag(client, name, GROUP) is None
    assert lag_problem(client, name, GROUP, 5.0) is None


def test_entries_without_a_group_are_behind_once_old_enough(stream: tuple[Any, str]) -> None:
    client, name = stream
    at = _at(client.xadd(name, {"event": "{}"}))
    assert lag_problem(client, name, GROUP, 5.0, now=at + 1) is None
    problem = lag_problem(client, name, GROUP, 5.0, now=at + 10)
    assert problem is not None and "no consumer group" in problem and "churn stream" in problem


def test_lag_is_the_age_of_the_oldest_unacknowledged_entry(stream: tuple[Any, str]) -> None:
    client, name = stream
    client.xgroup_create(name, GROUP, id="0", mkstream=True)
    first = client.xadd(name, {"event": "{}"})
    client.xadd(name, {"event": "{}"})
    at = _at(first)
    lag = group_lag(client, name, GROUP, now=at + 7)
    assert lag is not None and lag.pending == 0 and lag.seconds == pytest.approx(7, abs=0.01)

    read = client.xreadgroup(GROUP, "c", {name: ">"}, count=1)  # the first is pending, the second unread
    lag = group_lag(client, name, GROUP, now=at + 7)
    assert lag is not None and lag.pending == 1 and lag.seconds == pytest.approx(7, abs=0.01)
    problem = lag_problem(client, name, GROUP, 5.0, now=at + 7)
    assert problem is not None and "7.0 s behind" in problem and "1 pending" in problem

    client.xack(name, GROUP, read[0][1][0][0])
    rest = client.xreadgroup(GROUP, "c", {name: ">"})
    client.xack(name, GROUP, *[entry_id for entry_id, _ in rest[0][1]])
    lag = group_lag(client, name, GROUP, now=at + 100)
    assert lag is not None and (lag.seconds, lag.pending) == (0.0, 0)
    assert lag_problem(client, name, GROUP, 5.0, now=at + 100) is None
