"""`churn stream` on the machine's Redis: events XADDed are applied, a consumer killed mid-run and
restarted loses nothing and counts nothing twice, a malformed entry is dead-lettered and acked."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from training_fixtures import build_workspace, churn_command, churn_env, settings_for, write_config

from core import names
from core.settings import Settings, parse_settings
from features.paths import FeaturePaths
from stream.log import EventLog


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small trained workspace with its features in the online store (as test_stream_http's)."""
    from features.pipeline import materialize
    from training.pipeline import train

    ws = tmp_path_factory.mktemp("stream-redis")
    build_workspace(ws)
    settings = settings_for(ws, n_trials=2, max_rounds=60)
    train(settings)
    materialize(settings)
    return ws


@pytest.fixture
def profile(workspace: Path, redis_address: str) -> Iterator[tuple[Settings, Any]]:
    """Settings on a stream (and state keys, alert stream) of this test's own, removed afterwards."""
    import redis

    name = f"test:churn:{uuid.uuid4().hex[:10]}"
    settings = parse_settings(
        {
            "workspace": str(workspace),
            "training": {"n_trials": 2, "max_rounds": 60},
            "stream": {
                "redis_url": f"redis://{redis_address}/0",
                "events_stream": name,
                "alerts_stream": f"{name}:alerts",
                "group": "test-group",
                "max_batch": 4,
                "dead_letter": f"stream/{name.replace(':', '-')}.dead.jsonl",
            },
        },
        "test",
        env={},
    )
    client = redis.Redis.from_url(settings.stream.redis_url)
    yield settings, client
    for key in client.scan_iter(f"{name}*"):
        client.delete(key)
    client.close()


def _customer(settings: Settings, nth: int) -> str:
    """The `nth` customer who has not churned (each test takes its own)."""
    customers = pd.read_parquet(FeaturePaths.of(settings).clean_customers)
    return str(customers[customers[names.CHURN_DATE].isna()][names.CUSTOMER_ID].iloc[nth])


def _complaints(settings: Settings, cid: str) -> float:
    """The customer's online count of complaints in the last 30 days."""
    from features.online import OnlineReader
    from features.pipeline import open_store

    rows = OnlineReader(open_store(settings), names.FEATURE_SERVICE).read([cid])
    wanted = [f for f in rows.columns if "complaints" in f and f.endswith("30d")]
    assert wanted, f"no complaints_30d feature among {sorted(rows.columns)}"
    return float(rows.columns[wanted[0]][0] or 0)


def _events(cid: str, prefix: str, count: int) -> list[dict[str, str]]:
    now = dt.datetime.now(dt.UTC)
    return [
        {
            "event_id": f"{prefix}-{i}",
            "customer_id": cid,
            "event_timestamp": (now - dt.timedelta(seconds=count - i)).isoformat(),
            "event_type": "complaint",
        }
        for i in range(count)
    ]


def _logged(settings: Settings, prefix: str) -> pd.DataFrame:
    """Rows of the appended event-log parts whose event id starts with `prefix`."""
    parts = EventLog(FeaturePaths.of(settings).clean_events).parts
    frames = [pd.read_parquet(p) for p in sorted(parts.glob("*.parquet"))] if parts.is_dir() else []
    if not frames:
        return pd.DataFrame(columns=[names.EVENT_ID])
    log = pd.concat(frames, ignore_index=True)
    return log[log[names.EVENT_ID].astype(str).str.startswith(f"{prefix}-")]


def _consumer(settings: Settings, client: Any, name: str = "in-process") -> Any:  # noqa: ANN401
    from features.pipeline import open_store
    from stream.consumer import Consumer
    from stream.processor import open_processor

    processor = open_processor(settings, open_store(settings), None, redis=client)
    return Consumer(client, processor, settings.path(settings.stream.dead_letter), name)


def _pending(settings: Settings, client: Any) -> int:  # noqa: ANN401
    return int(client.xpending(settings.stream.events_stream, settings.stream.group)["pending"])


def test_xadded_events_update_the_log_and_the_online_features(profile: tuple[Settings, Any]) -> None:
    settings, client = profile
    cid = _customer(settings, 0)
    before = _complaints(settings, cid)
    prefix = uuid.uuid4().hex[:8]
    for event in _events(cid, prefix, 3):
        client.xadd(settings.stream.events_stream, {"event": json.dumps(event)})

    totals = _consumer(settings, client).run(max_entries=3)

    assert (totals.entries, totals.accepted, totals.dead) == (3, 3, 0)
    assert sorted(_logged(settings, prefix)[names.EVENT_ID]) == [f"{prefix}-{i}" for i in range(3)]
    assert _complaints(settings, cid) == before + 3
    assert _pending(settings, client) == 0


def test_a_malformed_entry_is_dead_lettered_and_acknowledged(profile: tuple[Settings, Any]) -> None:
    settings, client = profile
    cid = _customer(settings, 1)
    prefix = uuid.uuid4().hex[:8]
    good, wrong_type = _events(cid, prefix, 2)
    wrong_type["event_type"] = "teleport"
    stream = settings.stream.events_stream
    client.xadd(stream, {"event": "{not json"})
    client.xadd(stream, {"event": json.dumps(wrong_type)})
    client.xadd(stream, {"payload": "x"})
    client.xadd(stream, {"event": json.dumps(good)})

    totals = _consumer(settings, client).run(max_entries=4)

    assert (totals.entries, totals.accepted, totals.dead) == (4, 1, 3)
    dead = [json.loads(line) for line in settings.path(settings.stream.dead_letter).read_text().splitlines()]
    reasons = " | ".join(d["reason"] for d in dead)
    assert len(dead) == 3 and "not JSON" in reasons and "teleport" in reasons and "no field 'event'" in reasons
    assert all(d["stream"] == stream and d["entry_id"] for d in dead)
    assert list(_logged(settings, prefix)[names.EVENT_ID]) == [good["event_id"]]
    assert _pending(settings, client) == 0


