"""Serving benchmark: the churn BentoML service and batch scoring beside their baselines, one run.

Run by `bench/run.py --only serving` in a fresh process (`python bench/serving.py ARGS_JSON
RESULT_JSON_PATH`, like `bench/steps.py`); the table rows are built there. The batch-scoring figures
run in fresh processes of their own (`python bench/serving.py batch ARGS_JSON RESULT_JSON_PATH`),
so their peak memory (`VmHWM`) is theirs alone.

What it does:

1. Builds a small workspace in `workdir/serving` (600 customers x 220 days, the tests' size),
   trains a champion with `training.pipeline.train` (1 trial: calibration and reference sample),
   materializes the online store, then trains a 300-tree XGBoost (depth 6, eta 0.05) on the same
   split and features and makes it the champion: every figure uses this model. The services run
   with the default settings but for batching on/off (`serving.max_request_bytes`, 4 MB, takes a
   1,000-row /score_features body of ~1.4 MB; checked before the servers start).
2. In this process: the /score path without HTTP (`ChurnService`'s own online lookup and answer
   code on one customer: Feast online features, probability, SHAP reasons, CRM layers, prediction
   log), whole and stage by stage, the minimal endpoints' predict; and on 1,000 feature rows the
   stages of /score_features one by one (request parsing, validation, `Predictor.matrix`, predict,
   SHAP contributions, answers, CRM layers, log, JSON) beside `Predictor.score` (exact SHAP and
   `explainer="approx"`) and `Booster.inplace_predict` of a prepared frame, plus two alternatives:
   XGBoost's approximate contributions and `Predictor.probabilities` (no reasons).
3. Batch scoring (`crm.alerts.score_alerts`, what `churn score` runs once Feast has returned the
   offline features; Feast's read is replaced by a prepared frame) of `batch_rows` customers:
   rows drawn with replacement from the workspace's feature rows at every snapshot date (Feast
   historical features), given new customer ids and one date. Probabilities for every row, reasons
   for the top `serving.batch_reasons_top` (20,000) rows of the sorted list; also with reasons for
   none (`reasons_top=0`, whole frame) and for all rows (`reasons_top=None`, the first
   `ALL_REASONS_ROWS` = 100,000 rows only: exact SHAP of 1M rows takes many minutes). Beside a bare
   `Booster.predict` of the same rows (DMatrix built beforehand), each in a fresh process; then a
   last process times the stages of the batch path on `profile_rows` of those rows.
4. Starts seven servers: `serving.service:ChurnService` with adaptive batching on and off
   (`serving.batching.enabled`), with batching off on 2 API workers (`serving.workers`) and with
   batching off and approximate reasons (`serving.explainer: approx`, not exact SHAP), a
   minimal BentoML 1.4 service that only predicts (`MinimalBento`) with 1 worker and with 2
   (`CHURN_BENCH_WORKERS`), and the same in FastAPI + uvicorn (`make_fastapi_app`); the minimal
   endpoints take the /score_features JSON and answer probabilities. Then:
   - closed loop, wrk (C, `--latency`, a Lua script cycling through the bodies): at each
     connection count, a warm-up run and a timed run per server, servers taking turns; /score
     with one customer id per request, the minimal endpoints with that customer's online features;
     batch sizes of the batching service from its `bentoml_service_adaptive_batch_size` histogram
     (GET /metrics);
   - open loop (`open_loop`, aiohttp): /score at a fixed request rate, requests sent on schedule
     whatever the answers, latency from the scheduled send time, batching on and off (each
     followed by `settle`, so a backlog left behind does not slow the next figure);
   - /score_features with 1,000 rows per request, one connection, batching on and off (a request
     of >= `serving.batching.max_batch_size` rows skips the model service, so both score in the
     API process).

wrk and the open-loop generator share the machine's cores with the servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, cast

_HERE = Path(__file__).resolve().parent
if __name__ == "__main__":
    # Run as a script, this file's folder comes first on sys.path and `import serving` would find
    # this module instead of the `serving` package.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import bentoml  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

REPO = _HERE.parent
MODEL_ENV = "CHURN_BENCH_MODEL"
"""Environment variable naming the saved booster the minimal services load."""
TREES = 300
CUSTOMERS, DAYS = 600, 220
BIG_ROWS = 1_000
"""Feature rows per /score_features request in the large-request figure."""
ALL_REASONS_ROWS = 100_000
"""Rows of the batch figure with reasons for every row (contributions are the costly part)."""

Rows = Annotated[list[dict[str, float | str | None]], Field(min_length=1, max_length=BIG_ROWS)]


# --- the minimal services (imported by `bentoml serve` and uvicorn as bench.serving) ------------


def _load_booster() -> Any:
    """The booster saved at `$CHURN_BENCH_MODEL`, with its features and categories."""
    import xgboost as xgb

    from model.matrix import booster_categories

    booster = xgb.Booster(model_file=os.environ[MODEL_ENV])
    return booster, list(booster.feature_names or []), booster_categories(booster)


def _predict(booster: Any, features: list[str], categories: dict[str, list[str]], rows: list[dict[str, Any]]) -> Any:
    """Probabilities of JSON feature rows, the leanest way: one float32 array (category codes), DMatrix, predict."""
    import math

    import numpy as np
    import xgboost as xgb

    codes = _codes(tuple(features), tuple((k, tuple(v)) for k, v in categories.items()))
    matrix = np.array(
        [
            [
                codes[f].get(row.get(f), math.nan) if f in codes else (math.nan if row.get(f) is None else row[f])
                for f in features
            ]
            for row in rows
        ],
        dtype=np.float32,
    )
    types = ["c" if f in codes else "float" for f in features]
    return booster.predict(
        xgb.DMatrix(matrix, feature_names=features, feature_types=types, enable_categorical=True)
    ).tolist()


@functools.lru_cache(maxsize=4)
def _codes(
    features: tuple[str, ...], categories: tuple[tuple[str, tuple[str, ...]], ...]
) -> dict[str, dict[Any, float]]:
    """Category -> its training code, per categorical feature (built once per model)."""
    return {name: {v: float(i) for i, v in enumerate(values)} for name, values in categories}


WORKERS_ENV = "CHURN_BENCH_WORKERS"
"""Workers of the minimal BentoML endpoint (default 1), read when `bentoml serve` imports this module."""


@bentoml.service(name="bench_minimal", workers=int(os.environ.get(WORKERS_ENV, "1")), traffic={"timeout": 30})
class MinimalBento:
    """A BentoML 1.4 service that only predicts: no validation, reasons, CRM layers or logging."""

    def __init__(self) -> None:
        """Load the booster."""
        self.booster, self.features, self.categories = _load_booster()

    @bentoml.api
    def predict(self, rows: Rows) -> list[float]:
        """Churn probabilities of feature rows (the same JSON as /score_features)."""
        result: list[float] = _predict(self.booster, self.features, self.categories, rows)
        return result


class _Body(BaseModel):
    rows: Rows


def make_fastapi_app() -> Any:
    """The same endpoint in FastAPI (uvicorn `--factory bench.serving:make_fastapi_app`)."""
    from fastapi import FastAPI

    booster, features, categories = _load_booster()
    app = FastAPI()

    @app.post("/predict")
    def predict(body: _Body) -> list[float]:
        result: list[float] = _predict(booster, features, categories, body.rows)
        return result

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


# --- workspace, model and request data ----------------------------------------------------------


def _settings(ws: Path, batching: bool = True, workers: int = 1, explainer: str | None = None) -> Any:
    from core.settings import parse_settings

    serving: dict[str, Any] = {"batching": {"enabled": batching}, "workers": workers}
    if explainer is not None:
        serving["explainer"] = explainer
    raw = {"workspace": str(ws), "training": {"n_trials": 1, "max_rounds": 60}, "serving": serving}
    return parse_settings(raw, source="bench", env={})


def build_workspace(ws: Path, seed: int) -> dict[str, Any]:
    """Generate, ingest, featurize, train a champion, materialize; then a 300-tree champion.

    Returns:
        The saved booster's path, its version, feature count and training rows.
    """
    import mlflow
    import xgboost as xgb
    from mlflow import MlflowClient

    from core import names
    from features.generator.dataset import generate, write_generated
    from features.ingest import ingest
    from features.pipeline import apply_features, build_features, materialize
    from model.matrix import dmatrix, remember_categories
    from serving.service import champion_info
    from training.pipeline import prepare, train

    settings = _settings(ws)
    customers_path, events_path = write_generated(generate(CUSTOMERS, DAYS, seed=seed), ws / "raw")
    ingest(settings, customers_path=customers_path, events_path=events_path)
    build_features(settings)
    apply_features(settings)
    train(settings)
    materialize(settings)

    split = prepare(settings).split
    x_train, y_train = split.xy("train")
    params = {"objective": "binary:logistic", "max_depth": 6, "eta": 0.05, "seed": seed, "nthread": 2}
    booster = xgb.train(params, dmatrix(x_train, label=y_train), num_boost_round=TREES)
    remember_categories(booster, split.categories)
    model_path = ws / f"model-{TREES}.ubj"
    booster.save_model(model_path)
    mlflow.set_tracking_uri(settings.mlflow_uri)
    _, run_id = champion_info(settings)
    with mlflow.start_run(run_id=run_id):  # the champion run's calibration, reference and tags
        info = mlflow.xgboost.log_model(
            booster,
            name=f"model_{TREES}",
            registered_model_name=settings.training.model_name,
            model_format="ubj",
            pip_requirements=[f"xgboost=={xgb.__version__}"],
        )
    version = str(info.registered_model_version)
    MlflowClient(settings.mlflow_uri).set_registered_model_alias(
        settings.training.model_name, names.CHAMPION_ALIAS, version
    )
    return {
        "model_path": str(model_path),
        "version": version,
        "features": len(split.features),
        "categorical": len(split.categories),
        "trees": booster.num_boosted_rounds(),
        "train_rows": len(x_train),
    }


def _plain(value: Any) -> Any:  # noqa: ANN401
    """A feature value as JSON carries it: float, string or None."""
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, str) else float(value)


def online_rows(ws: Path, n: int) -> tuple[list[str], list[dict[str, Any]]]:
    """`n` customer ids of the online store and their online features as /score_features takes them."""
    from core import names
    from features.pipeline import latest_snapshot, open_store
    from serving.service import load_champion

    settings = _settings(ws)
    predictor = load_champion(settings)
    ids = latest_snapshot(settings, columns=[names.CUSTOMER_ID])[names.CUSTOMER_ID].head(n).tolist()
    store = open_store(settings)
    service = store.get_feature_service(predictor.info["feature_service"])
    online = store.get_online_features(features=service, entity_rows=[{names.CUSTOMER_ID: c} for c in ids]).to_dict()
    rows = [{f: _plain(online[f][i]) for f in predictor.features} for i in range(len(ids))]
    return ids, rows


def write_batch_frame(ws: Path, rows: int, seed: int) -> dict[str, Any]:
    """Write `rows` feature rows for batch scoring to `ws/batch-features.parquet`.

    Feast historical features of every (customer, snapshot date) of the workspace, drawn with
    replacement, renumbered as customers B0000000... and all dated at the newest snapshot date:
    the frame `crm.alerts.score_alerts` gets from Feast, at a larger scale.

    Returns:
        The file's path, and how many distinct source rows and snapshot dates it was drawn from.
    """
    import numpy as np
    import pandas as pd

    from core import names
    from features.paths import FeaturePaths
    from features.pipeline import historical_features, open_store

    settings = _settings(ws)
    keys = pd.read_parquet(FeaturePaths.of(settings).snapshots, columns=[names.CUSTOMER_ID, names.EVENT_TIMESTAMP])
    source = historical_features(open_store(settings), keys)
    drawn = np.random.default_rng(seed).integers(0, len(source), rows)
    frame = source.iloc[drawn].reset_index(drop=True)
    frame[names.CUSTOMER_ID] = [f"B{i:07d}" for i in range(rows)]
    frame[names.EVENT_TIMESTAMP] = keys[names.EVENT_TIMESTAMP].max()
    path = ws / "batch-features.parquet"
    frame.to_parquet(path, index=False)
    return {"path": str(path), "source_rows": len(source), "dates": int(keys[names.EVENT_TIMESTAMP].nunique())}


# --- measuring ----------------------------------------------------------------------------------


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50 and p99 of latencies in milliseconds."""
    import numpy as np

    return {"p50": float(np.percentile(samples_ms, 50)), "p99": float(np.percentile(samples_ms, 99))}


