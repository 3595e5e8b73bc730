"""Real-time benchmark: event-to-alert latency over HTTP and through Redis, beside one batch build.

Run by `bench/run.py --only stream` in a fresh process (`python bench/stream.py ARGS_JSON
RESULT_JSON_PATH`); it returns the table rows itself.

What it does:

1. Builds a workspace in `workdir/stream` (`CUSTOMERS` x `DAYS`, seeded): generate, ingest, feature
   build, Feast apply, a champion (`TRIALS` Optuna trials), materialize.
2. The baseline, in this process: one batch build for the same customers, timed as the sum of
   the feature build (`features.pipeline.build_features`), materialize and the batch scoring of
   every customer (`crm.alerts.scored_features`): what a complaint waits for without the
   real-time path.
3. HTTP: the scoring service (`churn.server.running_service`, one worker, SQLite stream state)
   takes POST /events, one event per request, `rate` requests per second for `seconds`, sent on
   schedule whatever the answers (aiohttp).
4. Broker: `churn stream` (the real CLI, a subprocess, Redis state) consumes a Redis stream that
   this process XADDs to at the same rate for the same time.

Each path gets its own half of the customers who have not churned. Each event's timestamp is the
moment it is sent, so an alert's `newest_event` says when the event that raised it left. The mix
is `COMPLAINT_SHARE` complaints (two in 30 days fire the `complaint_spike` rule; the cool-down lets
each customer's first such alert out), the rest visits, clicks and purchases; `DUPLICATE_SHARE`
of the events are sent a second time with the same event id (a CRM retrying), which must not count.

Figures, per path:
- event -> alert: a local webhook receiver (in this process) times each alert from its
  `newest_event` (the newest event of the customer in the batch that raised it) to its arrival;
- event -> features written: from `stream.freshness_log`, each event counted with its batch's lag
  from the batch's oldest arrival (the request, or the Redis entry) to the online-store write;
- lost: sent event ids missing from the event log the batch build reads (the HTTP sender retries
  a request refused with 429, as a CRM would, up to `RETRIES_429` times); double-counted: ids held
  more than once there.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if __name__ in ("__main__", "__mp_main__"):
    # Run as a script, this file's folder would come first on sys.path and `import stream` would
    # find this module instead of the `stream` package.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

CUSTOMERS, DAYS, TRIALS = 1_000, 220, 2
COMPLAINT_SHARE = 0.3
DUPLICATE_SHARE = 0.02
OTHER_TYPES = ("visit", "click", "purchase")
TARGET_P99_S = 1.0
RETRIES_429 = 8
"""How often the HTTP sender retries a request refused with 429 (waits from 0.5 s, doubling, at most 8 s)."""
PER_REQUEST = (1, 10)
"""Events per POST /events request, one HTTP run each."""


class Receiver(ThreadingHTTPServer):
    """The CRM's webhook: keeps each alert with the time it arrived."""

    def __init__(self) -> None:
        """Listen on a free port."""
        self.got: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["content-length"]))
        at = time.time()
        with self.server.lock:
            self.server.got.append((at, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:  # noqa: ANN401
        pass


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p99 and max of `values` (NaN without any)."""
    if not values:
        return {"p50": math.nan, "p99": math.nan, "max": math.nan, "n": 0}
    a = np.asarray(values, float)
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(a.max()), "n": len(a)}


def _settings(ws: Path, extra: dict[str, Any] | None = None) -> Any:  # noqa: ANN401
    from core.settings import parse_settings

    training = {"n_trials": TRIALS, "max_rounds": 150, "gate": {"must_beat_baselines": False}}
    raw = {"workspace": str(ws), "training": training, **(extra or {})}
    return parse_settings(raw, source="bench", env={})


def build_workspace(ws: Path, seed: int) -> float:
    """Generate, ingest, build, apply, train, materialize; the seconds it took."""
    from features.generator.dataset import generate, write_generated
    from features.ingest import ingest
    from features.pipeline import apply_features, build_features, materialize
    from training.pipeline import train

    started = time.perf_counter()
    settings = _settings(ws)
    customers, events = write_generated(generate(CUSTOMERS, DAYS, seed=seed), ws / "raw")
    ingest(settings, customers_path=customers, events_path=events)
    build_features(settings)
    apply_features(settings)
    train(settings)
    materialize(settings)
    return time.perf_counter() - started


def batch_build(settings: Any) -> dict[str, float]:  # noqa: ANN401
    """One batch build for every customer: feature build, materialize, batch scoring (seconds each)."""
    from crm.alerts import scored_features
    from features.pipeline import build_features, materialize
    from model.champion import load_champion
    from model.predictor import predictor_of

    out: dict[str, float] = {}
    started = time.perf_counter()
    build_features(settings)
    out["features"] = time.perf_counter() - started
    started = time.perf_counter()
    materialize(settings)
    out["materialize"] = time.perf_counter() - started
    started = time.perf_counter()
    predictor = predictor_of(load_champion(settings.mlflow_uri, settings.training.model_name), settings.serving)
    alerts, _ = scored_features(settings, predictor, None, reasons_top=settings.serving.batch_reasons_top)
    out["score"] = time.perf_counter() - started
    out["customers"] = float(len(alerts))
    out["total"] = out["features"] + out["materialize"] + out["score"]
    return out


def plan_events(customers: list[str], n: int, prefix: str, seed: int) -> list[dict[str, Any]]:
    """`n` events (timestamps left for the sender), then `DUPLICATE_SHARE` of them again, shuffled in."""
    rng = np.random.default_rng(seed)
    kinds = rng.choice(
        ["complaint", *OTHER_TYPES], size=n, p=[COMPLAINT_SHARE, *[(1 - COMPLAINT_SHARE) / len(OTHER_TYPES)] * 3]
    )
    keyed: list[tuple[float, dict[str, Any]]] = []
    for i, kind in enumerate(kinds):
        event: dict[str, Any] = {
            "event_id": f"{prefix}-{i}",
            "customer_id": customers[int(rng.integers(len(customers)))],
            "event_type": str(kind),
        }
        if kind == "purchase":
            event["amount"] = round(float(rng.gamma(2.0, 20.0)), 2)
        keyed.append((float(i), event))
    for i in rng.choice(n, size=int(n * DUPLICATE_SHARE), replace=False):
        # Sent again up to 50 events later: a CRM retrying a request it got no answer to.
        keyed.append((int(i) + 0.5 + int(rng.integers(50)), {**keyed[int(i)][1], "repeat": True}))
    return [event for _, event in sorted(keyed, key=lambda kv: kv[0])]


def _send_schedule(events: list[dict[str, Any]], rate: float, send: Callable[[int, dict[str, Any]], None]) -> float:
    """Call `send(i, event)` for event i at start + i / rate, each stamped with its send time.

    Returns:
        How late a send was, at worst (seconds).
    """
    start = time.perf_counter() + 0.05
    late = 0.0
    first: dict[str, str] = {}
    for i, event in enumerate(events):
        due = start + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        late = max(late, time.perf_counter() - due)
        if event.get("repeat"):
            body = {k: v for k, v in event.items() if k != "repeat"}
            body["event_timestamp"] = first[event["event_id"]]
        else:
            body = dict(event)
            body["event_timestamp"] = first[event["event_id"]] = dt.datetime.now(dt.UTC).isoformat()
        send(i, body)
    return late


def over_http(url: str, events: list[dict[str, Any]], rate: float, per_request: int = 1) -> dict[str, Any]:
    """POST events to /events on schedule, `per_request` to a request (an asyncio loop on a thread sends them).

    With several per request, each event waits in the sender until its request is full, and that
    wait counts in its latency (its timestamp is when it was due).
    """
    import aiohttp

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    results: dict[str, Any] = {"latency_s": [], "accepted": 0, "duplicates": 0, "errors": {}, "retried_429": 0}
    holder: dict[str, Any] = {}

    async def open_session() -> None:
        holder["session"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60)
        )

    asyncio.run_coroutine_threadsafe(open_session(), loop).result()

    async def post(batch: list[dict[str, Any]]) -> None:
        sent = time.perf_counter()
        for attempt in range(RETRIES_429 + 1):  # a CRM retries a refused (429) request, same event id
            try:
                async with holder["session"].post(f"{url}/events", json={"events": batch}) as r:
                    answer = await r.json(content_type=None)
                    status = r.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                results["errors"][type(exc).__name__] = results["errors"].get(type(exc).__name__, 0) + 1
                return
            if status != 429 or attempt == RETRIES_429:
                break
            results["retried_429"] += 1
            await asyncio.sleep(min(8.0, 0.5 * 2**attempt))  # backing off, as a CRM should
        results["latency_s"].append(time.perf_counter() - sent)
        if status != 200:
            results["errors"][str(status)] = results["errors"].get(str(status), 0) + 1
            return
        results["accepted"] += answer["accepted"]
        results["duplicates"] += answer["duplicates"]

    futures = []
    buffer: list[dict[str, Any]] = []

    def flush() -> None:
        if buffer:
            futures.append(asyncio.run_coroutine_threadsafe(post(list(buffer)), loop))
            buffer.clear()

    def send(i: int, body: dict[str, Any]) -> None:
        if any(b["event_id"] == body["event_id"] for b in buffer):
            flush()  # a repeat goes in a request of its own (one id twice in a request is refused)
        buffer.append(body)
        if len(buffer) >= per_request:
            flush()

    late = _send_schedule(events, rate, send)
    flush()
    for f in futures:
        f.result(timeout=600)
    asyncio.run_coroutine_threadsafe(holder["session"].close(), loop).result()
    loop.call_soon_threadsafe(loop.stop)
    results["max_send_lag_s"] = late
    return results


def through_redis(settings: Any, client: Any, events: list[dict[str, Any]], rate: float) -> dict[str, Any]:  # noqa: ANN401
    """XADD each event on schedule; wait until the consumer group has acknowledged them all."""
    from stream.lag import group_lag

    cfg = settings.stream
    late = _send_schedule(events, rate, lambda i, body: client.xadd(cfg.events_stream, {"event": json.dumps(body)}))
    deadline = time.time() + 300
    while time.time() < deadline:
        lag = group_lag(client, cfg.events_stream, cfg.group)
        if lag is not None and lag.pending == 0 and not lag.undelivered:
            break
        time.sleep(0.2)
    return {"max_send_lag_s": late}


def start_consumer(config: Path, ws: Path) -> subprocess.Popen[str]:
    """`churn stream` on `config`, once it says it is consuming."""
    env = {**os.environ, "CHURN_CONFIG": str(config), "PYTHONWARNINGS": "ignore"}
    log = (ws / "logs" / "churn-stream.log").open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "churn"), "stream", "--consumer", "bench-1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "consuming" in line:
            return proc
    raise RuntimeError(f"churn stream exited before consuming; see {ws / 'logs' / 'churn-stream.log'}")


def stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, then wait (SIGKILL after 30 s)."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def alert_latency(receiver: Receiver, customers: set[str], since: float) -> dict[str, float]:
    """Seconds from each alert's `newest_event` to its arrival, for the alerts of `customers`."""
    with receiver.lock:
        got = [(at, a) for at, a in receiver.got if at >= since and a["customer_id"] in customers]
    delays = [at - dt.datetime.fromisoformat(a["newest_event"]).timestamp() for at, a in got if a.get("newest_event")]
    return percentiles(delays)


def feature_latency(settings: Any, since: dt.datetime) -> dict[str, float]:  # noqa: ANN401
    """Event -> features written, from the freshness log's batches written after `since` (over events)."""
    from crm.freshness import freshness_of

    fresh = freshness_of(settings.path(settings.stream.freshness_log), since, dt.datetime.now(dt.UTC))
    return {
        "p50": fresh.lag_p50_s or math.nan,
        "p99": fresh.lag_p99_s or math.nan,
        "max": fresh.lag_max_s or math.nan,
        "events": fresh.events,
        "batches": fresh.batches,
    }


def counted(settings: Any, events: list[dict[str, Any]]) -> dict[str, int]:  # noqa: ANN401
    """Lost and double-counted events: the sent ids against the event log's appended parts."""
    from features.paths import FeaturePaths
    from features.snapshots.inputs import appended_parts

    parts = appended_parts(FeaturePaths.of(settings).clean_events)
    held = pd.concat([pd.read_parquet(p, columns=["event_id"]) for p in sorted(parts.glob("*.parquet"))])
    counts = held["event_id"].value_counts()
    sent = {e["event_id"] for e in events}
    mine = counts[counts.index.isin(sent)]
    return {
        "sent": len(events),
        "distinct": len(sent),
        "lost": len(sent - set(mine.index)),
        "double": int((mine > 1).sum()),
    }


def _warmup(customers: list[str], prefix: str) -> list[list[dict[str, Any]]]:
    """A few untimed batches of visits (from the last customers of a path) before the timed run."""
    now = dt.datetime.now(dt.UTC)
    return [
        [
            {
                "event_id": f"{prefix}-{b}-{i}",
                "customer_id": customers[-1 - i],
                "event_timestamp": (now - dt.timedelta(seconds=b * 10 + i)).isoformat(),
                "event_type": "visit",
            }
            for i in range(5)
        ]
        for b in range(3)
    ]


@contextmanager
def _nothing() -> Iterator[str]:
    yield ""


def _ms(p: dict[str, float]) -> str:
    return f"p50 {p['p50'] * 1e3:,.0f} ms / p99 {p['p99'] * 1e3:,.0f} ms"


def _write_config(settings: Any, path: Path) -> Path:  # noqa: ANN401
    import yaml

    path.write_text(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False))
    return path


def _redis_keys(client: Any, prefix: str) -> None:  # noqa: ANN401
    keys = list(client.scan_iter(f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


PATHS = ("http1", "http10", "redis")
"""The measured paths: POST /events with 1 and 10 events per request, the Redis stream."""


def _reused(ws: Path) -> bool:
    """Whether `ws` holds a workspace an earlier run built; if so, its stream state and appended
    events are cleared so the next run starts as a fresh build's would (but for the online rows)."""
    from features.paths import FeaturePaths

    if not (ws / ".built").exists():
        return False
    settings = _settings(ws)
    from features.snapshots.inputs import appended_parts

    shutil.rmtree(appended_parts(FeaturePaths.of(settings).clean_events), ignore_errors=True)
    shutil.rmtree(settings.path(settings.stream.state_path).parent, ignore_errors=True)
    settings.path(settings.stream.alert_log).unlink(missing_ok=True)
    return True


def measure(
    workdir: str,
    seed: int,
    rate: float,
    seconds: float,
    redis: str,
    paths: tuple[str, ...] = PATHS,
    reuse: bool = False,
) -> dict[str, Any]:
    """The whole benchmark (see the module docstring); the table rows and the raw figures.

    Args:
        workdir: Where the workspace goes (`workdir/stream`).
        seed: The seed of the data, the model and the events.
        rate: Events per second.
        seconds: How long each path is sent events.
        redis: host:port of Redis (the broker path).
        paths: Which of `PATHS` to measure (a quicker run for iterating on one).
        reuse: Keep the workspace an earlier run built (stream state and appended events cleared)
            and skip the batch build: a quicker run for iterating, without the table's baseline.
    """
    from churn.cli.common import Context
    from churn.server import running_service
    from core import names
    from features.paths import FeaturePaths

    ws = Path(workdir) / "stream"
    if reuse and _reused(ws):
        setup_s, base = 0.0, None
    else:
        shutil.rmtree(ws, ignore_errors=True)
        ws.mkdir(parents=True)
        (ws / "logs").mkdir()
        setup_s = build_workspace(ws, seed)
        (ws / ".built").touch()
        base = None if reuse else batch_build(_settings(ws))
    customers = pd.read_parquet(FeaturePaths.of(_settings(ws)).clean_customers)
    quiet = customers[customers[names.CHURN_DATE].isna()][names.CUSTOMER_ID].astype(str).tolist()
    np.random.default_rng(seed).shuffle(quiet)
    third = len(quiet) // 3
    halves = {"http1": quiet[:third], "http10": quiet[third : 2 * third], "redis": quiet[2 * third :]}
    n = round(rate * seconds)
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = {"webhook_url": f"http://127.0.0.1:{receiver.server_port}/alerts", "webhook_backoff_s": 0.05}
    raw: dict[str, Any] = {"setup_s": setup_s, "batch": base, "rate": rate, "seconds": seconds, "quiet": len(quiet)}

    # HTTP: the service's POST /events, one event per request, then ten.
    # More requests in flight than the default load shedding allows (64): the bench measures latency,
    # and a CRM sending 100 single-event requests a second keeps about a second's worth in flight.
    settings = _settings(ws, {"stream": hook, "serving": {"max_concurrency": 512}})
    ctx = Context(settings, _write_config(settings, ws / "http.yaml"))
    http = [k for k in PER_REQUEST if f"http{k}" in paths]
    with running_service(ctx, timeout_s=300, env={"BENTOML_HOME": str(ws / "bentoml")}) if http else _nothing() as url:
        for batch in _warmup(halves["http1"], "hw") if http else []:  # the first batches load what later ones reuse
            httpx.post(f"{url}/events", json={"events": batch}, timeout=120).raise_for_status()
        for k in http:
            time.sleep(2)
            events = plan_events(halves[f"http{k}"], n, f"h{k}", seed + k)
            since, wall = dt.datetime.now(dt.UTC), time.time()
            answers = over_http(url, events, rate, per_request=k)
            time.sleep(3)  # the last alerts' delivery
            raw[f"http{k}"] = {
                "alert": alert_latency(receiver, set(halves[f"http{k}"]), wall),
                "features": feature_latency(settings, since),
                "answer": percentiles(answers.pop("latency_s")),
                **answers,
                **counted(settings, events),
            }

    if "redis" not in paths:
        receiver.shutdown()
        return {"rows": rows_of(raw) if base else [], "raw": raw}

    # Broker: XADD to a Redis stream that `churn stream` consumes.
    import redis as redis_py

    client = redis_py.Redis.from_url(f"redis://{redis}/0")
    try:
        client.ping()
    except redis_py.exceptions.ConnectionError as exc:
        raw["redis"] = {"skipped": f"Redis at {redis} does not answer: {exc}"}
        return {"rows": rows_of(raw) if base else [], "raw": raw}
    prefix = f"bench:{uuid.uuid4().hex[:8]}"
    stream_cfg = {
        **hook,
        "redis_url": f"redis://{redis}/0",
        "events_stream": f"{prefix}:events",
        "alerts_stream": f"{prefix}:alerts",
    }
    settings = _settings(ws, {"stream": stream_cfg})
    events = plan_events(halves["redis"], n, "r", seed + 1)
    consumer = start_consumer(_write_config(settings, ws / "redis.yaml"), ws)
    try:
        through_redis(settings, client, [e for batch in _warmup(halves["redis"], "rw") for e in batch], rate)
        time.sleep(1)
        since, wall = dt.datetime.now(dt.UTC), time.time()
        sent = through_redis(settings, client, events, rate)
        time.sleep(3)
    finally:
        stop(consumer)
    raw["redis"] = {
        "alert": alert_latency(receiver, set(halves["redis"]), wall),
        "features": feature_latency(settings, since),
        "alerts_stream": int(client.xlen(stream_cfg["alerts_stream"])),
        **sent,
        **counted(settings, events),
    }
    _redis_keys(client, prefix)
    receiver.shutdown()
    return {"rows": rows_of(raw) if base else [], "raw": raw}


def rows_of(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The table rows (`bench.run.Row` fields) of the raw figures."""
    base = raw["batch"]
    baseline = f"one batch build of the same {base['customers']:,.0f} customers: features + materialize + score"
    batch_figure = (
        f"{base['total']:.1f} s (features {base['features']:.1f} s, materialize {base['materialize']:.1f} s, "
        f"score {base['score']:.1f} s)"
    )
    scale = f"{raw['rate']:g} events/s x {raw['seconds']:g} s"
    rows: list[dict[str, Any]] = []
    titles = [(f"http{k}", f"POST /events ({k} event{'s' if k > 1 else ''} per request)") for k in PER_REQUEST]
    for path, title in (*titles, ("redis", "Redis stream -> churn stream")):
        res = raw.get(path, {})
        if "skipped" in res or not res:
            rows.append(
                {
                    "name": f"{title}: event -> alert",
                    "scale": scale,
                    "figure": "skipped",
                    "notes": res.get("skipped", ""),
                }
            )
            continue
        alert, features = res["alert"], res["features"]
        ok = res["lost"] == 0 and res["double"] == 0
        count = (
            f"{res['sent']:,} events sent ({res['sent'] - res['distinct']:,} of them repeats of an event id), "
            f"{res['lost']} lost, {res['double']} double-counted in the event log"
        )
        extra = (
            f"; answers p50 {res['answer']['p50'] * 1e3:,.0f} ms / p99 {res['answer']['p99'] * 1e3:,.0f} ms, "
            f"{res['accepted']:,} accepted, {res['duplicates']:,} duplicates, {res['retried_429']:,} retries after a "
            f"429, errors {res['errors'] or 'none'}"
            if path.startswith("http")
            else f"; {res['alerts_stream']:,} alerts on the Redis alert stream"
        )
        rows.append(
            {
                "name": f"{title}: event sent -> alert at the webhook",
                "scale": scale,
                "figure": _ms(alert),
                "baseline": baseline,
                "baseline_figure": batch_figure,
                "ratio": alert["p50"] / base["total"],
                "target": "p99 <= 1 s, 0 lost, 0 double-counted",
                "met": bool(alert["p99"] <= TARGET_P99_S and ok),
                "notes": f"{alert['n']:,} alerts timed (max {alert['max'] * 1e3:,.0f} ms); {count}{extra}; "
                f"sender at most {res['max_send_lag_s'] * 1e3:.0f} ms late",
            }
        )
        rows.append(
            {
                "name": f"{title}: event -> features written",
                "scale": scale,
                "figure": _ms(features),
                "baseline": baseline,
                "baseline_figure": batch_figure,
                "ratio": features["p50"] / base["total"],
                "target": "p99 <= 1 s",
                "met": bool(features["p99"] <= TARGET_P99_S),
                "notes": f"{features['events']:,} events in {features['batches']:,} batches (stream.freshness_log: "
                f"from the batch's oldest arrival to the online-store write, max {features['max'] * 1e3:,.0f} ms)",
            }
        )
    return rows


def main(argv: list[str]) -> None:
    """`stream.py ARGS_JSON RESULT_JSON_PATH` (for `bench/run.py`), or `stream.py [options]` alone.

    Example, iterating on the one-event-per-request path on a workspace built once:
    `python bench/stream.py --paths http1 --seconds 20 --reuse`.
    """
    if len(argv) == 2 and not argv[0].startswith("-"):
        args, result_path = argv
        Path(result_path).write_text(json.dumps(measure(**json.loads(args)), default=float))
        return
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="/tmp/bench-stream")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--redis", default="127.0.0.1:6379")
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS), help="the paths to measure")
    parser.add_argument(
        "--reuse", action="store_true", help="keep the workspace an earlier --reuse run built; no batch baseline"
    )
    args = parser.parse_args(argv)
    out = measure(**{**vars(args), "paths": tuple(args.paths)})
    print(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main(sys.argv[1:])