def test_a_killed_consumer_restarted_loses_nothing_and_counts_nothing_twice(
    profile: tuple[Settings, Any], tmp_path: Path
) -> None:
    settings, client = profile
    cid = _customer(settings, 2)
    before = _complaints(settings, cid)
    prefix = uuid.uuid4().hex[:8]
    count = 60
    events = _events(cid, prefix, count)
    stream = settings.stream.events_stream
    for event in events:
        client.xadd(stream, {"event": json.dumps(event)})
    # One event sent twice (a CRM's retry): it counts once.
    client.xadd(stream, {"event": json.dumps(events[0])})
    config = write_config(settings, tmp_path / "stream.yaml")
    command = churn_command("stream", "--config", str(config), "--consumer", "c1")

    first = subprocess.Popen(command, env=churn_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while _logged(settings, prefix).empty and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
    assert first.poll() is None, first.communicate()[0].decode()
    first.send_signal(signal.SIGKILL)
    first.wait()
    taken_before_kill = _logged(settings, prefix)[names.EVENT_ID].nunique()
    assert taken_before_kill < count, "the consumer finished before it was killed: nothing was tested"

    second = subprocess.Popen(command, env=churn_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and second.poll() is None:
        group = client.xinfo_groups(stream)[0]
        if group["pending"] == 0 and group.get("lag") == 0:
            break
        time.sleep(0.1)
    assert second.poll() is None, second.communicate()[0].decode()
    second.send_signal(signal.SIGTERM)
    output = second.communicate(timeout=60)[0].decode()
    assert second.returncode == 0, output
    assert "stopped:" in output

    logged = _logged(settings, prefix)
    assert sorted(set(logged[names.EVENT_ID])) == sorted(e["event_id"] for e in events)
    log = EventLog(FeaturePaths.of(settings).clean_events)
    log.load()
    assert len(log.events_of([cid]).query("event_type == 'complaint'")) >= count
    assert _complaints(settings, cid) == before + count
    assert _pending(settings, client) == 0


def test_entries_a_dead_consumer_left_pending_are_claimed(profile: tuple[Settings, Any]) -> None:
    settings, client = profile
    settings = settings.model_copy(update={"stream": settings.stream.model_copy(update={"claim_idle_s": 0.2})})
    cid = _customer(settings, 4)
    prefix = uuid.uuid4().hex[:8]
    stream, group = settings.stream.events_stream, settings.stream.group
    for event in _events(cid, prefix, 3):
        client.xadd(stream, {"event": json.dumps(event)})
    consumer = _consumer(settings, client, "survivor")
    consumer.ensure_group()
    client.xreadgroup(group, "died", {stream: ">"}, count=3)  # read, never acknowledged
    time.sleep(0.3)

    totals = consumer.run(max_entries=3)

    assert (totals.entries, totals.accepted) == (3, 3)
    assert sorted(_logged(settings, prefix)[names.EVENT_ID]) == [f"{prefix}-{i}" for i in range(3)]
    assert _pending(settings, client) == 0


def test_readyz_says_why_while_the_consumer_lags(profile: tuple[Settings, Any], tmp_path: Path) -> None:
    import httpx

    from churn.cli.common import Context
    from churn.server import running_service

    settings, client = profile
    settings = settings.model_copy(update={"stream": settings.stream.model_copy(update={"max_lag_s": 1.0})})
    config = write_config(settings, tmp_path / "served.yaml")
    prefix = uuid.uuid4().hex[:8]
    with running_service(Context(settings, config), timeout_s=180) as url:
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200  # nothing to consume yet
        consumer = _consumer(settings, client)
        consumer.ensure_group()
        client.xadd(settings.stream.events_stream, {"event": json.dumps(_events(_customer(settings, 3), prefix, 1)[0])})
        time.sleep(1.5)
        behind = httpx.get(f"{url}/readyz", timeout=10)
        assert behind.status_code == 503
        assert "behind" in behind.text and "churn stream" in behind.text and "1 not yet read" in behind.text
        assert consumer.run(max_entries=1).accepted == 1
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200


def test_alerts_on_the_redis_alert_stream_carry_their_campaign_and_group(profile: tuple[Settings, Any]) -> None:
    from features.pipeline import open_store
    from stream.processor import open_processor
    from stream.scoring import OnlineScorer

    settings, client = profile
    store = open_store(settings)
    processor = open_processor(settings, store, OnlineScorer(settings, store), redis=client)
    cid = _customer(settings, 20)
    outcome = processor.apply(_events(cid, uuid.uuid4().hex[:8], 2))
    assert processor.sender is not None
    processor.sender.close()
    alert = next(a for a in outcome.alerts if a["customer_id"] == cid)
    assert alert["campaign_id"].startswith("rt-") and alert["group"] in ("treatment", "control")
    sent = [json.loads(fields[b"alert"]) for _, fields in client.xrange(settings.stream.alerts_stream)]
    streamed = next(b for b in sent if b["customer_id"] == cid)
    assert {k: streamed[k] for k in ("campaign_id", "group", "action", "planned_action")} == {
        k: alert[k] for k in ("campaign_id", "group", "action", "planned_action")
    }