def peak_rss_mib() -> float:
    """This process's resident high-water mark (`VmHWM`, Linux) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def interleaved(variants: dict[str, Callable[[int], Any]], calls: int, warmup: int) -> dict[str, dict[str, float]]:
    """Latency percentiles (ms) of each variant, the variants taking turns call by call.

    Call `i` of every variant gets the argument `i`; the first `warmup` rounds are not timed.
    """
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(warmup + calls):
        for name, fn in variants.items():
            started = time.perf_counter_ns()
            fn(i)
            if i >= warmup:
                samples[name].append((time.perf_counter_ns() - started) / 1e6)
    return {name: percentiles(values) for name, values in samples.items()}


# --- load generators ----------------------------------------------------------------------------

_TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}


def _wrk_ms(text: str) -> float:
    """A wrk duration ('850.00us', '3.61ms', '1.02s') in milliseconds."""
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if found is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(found[1]) * _TIME_UNITS_MS[found[2]]


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests/s, p50 / p99 (ms, from `--latency`), requests, seconds and errors of a wrk run's output.

    Raises:
        ValueError: The output lacks a figure (e.g. wrk got no answer at all).
    """

    def need(pattern: str) -> re.Match[str]:
        found = re.search(pattern, output, re.MULTILINE)
        if found is None:
            raise ValueError(f"wrk output without /{pattern}/:\n{output}")
        return found

    distribution = dict(re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", output, re.MULTILINE))
    if not {"50", "99"} <= set(distribution):
        raise ValueError(f"wrk output without a latency distribution (--latency):\n{output}")
    total = need(r"(\d+) requests in (\S+), ")
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": float(need(r"^Requests/sec:\s+([\d.]+)")[1]),
        "p50": _wrk_ms(distribution["50"]),
        "p99": _wrk_ms(distribution["99"]),
        "requests": int(total[1]),
        "seconds": _wrk_ms(total[2]) / 1e3,
        "socket_errors": sum(int(n) for n in socket_errors.groups()) if socket_errors else 0,
        "non_2xx": int(non_2xx[1]) if non_2xx else 0,
    }


def wrk_script(bodies: Sequence[bytes], path: Path) -> Path:
    """Write a wrk Lua script that POSTs `bodies` (JSON) in turn, each wrk thread from the first."""
    lines = ["local bodies = {"]
    for body in bodies:
        text = body.decode()
        if "]==]" in text:
            raise ValueError("a body holds the Lua long-string end ']==]'")
        lines.append(f"  [==[{text}]==],")
    lines += [
        "}",
        "local i = 0",
        'local headers = {["Content-Type"] = "application/json"}',
        "request = function()",
        "  i = i % #bodies + 1",
        '  return wrk.format("POST", nil, headers, bodies[i])',
        "end",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_wrk(url: str, script: Path, connections: int, seconds: float) -> dict[str, Any]:
    """One closed-loop wrk run (`parse_wrk`'s figures); up to two threads, 10 s request timeout."""
    command = ["wrk", f"-t{min(connections, 2)}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s"]
    done = subprocess.run([*command, "--latency", "-s", str(script), url], capture_output=True, text=True, check=True)
    return parse_wrk(done.stdout)


def open_loop(url: str, bodies: Sequence[bytes], rate: float, seconds: float) -> dict[str, Any]:
    """POST `bodies` in turn at `rate` per second for `seconds`, on schedule whatever the answers (aiohttp).

    Request `i` is due at start + i / rate and is sent then even if earlier ones are unanswered
    (new connections open as needed); its latency runs from when it was due, so time spent queued
    anywhere, the generator included, counts.

    Returns:
        requests, sent_rate (requests / the sending window), ok_rate (200 answers per second until
        the last answer), p50 / p99 / max latency (ms, every answered request), errors (status or
        exception name -> count; a 10 s timeout is one), max_send_lag_ms (how late the generator
        sent a request, at worst).
    """
    import aiohttp

    async def run() -> dict[str, Any]:
        n = round(rate * seconds)
        latencies: list[float] = []
        errors: dict[str, int] = {}
        lag_ms = 0.0
        ok = 0
        headers = {"Content-Type": "application/json"}
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
            loop = asyncio.get_running_loop()

            async def one(i: int, due: float) -> None:
                nonlocal ok
                try:
                    async with session.post(url, data=bodies[i % len(bodies)], headers=headers) as response:
                        await response.read()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    return
                latencies.append((loop.time() - due) * 1e3)
                if response.status == 200:
                    ok += 1
                else:
                    errors[str(response.status)] = errors.get(str(response.status), 0) + 1

            start = loop.time() + 0.05
            tasks = []
            for i in range(n):
                due = start + i / rate
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                lag_ms = max(lag_ms, (loop.time() - due) * 1e3)
                tasks.append(asyncio.create_task(one(i, due)))
            sent = loop.time() - start
            await asyncio.gather(*tasks)
            elapsed = loop.time() - start
        return {
            "requests": n,
            "sent_rate": (n - 1) / sent if sent > 0 else 0.0,
            "ok_rate": ok / elapsed,
            **percentiles(latencies or [float("nan")]),
            "max": max(latencies, default=float("nan")),
            "errors": errors,
            "max_send_lag_ms": lag_ms,
        }

    return asyncio.run(run())


def sequential(url: str, body: bytes, requests: int, warmup: int) -> dict[str, Any]:
    """POST `body` `warmup` + `requests` times, one at a time on one connection (httpx).

    Returns:
        p50 / p99 (ms) of the timed requests, their statuses (status -> count), the answer's size.
    """
    import httpx

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    size = 0
    with httpx.Client(timeout=120, headers={"Content-Type": "application/json"}) as client:
        for i in range(warmup + requests):
            started = time.perf_counter()
            response = client.post(url, content=body)
            if i >= warmup:
                latencies.append((time.perf_counter() - started) * 1e3)
                statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
                size = len(response.content)
    return {**percentiles(latencies), "statuses": statuses, "answer_bytes": size}


def settle(url: str, body: bytes, fast_ms: float = 500, limit_s: float = 180) -> float:
    """POST `body` one at a time until an answer takes under `fast_ms`: a server drains its backlog.

    After an overloaded open-loop run, the server still works through requests the generator gave
    up on; the next figure should not compete with that. Returns the seconds waited.
    """
    import httpx

    started = time.perf_counter()
    with httpx.Client(timeout=60, headers={"Content-Type": "application/json"}) as client:
        while time.perf_counter() - started < limit_s:
            sent = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                client.post(url, content=body)
            if (time.perf_counter() - sent) * 1e3 < fast_ms:
                break
    return time.perf_counter() - started


def batch_histogram(base_url: str) -> dict[str, float]:
    """The model service's adaptive batch histogram at GET /metrics: sum, count, le_<bound> (cumulative)."""
    import httpx

    out: dict[str, float] = {"sum": 0.0, "count": 0.0}
    for line in httpx.get(f"{base_url}/metrics", timeout=10).text.splitlines():
        if not line.startswith("bentoml_service_adaptive_batch_size") or 'method_name="outputs"' not in line:
            continue
        series, value = line.rsplit(" ", 1)
        name = series.split("{", 1)[0].removeprefix("bentoml_service_adaptive_batch_size_")
        if name == "bucket":
            name = "le_" + series.split('le="', 1)[1].split('"', 1)[0]
        out[name] = out.get(name, 0.0) + float(value)
    return out


def batch_stats(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Model batches between two histograms: how many, mean calls per batch, share of batches of 2+ calls.

    BentoML counts calls (requests to the model service), not rows: a call of more than
    `max_batch_size` rows is split into chunks, each counted as a call.
    """
    count = after["count"] - before["count"]
    single = after.get("le_1.0", 0.0) - before.get("le_1.0", 0.0)
    return {
        "batches": count,
        "mean": (after["sum"] - before["sum"]) / count if count else 0.0,
        "merged_share": (count - single) / count if count else 0.0,
    }


# --- servers ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(command: list[str], env: dict[str, str], ready_url: str, logfile: Path, timeout_s: float) -> Iterator[None]:
    """Run a server process until the block ends; wait until `ready_url` answers 200."""
    import httpx

    with open(logfile, "w") as out:
        proc = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{command[2:4]} exited with code {proc.returncode}; see {logfile}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[2:4]} not ready after {timeout_s:.0f} s; see {logfile}")
            time.sleep(0.3)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


# --- in-process figures -------------------------------------------------------------------------


def in_process(ws: Path, ids: list[str], rows: list[dict[str, Any]], big: bytes, calls: int) -> dict[str, Any]:
    """Latency percentiles (ms) of the scoring code in this process, without HTTP.

    single, one customer per call (`calls` timed, variants interleaved): score_path (what POST
    /score runs with batching off: `ChurnService._score_ids`, the online read, probability, exact
    SHAP reasons, CRM layers, prediction log, freshness), score_path_1thread (the same with a copy
    of the booster at `nthread=1`), score_path_approx (explainer approx), predict (the minimal
    endpoints' `_predict` of the JSON row).

    steps, the stages of score_path on the same customers, each on inputs prepared beforehand
    (up to 200 timed calls): online (`OnlineReader.read`, what the service uses), feast_client
    (Feast's `get_online_features(...).to_df()`, what it used before), matrix (the model input
    the path builds, `Predictor._array`), model (`Predictor.model_outputs` with exact SHAP: the
    contributions from the TreeSHAP tables, and the probability from their sum), answers, crm,
    log; and as the alternative model step xgb_contribs (XGBoost's `pred_contribs` of the row on
    one thread, its DMatrix included: what the model step did before the tables).

    `big` (a /score_features body of 1,000 rows), 10 timed calls per stage: parse (pydantic, as
    BentoML validates the body), validate (`validate_feature_rows`, which gives columns), matrix
    (`Predictor._input`), model (`Predictor.model_outputs` with the served method, approx at this
    size), and as alternatives on a prepared DMatrix contribs (exact SHAP, `pred_contribs=True`) and
    approx_contribs (`approx_contribs=True`), and table_contribs (exact SHAP from the predictor's
    tables, `model.treeshap.contributions`, on the prepared array); answers (`Predictor.answers`), crm
    (`with_early_warning`), log (prediction log append), json (encoding the answers), model_rows
    (the batching service's input); probabilities (`Predictor.probabilities`: matrix, predict,
    calibration, no reasons); and the whole model step score (`Predictor.score` with the served
    explainer, `auto`: approximate at 1,000 rows), score_shap (exact SHAP), score_approx, beside
    inplace (`Booster.inplace_predict` of a prepared typed model frame, float32-clipped).
    """
    import copy

    import numpy as np
    import pandas as pd
    import pydantic_core

    from core import names
    from crm.alerts import with_early_warning
    from features.online import OnlineReader
    from features.pipeline import open_store
    from model import treeshap
    from model.matrix import model_frame
    from model.predictor import FLOAT32_MAX, Predictor
    from serving.prediction_log import PredictionLog
    from serving.service import (
        ChurnService,
        FeatureValue,
        load_champion,
        model_rows,
        validate_feature_rows,
    )

    settings = _settings(ws)
    predictor = load_champion(settings)
    booster, features, categories = predictor.booster, predictor.features, predictor.categories
    store = open_store(settings)
    reader = OnlineReader(store, predictor.info["feature_service"])
    feature_service = store.get_feature_service(predictor.info["feature_service"])
    service = SimpleNamespace(  # what ChurnService's methods use of `self`
        settings=settings,
        serving=(predictor, reader),
        prediction_log=PredictionLog(ws / "bench-predictions"),
    )
    api = cast(Any, ChurnService).inner  # the service's class, its methods callable on `service`
    service._lookup = functools.partial(api._lookup, service)
    service._answer = functools.partial(api._answer, service)

    one_thread = copy.copy(predictor)
    one_thread.booster = booster.copy()
    one_thread.booster.set_param({"nthread": 1})
    approx = copy.copy(predictor)
    approx.explainer = "approx"

    def score_path(customer_ids: list[str], model: Predictor = predictor) -> list[dict[str, Any]]:
        """The body of `ChurnService.score` with batching off, in this thread."""
        where, scored, stamps = api._score_ids(service, model, reader, customer_ids)
        return [
            {names.CUSTOMER_ID: customer_ids[i], **a, "feature_freshness": s}
            for i, a, s in zip(where, scored, stamps, strict=True)
        ]

    single = interleaved(
        {
            "score_path": lambda i: score_path([ids[i % len(ids)]]),
            "score_path_1thread": lambda i: score_path([ids[i % len(ids)]], one_thread),
            "score_path_approx": lambda i: score_path([ids[i % len(ids)]], approx),
            "predict": lambda i: _predict(booster, features, categories, [rows[i % len(rows)]]),
        },
        calls,
        warmup=20,
    )
    # The same customers stage by stage, each stage on inputs prepared beforehand.
    looked = [api._lookup(service, predictor, reader, [c])[1] for c in ids]
    outs = [predictor.model_outputs(r, method="shap") for r in looked]
    scored = [predictor.answers(r, o, "shap") for r, o in zip(looked, outs, strict=True)]
    n = len(ids)
    steps = interleaved(
        {
            "online": lambda i: reader.read([ids[i % n]]),
            "feast_client": lambda i: store.get_online_features(
                features=feature_service, entity_rows=[{names.CUSTOMER_ID: ids[i % n]}]
            ).to_df(include_event_timestamps=True),
            "matrix": lambda i: predictor._array(looked[i % n]),
            "model": lambda i: predictor.model_outputs(looked[i % n], method="shap"),
            "xgb_contribs": lambda i: one_thread.booster.predict(
                predictor._input(looked[i % n]), pred_contribs=True, validate_features=False
            ),
            "answers": lambda i: predictor.answers(looked[i % n], outs[i % n], "shap"),
            "crm": lambda i: with_early_warning(settings, predictor, looked[i % n], scored[i % n]),
            "log": lambda i: service.prediction_log.append(
                [ids[i % n]], predictor.version, looked[i % n], [0.5], columns=features
            ),
        },
        calls=min(calls, 200),
        warmup=10,
    )

    class Big(BaseModel):
        rows: list[dict[str, FeatureValue]]

    parsed = Big.model_validate_json(big).rows
    frame = pd.DataFrame(parsed, columns=features)

    def typed() -> pd.DataFrame:
        out = model_frame(frame, features, categories)
        numeric = [c for c in out.columns if not isinstance(out[c].dtype, pd.CategoricalDtype)]
        out[numeric] = out[numeric].clip(-FLOAT32_MAX, FLOAT32_MAX)
        return out

    prepared = typed()
    columns = validate_feature_rows(predictor, parsed)  # what /score_features scores: columns
    method = predictor.method(len(parsed))
    exact = copy.copy(predictor)
    exact.explainer = "shap"
    matrix = predictor.matrix(columns)
    array = predictor._array(columns)
    tables = predictor._shap
    if tables is None:
        raise RuntimeError("the bench model has no TreeSHAP tables (model.treeshap.build)")
    outputs = predictor.model_outputs(columns, method=method)
    answers = predictor.answers(columns, outputs, method)
    stages = interleaved(
        {
            "parse": lambda _: Big.model_validate_json(big),
            "validate": lambda _: validate_feature_rows(predictor, parsed),
            "matrix": lambda _: predictor._input(columns),
            "model": lambda _: predictor.model_outputs(columns, method=method),
            "contribs": lambda _: booster.predict(matrix, pred_contribs=True, validate_features=False),
            "approx_contribs": lambda _: booster.predict(
                matrix, pred_contribs=True, approx_contribs=True, validate_features=False
            ),
            "table_contribs": lambda _: treeshap.contributions(tables, array),
            "probabilities": lambda _: predictor.probabilities(columns),
            "answers": lambda _: predictor.answers(columns, outputs, method),
            "crm": lambda _: with_early_warning(settings, predictor, columns, answers),
            "log": lambda _: service.prediction_log.append(
                [""] * len(parsed), predictor.version, columns, list(np.zeros(len(parsed))), columns=features
            ),
            "json": lambda _: pydantic_core.to_json(answers),
            "model_rows": lambda _: model_rows(predictor, columns, method),
            "score": lambda _: predictor.score(columns),
            "score_shap": lambda _: exact.score(columns),
            "score_approx": lambda _: approx.score(columns),
            "inplace": lambda _: booster.inplace_predict(prepared),
        },
        calls=10,
        warmup=2,
    )
    service.prediction_log.close()
    agreement = reasons_agreement(exact.reasons(columns, method="shap"), approx.reasons(columns, method="approx"))
    return {"single": single, "steps": steps, "big": stages, "big_rows": len(frame), "agreement": agreement}


def reasons_agreement(exact: list[list[dict[str, Any]]], approx: list[list[dict[str, Any]]]) -> dict[str, float]:
    """How often the approximate explainer names the reasons exact TreeSHAP names, over the same rows.

    Returns:
        top1 (the same first reason, or none for both), same_set (the same reasons in any order),
        same_list (the same reasons in the same order) and overlap (the mean share of a row's exact
        reasons the approximation also names), each a fraction of the rows.
    """
    pairs = [([r["feature"] for r in e], [r["feature"] for r in a]) for e, a in zip(exact, approx, strict=True)]
    n = max(1, len(pairs))
    return {
        "rows": len(pairs),
        "top1": sum(e[:1] == a[:1] for e, a in pairs) / n,
        "same_set": sum(set(e) == set(a) for e, a in pairs) / n,
        "same_list": sum(e == a for e, a in pairs) / n,
        "overlap": sum(len(set(e) & set(a)) / len(e) if e else float(not a) for e, a in pairs) / n,
    }


# --- batch scoring (fresh processes) ------------------------------------------------------------


def batch_step(workspace: str, frame_path: str, kind: str, profile_rows: int = 20_000) -> dict[str, Any]:
    """One batch-scoring figure, in this (fresh) process; `kind` is alerts, alerts_all, alerts_none, bare or profile.

    alerts: `crm.alerts.score_alerts` of the whole frame with the default reasons (the top
    `serving.batch_reasons_top` rows), Feast's offline read (and the snapshot-date lookups before
    it) replaced by the frame; checks one sorted row per customer.
    alerts_all: the same with reasons for every row (`reasons_top=None`), on the first
    `ALL_REASONS_ROWS` rows only.
    alerts_none: the same with reasons for no row (`reasons_top=0`), whole frame.
    bare: `Booster.predict` of the frame's DMatrix, built beforehand (untimed, reported).
    profile: the stages of the batch path on the first `profile_rows` rows, as
    `crm.alerts.alert_list` runs them: matrix (`Predictor.matrix`), predict, probabilities
    (`Predictor.probabilities`: its input array, inplace predict, calibration), tiers,
    early_warning (`early_warning_columns`) and two parts of it (evaluate_rules, choose_actions),
    sort (`crm.alerts.sort_order`); then the reasons of explained rows: contribs (exact SHAP),
    reasons (`Predictor.reasons` of them), and the alternative approx_contribs.

    Returns:
        rows, seconds, cpu_seconds and peak_rss_mib (VmHWM right after the timed part), for the
        alerts kinds also explained (rows given reasons) and reasons_method (how they were
        computed, None without), or for profile the seconds per stage.
    """
    from unittest import mock

    import numpy as np
    import pandas as pd

    from core import names
    from core.crm_settings import RFM_DIMENSION, TIER_DIMENSION
    from crm import alerts as batch
    from crm.early_warning import EXPECTED_LOSS, RISK_TIER, SEGMENT, early_warning_columns
    from crm.playbook import choose_actions
    from crm.rules import evaluate_rules
    from model.matrix import dmatrix, model_frame
    from model.predictor import risk_tiers
    from serving.service import load_champion

    settings = _settings(Path(workspace))
    predictor = load_champion(settings)
    frame = pd.read_parquet(frame_path)
    reasons_top: dict[str, Any] = {"alerts": {}, "alerts_all": {"reasons_top": None}, "alerts_none": {"reasons_top": 0}}
    if kind in reasons_top:
        if kind == "alerts_all":
            frame = frame.iloc[:ALL_REASONS_ROWS].reset_index(drop=True)
        date = frame[names.EVENT_TIMESTAMP].iloc[0]
        keys = frame[[names.CUSTOMER_ID, names.EVENT_TIMESTAMP]]
        with (
            mock.patch.object(batch, "snapshot_date", return_value=date),
            mock.patch.object(batch, "active_customers", return_value=keys),
            mock.patch.object(batch, "open_store"),
            mock.patch.object(batch, "historical_features", return_value=frame),
        ):
            cpu, started = cpu_seconds(), time.perf_counter()
            alerts = batch.score_alerts(settings, predictor, **reasons_top[kind])
            seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        peak = peak_rss_mib()
        loss = alerts[EXPECTED_LOSS].to_numpy()
        return {
            "rows": len(frame),
            "seconds": seconds,
            "cpu_seconds": cpu,
            "peak_rss_mib": peak,
            "alerts": len(alerts),
            "explained": int(alerts[batch.REASONS].notna().sum()),
            "reasons_method": alerts[batch.REASONS_METHOD].iloc[0] if len(alerts) else None,
            "reasons_top": settings.serving.batch_reasons_top,
            "unique_customers": int(alerts[names.CUSTOMER_ID].nunique()),
            "sorted": bool((np.diff(loss) <= 0).all()),
            "tiers": {str(k): float(v) for k, v in alerts["risk_tier"].value_counts(normalize=True).items()},
        }
    if kind == "bare":
        typed = model_frame(frame, predictor.features, predictor.categories)
        started = time.perf_counter()
        matrix = dmatrix(typed)
        build = time.perf_counter() - started
        cpu, started = cpu_seconds(), time.perf_counter()
        predictor.booster.predict(matrix)
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        return {
            "rows": len(frame),
            "seconds": seconds,
            "cpu_seconds": cpu,
            "peak_rss_mib": peak_rss_mib(),
            "dmatrix_seconds": build,
        }
    if kind != "profile":
        raise ValueError(f"unknown batch step kind {kind!r}")
    part = frame.iloc[:profile_rows].reset_index(drop=True)
    booster = predictor.booster
    stages: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        gc.collect()  # so no stage pays for collecting what an earlier one left
        started = time.perf_counter()
        out = fn()
        stages[name] = time.perf_counter() - started
        return out

    matrix = timed("matrix", lambda: predictor.matrix(part))
    timed("predict", lambda: booster.predict(matrix))
    proba = timed("probabilities", lambda: predictor.probabilities(part))
    tiers = timed("tiers", lambda: risk_tiers(proba, predictor.tiers))
    bounds = batch.crm_bounds(settings, predictor)  # computed once per model, untimed
    crm = timed(
        "early_warning",
        lambda: early_warning_columns(settings.crm, part, proba, tiers, reference=predictor.reference, bounds=bounds),
    )
    hits = timed("evaluate_rules", lambda: evaluate_rules(settings.crm.rules, part))
    dims = pd.DataFrame({name: crm[name] for name in [*settings.crm.layers, SEGMENT]})
    dims = dims.rename(columns={SEGMENT: RFM_DIMENSION}).assign(**{TIER_DIMENSION: crm[RISK_TIER]})
    timed("choose_actions", lambda: choose_actions(settings.crm, dims, hits))
    timed("sort", lambda: batch.sort_order(crm[EXPECTED_LOSS], crm[names.PREDICTION]))
    contribs = timed("contribs", lambda: booster.predict(matrix, pred_contribs=True))
    timed("reasons", lambda: predictor.reasons(part, contribs[:, :-1]))
    timed("approx_contribs", lambda: booster.predict(matrix, pred_contribs=True, approx_contribs=True))
    return {"rows": len(part), "stages": stages}


# --- the benchmark ------------------------------------------------------------------------------


def _in_fresh_process(**kwargs: Any) -> dict[str, Any]:
    """`batch_step(**kwargs)` in a new Python process (`serving.py batch`); its JSON result."""
    out = Path(kwargs["workspace"]) / f".batch-{kwargs['kind']}-{time.monotonic_ns()}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "batch", json.dumps(kwargs), str(out)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-30:])
        raise RuntimeError(f"batch step {kwargs['kind']} failed (exit {done.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return result


def run(
    workdir: str,
    seed: int,
    connections: list[int],
    wrk_seconds: float,
    open_rate: float,
    open_seconds: float,
    big_requests: int,
    batch_rows: int,
) -> dict[str, Any]:
    """The whole serving benchmark; see the module docstring. Returns JSON-ready figures."""
    import pandas as pd
    import yaml

    from churn.cli.common import Context
    from churn.server import running_service
    from core.settings import CONFIG_ENV

    if shutil.which("wrk") is None:
        raise RuntimeError("the serving benchmark needs wrk (Debian/Ubuntu: apt-get install wrk)")
    ws = Path(workdir) / "serving"
    shutil.rmtree(ws, ignore_errors=True)  # a fresh workspace and registry on every run
    ws.mkdir(parents=True)
    started = time.perf_counter()
    model = build_workspace(ws, seed)
    batch_frame = write_batch_frame(ws, batch_rows, seed)
    result: dict[str, Any] = {"model": model, "batch_frame": batch_frame}
    result["setup_seconds"] = time.perf_counter() - started
    ids, rows = online_rows(ws, 200)
    id_bodies = [json.dumps({"customer_ids": [c]}).encode() for c in ids]
    row_bodies = [json.dumps({"rows": [r]}).encode() for r in rows]
    features = list(rows[0])
    big_rows = pd.read_parquet(batch_frame["path"], columns=features).head(BIG_ROWS)
    big = json.dumps({"rows": [{f: _plain(v) for f, v in row.items()} for row in big_rows.to_dict("records")]}).encode()
    result["big_body_bytes"] = len(big)
    limits = _settings(ws).serving
    result["max_request_bytes"] = limits.max_request_bytes
    result["max_batch_size"] = limits.batching.max_batch_size
    if len(big) > limits.max_request_bytes:
        raise RuntimeError(f"a {BIG_ROWS:,}-row body ({len(big):,} bytes) exceeds serving.max_request_bytes")

    result["in_process"] = in_process(ws, ids, rows, big, calls=500)
    for kind in ("alerts", "alerts_all", "alerts_none", "bare", "profile"):
        result[f"batch_{kind}"] = _in_fresh_process(workspace=str(ws), frame_path=batch_frame["path"], kind=kind)

    env = {**os.environ, MODEL_ENV: model["model_path"], "BENTOML_DO_NOT_TRACK": "true"}
    env.pop(CONFIG_ENV, None)
    env["BENTOML_HOME"] = str(ws / "bentoml")
    logs = ws / "logs"
    logs.mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        urls: dict[str, str] = {}
        for mode in ("on", "off", "off2", "approx"):
            settings = _settings(
                ws,
                batching=mode == "on",
                workers=2 if mode == "off2" else 1,
                explainer="approx" if mode == "approx" else None,
            )
            config = ws / f"serving-{mode}.yaml"
            config.write_text(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False))
            # Its own BentoML home: a server starting clears the Prometheus files of the home it uses.
            os.environ["BENTOML_HOME"] = str(ws / f"bentoml-{mode}")
            ready = time.perf_counter()
            urls[mode] = stack.enter_context(running_service(Context(settings, config), timeout_s=300))
            result[f"startup_{mode}"] = time.perf_counter() - ready
        port = _free_port()
        bento = [sys.executable, "-m", "bentoml", "serve", "bench.serving:MinimalBento", "--port", str(port)]
        bento += ["--host", "127.0.0.1"]
        stack.enter_context(serving(bento, env, f"http://127.0.0.1:{port}/readyz", logs / "minimal-bento.log", 300))
        urls["bento"] = f"http://127.0.0.1:{port}"
        port = _free_port()
        bento2 = [*bento[:-3], str(port), "--host", "127.0.0.1"]
        env2 = {**env, WORKERS_ENV: "2", "BENTOML_HOME": str(ws / "bentoml-minimal2")}
        stack.enter_context(serving(bento2, env2, f"http://127.0.0.1:{port}/readyz", logs / "minimal-bento2.log", 300))
        urls["bento2"] = f"http://127.0.0.1:{port}"
        port = _free_port()
        uvicorn = [sys.executable, "-m", "uvicorn", "--factory", "bench.serving:make_fastapi_app", "--port", str(port)]
        uvicorn += ["--host", "127.0.0.1"]  # access log on, as BentoML's
        stack.enter_context(
            serving(uvicorn, env, f"http://127.0.0.1:{port}/healthz", logs / "minimal-fastapi.log", 300)
        )
        urls["fastapi"] = f"http://127.0.0.1:{port}"

        ids_lua = wrk_script(id_bodies, ws / "score.lua")
        rows_lua = wrk_script(row_bodies, ws / "rows.lua")
        targets = {
            "score_on": (f"{urls['on']}/score", ids_lua),
            "score_off": (f"{urls['off']}/score", ids_lua),
            "score_off2": (f"{urls['off2']}/score", ids_lua),
            "score_approx": (f"{urls['approx']}/score", ids_lua),
            "bento": (f"{urls['bento']}/predict", rows_lua),
            "bento2": (f"{urls['bento2']}/predict", rows_lua),
            "fastapi": (f"{urls['fastapi']}/predict", rows_lua),
        }
        for c in connections:
            for name, (url, script) in targets.items():
                run_wrk(url, script, c, min(3.0, wrk_seconds))  # warm-up
                before = batch_histogram(urls["on"]) if name == "score_on" else {}
                result[f"wrk_{name}_c{c}"] = run_wrk(url, script, c, wrk_seconds)
                if before:
                    result[f"wrk_{name}_c{c}"]["batching"] = batch_stats(before, batch_histogram(urls["on"]))

        for mode in ("on", "off"):
            before = batch_histogram(urls["on"])
            result[f"open_{mode}"] = open_loop(f"{urls[mode]}/score", id_bodies, open_rate, open_seconds)
            if mode == "on":
                result["open_on"]["batching"] = batch_stats(before, batch_histogram(urls["on"]))
            result[f"open_{mode}"]["settle_seconds"] = settle(f"{urls[mode]}/score", id_bodies[0])
        for mode in ("on", "off"):
            before = batch_histogram(urls["on"])
            result[f"big_{mode}"] = sequential(f"{urls[mode]}/score_features", big, big_requests, warmup=3)
            if mode == "on":
                result["big_on"]["batching"] = batch_stats(before, batch_histogram(urls["on"]))
        # The same body to the endpoints that only predict: what HTTP, parsing and predict alone cost.
        for name in ("bento", "fastapi"):
            result[f"big_{name}"] = sequential(f"{urls[name]}/predict", big, big_requests, warmup=3)
    return result


def main(argv: list[str]) -> None:
    """`serving.py ARGS_JSON RESULT_JSON_PATH` (the benchmark) or `serving.py batch ARGS_JSON RESULT_JSON_PATH`."""
    if argv[0] == "batch":
        args, result_path = argv[1:]
        result = batch_step(**json.loads(args))
    else:
        args, result_path = argv
        result = run(**json.loads(args))
    Path(result_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
