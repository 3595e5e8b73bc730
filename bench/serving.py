"""Serving benchmark: the churn BentoML service beside a minimal BentoML endpoint, in one run.

Run by `bench/run.py --only serving` in a fresh process (`python bench/serving.py ARGS_JSON
RESULT_JSON_PATH`, like `bench/steps.py`); the table rows are built there.

What it does:

1. Builds a small workspace in `workdir/serving` (600 customers x 220 days, the tests' size),
   trains the champion through the platform (`training.pipeline.train`: `TRIALS` Optuna trials of
   `ROUNDS` rounds of depth 6 at a slow learning rate, then the blend, calibration and reference
   sample) and materializes the online store. The champion's booster is saved for the minimal
   endpoint.
2. Starts two servers with `churn.server.running_service`: the scoring service
   (`serving.service:ChurnService`, default serving settings, one worker) and `MinimalBento`, a
   BentoML 1.4 service that parses the /score_features JSON body (its schema, as BentoML parses
   any body) and predicts with the champion's booster (float32 array, DMatrix, predict): no
   validation, reasons, CRM layers, prediction log or calibration.
3. Measures each figure of the service beside the minimal endpoint, the servers taking turns:
   a. closed loop (`closed_loop`): POST /score with one customer id per request, and the minimal
      endpoint with that customer's online features as one JSON row, at each connection count;
   b. open loop (`open_loop`): the same requests at a fixed rate, sent on schedule whatever the
      answers, latency from each request's scheduled time;
   c. one connection, one request at a time (`sequential`): POST /score_features with a JSON body
      of `BIG_ROWS` feature rows, and the minimal endpoint with the same body;
   d. the same rows as an Arrow IPC stream on POST /score_features (reasons and all).
4. In this process, no HTTP: the stages of the one-customer /score path and of a `BIG_ROWS`-row
   /score_features call, for the notes on where the time goes.

The load generators (aiohttp, httpx) run in this process, on the cores the servers use; the
closed-loop figures say how much CPU the generator took.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import math
import os
import resource
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, cast

_HERE = Path(__file__).resolve().parent
if __name__ in ("__main__", "__mp_main__"):
    # Run as a script (or re-imported as the main module of a spawned process: the prediction
    # log's writer), this file's folder comes first on sys.path and `import serving` would find
    # this module instead of the `serving` package.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import bentoml  # noqa: E402
from pydantic import Field  # noqa: E402

REPO = _HERE.parent
MODEL_ENV = "CHURN_BENCH_MODEL"
"""Environment variable naming the saved booster the minimal endpoint loads."""
CUSTOMERS, DAYS = 600, 220
TRIALS, ROUNDS = 2, 300
BIG_ROWS = 1_000
"""Feature rows per request in the large-request figures."""
JSON = "application/json"
ARROW = "application/vnd.apache.arrow.stream"

Rows = Annotated[list[dict[str, float | str | None]], Field(min_length=1, max_length=BIG_ROWS)]


# --- the minimal endpoint (imported by `bentoml serve` as bench.serving) ------------------------


def _load_booster() -> tuple[Any, list[str], dict[str, list[str]]]:
    """The booster saved at `$CHURN_BENCH_MODEL`, with its features and categories."""
    import xgboost as xgb

    from model.matrix import booster_categories

    booster = xgb.Booster(model_file=os.environ[MODEL_ENV])
    return booster, list(booster.feature_names or []), booster_categories(booster)


def _predict(booster: Any, features: list[str], categories: dict[str, list[str]], rows: list[dict[str, Any]]) -> Any:  # noqa: ANN401
    """Probabilities of JSON feature rows, the leanest way: one float32 array (category codes), DMatrix, predict."""
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


@bentoml.service(name="bench_minimal", workers=1, traffic={"timeout": 30})
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


# --- workspace, model and request data ----------------------------------------------------------


def _settings(ws: Path) -> Any:  # noqa: ANN401
    from core.settings import parse_settings

    # A slow learning rate and no early stop: the champion keeps about ROUNDS trees of depth 6, a
    # serving load like a production model's rather than the few trees this small data set needs.
    training = {
        "n_trials": TRIALS,
        "max_rounds": ROUNDS,
        "early_stopping_rounds": ROUNDS,
        "search": {"eta": (0.01, 0.011), "max_depth": (6, 6)},
        "gate": {"must_beat_baselines": False},
    }
    raw = {"workspace": str(ws), "training": training}
    return parse_settings(raw, source="bench", env={})


def build_workspace(ws: Path, seed: int) -> dict[str, Any]:
    """Generate, ingest, featurize, train the champion, materialize; save its booster.

    Returns:
        The saved booster's path, the champion's version, features, trees and depth.
    """
    import json as stdjson

    from features.generator.dataset import generate, write_generated
    from features.ingest import ingest
    from features.pipeline import apply_features, build_features, materialize
    from training.pipeline import train

    settings = _settings(ws)
    customers_path, events_path = write_generated(generate(CUSTOMERS, DAYS, seed=seed), ws / "raw")
    ingest(settings, customers_path=customers_path, events_path=events_path)
    build_features(settings)
    apply_features(settings)
    train(settings)
    materialize(settings)
    predictor = _champion(settings)
    model_path = ws / "champion-booster.ubj"
    predictor.booster.save_model(model_path)
    config = stdjson.loads(predictor.booster.save_config())
    depth = int(config["learner"]["gradient_booster"]["tree_train_param"]["max_depth"])
    return {
        "model_path": str(model_path),
        "version": predictor.version,
        "features": len(predictor.features),
        "categorical": len(predictor.categorical_features),
        "trees": predictor.booster.num_boosted_rounds(),
        "max_depth": depth,
        "calibrated": predictor.calibration is not None,
    }


def _champion(settings: Any) -> Any:  # noqa: ANN401
    from model.champion import load_champion
    from model.predictor import predictor_of

    return predictor_of(load_champion(settings.mlflow_uri, settings.training.model_name), settings.serving)


def _plain(value: Any) -> Any:  # noqa: ANN401
    """A feature value as JSON carries it: float, string or None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, str) else float(value)


def online_rows(ws: Path, n: int) -> tuple[list[str], list[dict[str, Any]]]:
    """`n` customer ids of the online store and their online features as /score_features takes them."""
    from core import names
    from features.online import OnlineReader
    from features.pipeline import latest_snapshot, open_store

    settings = _settings(ws)
    predictor = _champion(settings)
    ids = latest_snapshot(settings, columns=[names.CUSTOMER_ID])[names.CUSTOMER_ID].head(n).tolist()
    online = OnlineReader(open_store(settings), predictor.info["feature_service"]).read(ids)
    columns = online.rows(predictor.features, range(len(ids)))
    rows = [{f: _plain(columns[f][i]) for f in predictor.features} for i in range(len(ids))]
    return ids, rows


def big_rows(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """`n` feature rows: the online rows in turn, each given its own customer id."""
    return [{**rows[i % len(rows)], "customer_id": f"B{i:07d}"} for i in range(n)]


def arrow_body(rows: list[dict[str, Any]]) -> bytes:
    """`rows` as an Arrow IPC stream, one column per field (nulls typed by the field's other values)."""
    import pyarrow as pa

    table = pa.Table.from_pylist(rows)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


# --- measuring ----------------------------------------------------------------------------------


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50 and p99 of latencies in milliseconds."""
    import numpy as np

    return {"p50": float(np.percentile(samples_ms, 50)), "p99": float(np.percentile(samples_ms, 99))}


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


def _count(counter: dict[str, int], key: str) -> None:
    counter[key] = counter.get(key, 0) + 1


def closed_loop(url: str, bodies: Sequence[bytes], connections: int, seconds: float, warmup: float) -> dict[str, Any]:
    """`connections` clients each POST the next body as soon as the last is answered (aiohttp, keep-alive).

    The first `warmup` seconds are not counted.

    Returns:
        rps (answers 200 per second), p50 / p99 (ms), requests, errors (status or exception name ->
        count), and generator_cpu (CPU seconds this process spent per timed second).
    """
    import aiohttp

    async def run() -> dict[str, Any]:
        latencies: list[float] = []
        errors: dict[str, int] = {}
        ok = 0
        loop = asyncio.get_running_loop()
        start = loop.time() + warmup
        end = start + seconds
        connector = aiohttp.TCPConnector(limit=connections)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def client(k: int) -> None:
                nonlocal ok
                i = k
                while (sent := loop.time()) < end:
                    try:
                        async with session.post(url, data=bodies[i % len(bodies)], headers={"Content-Type": JSON}) as r:
                            await r.read()
                            status = r.status
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        if sent >= start:
                            _count(errors, type(exc).__name__)
                        continue
                    finally:
                        i += connections
                    if sent >= start and loop.time() <= end:
                        latencies.append((loop.time() - sent) * 1e3)
                        if status == 200:
                            ok += 1
                        else:
                            _count(errors, str(status))

            cpu: list[float] = []  # this process's CPU time when the timed part starts
            cpu_at = loop.call_at(start, lambda: cpu.append(cpu_seconds()))
            await asyncio.gather(*(client(k) for k in range(connections)))
            cpu_at.cancel()
        spent = cpu_seconds() - cpu[0] if cpu else float("nan")
        return {
            "rps": ok / seconds,
            **percentiles(latencies or [math.nan]),
            "requests": len(latencies),
            "errors": errors,
            "generator_cpu": spent / seconds,
        }

    return asyncio.run(run())


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
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
            loop = asyncio.get_running_loop()

            async def one(i: int, due: float) -> None:
                nonlocal ok
                try:
                    async with session.post(url, data=bodies[i % len(bodies)], headers={"Content-Type": JSON}) as r:
                        await r.read()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    _count(errors, type(exc).__name__)
                    return
                latencies.append((loop.time() - due) * 1e3)
                if r.status == 200:
                    ok += 1
                else:
                    _count(errors, str(r.status))

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
            **percentiles(latencies or [math.nan]),
            "max": max(latencies, default=math.nan),
            "errors": errors,
            "max_send_lag_ms": lag_ms,
        }

    return asyncio.run(run())


def sequential(url: str, body: bytes, requests: int, warmup: int, content_type: str = JSON) -> dict[str, Any]:
    """POST `body` `warmup` + `requests` times, one at a time on one connection (httpx).

    Returns:
        p50 / p99 (ms) of the timed requests, their statuses (status -> count), the answer's size.
    """
    import httpx

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    size = 0
    with httpx.Client(timeout=120, headers={"Content-Type": content_type}) as client:
        for i in range(warmup + requests):
            started = time.perf_counter()
            response = client.post(url, content=body)
            if i >= warmup:
                latencies.append((time.perf_counter() - started) * 1e3)
                _count(statuses, str(response.status_code))
                size = len(response.content)
    return {**percentiles(latencies), "statuses": statuses, "answer_bytes": size}


def interleaved_sequential(
    targets: dict[str, tuple[str, bytes, str]], requests: int, warmup: int
) -> dict[str, dict[str, Any]]:
    """`sequential` of each target (URL, body, content type), the targets taking turns request by request."""
    import httpx

    latencies: dict[str, list[float]] = {name: [] for name in targets}
    statuses: dict[str, dict[str, int]] = {name: {} for name in targets}
    size: dict[str, int] = {}
    with httpx.Client(timeout=120) as client:
        for i in range(warmup + requests):
            for name, (url, body, content_type) in targets.items():
                started = time.perf_counter()
                response = client.post(url, content=body, headers={"Content-Type": content_type})
                if i >= warmup:
                    latencies[name].append((time.perf_counter() - started) * 1e3)
                    _count(statuses[name], str(response.status_code))
                    size[name] = len(response.content)
    return {
        name: {**percentiles(latencies[name]), "statuses": statuses[name], "answer_bytes": size[name]}
        for name in targets
    }


# --- in-process figures -------------------------------------------------------------------------


def in_process(ws: Path, ids: list[str], big: list[dict[str, Any]], calls: int) -> dict[str, Any]:
    """Latency percentiles (ms) of the scoring code in this process, without HTTP, XGBoost on one
    thread as in the service.

    single: the stages of POST /score for one customer (`calls` timed, each on inputs prepared
    beforehand): online (`OnlineReader.read`), rows (its columns of the model's features), model
    (`Predictor.model_outputs`, exact SHAP), answers (`crm.answers.answers`: probability, tier,
    reasons), crm (`with_early_warning`), log (prediction log append), json (`json_answers`); and
    path, the whole `ChurnService._score_ids` (everything but the JSON).

    big: the stages of POST /score_features on `big` rows (20 timed calls each): parse (the
    request model, as BentoML parses the JSON body), validate (`validate_feature_rows`), arrow
    (`read_arrow_stream` + `validate_feature_table` of the same rows as an Arrow stream), model
    (`model_outputs` with the served method), answers, crm, log and json; and path, the whole
    `_score_feature_rows` of the parsed rows.
    """
    import pydantic_core

    from core import names
    from crm.answers import answers, with_early_warning
    from features.online import OnlineReader
    from features.pipeline import open_store
    from serving.api import ScoreFeaturesRequest, read_arrow_stream
    from serving.prediction_log import PredictionLog
    from serving.service import ChurnService, json_answers, one_model_thread
    from serving.validation import validate_feature_rows, validate_feature_table

    one_model_thread()  # XGBoost on this thread alone, as on the service's scoring thread
    settings = _settings(ws)
    predictor = _champion(settings)
    reader = OnlineReader(open_store(settings), predictor.info["feature_service"])
    service = SimpleNamespace(  # what ChurnService's methods use of `self`
        settings=settings,
        serving=(predictor, reader),
        prediction_log=PredictionLog(ws / "bench-predictions"),
    )
    api = cast(Any, ChurnService).inner  # the service's class, its methods callable on `service`
    service._lookup = functools.partial(api._lookup, service)
    service._answer = functools.partial(api._answer, service)
    tiers = settings.serving.risk_tiers

    n = len(ids)
    online = [reader.read([c]) for c in ids]
    looked = [o.rows(predictor.features, [0]) for o in online]
    outs = [predictor.model_outputs(r, method="shap") for r in looked]
    scored = [answers(predictor, r, o, tiers, "shap") for r, o in zip(looked, outs, strict=True)]
    single = interleaved(
        {
            "online": lambda i: reader.read([ids[i % n]]),
            "rows": lambda i: online[i % n].rows(predictor.features, [0]),
            "model": lambda i: predictor.model_outputs(looked[i % n], method="shap"),
            "answers": lambda i: answers(predictor, looked[i % n], outs[i % n], tiers, "shap"),
            "crm": lambda i: with_early_warning(settings, predictor, looked[i % n], [dict(a) for a in scored[i % n]]),
            "log": lambda i: service.prediction_log.append(
                [ids[i % n]], predictor.version, looked[i % n], [0.5], columns=predictor.features
            ),
            "json": lambda i: json_answers(scored[i % n]),
            "path": lambda i: api._score_ids(service, predictor, reader, [ids[i % n]]),
        },
        calls,
        warmup=20,
    )

    body = json.dumps({"rows": big}).encode()
    stream = arrow_body(big)
    parsed = ScoreFeaturesRequest.model_validate_json(body).rows
    columns = validate_feature_rows(predictor, parsed)
    method = predictor.method(len(big))
    outputs = predictor.model_outputs(columns, method=method)
    done = answers(predictor, columns, outputs, tiers, method)
    ids_big = [r[names.CUSTOMER_ID] for r in big]
    stages = interleaved(
        {
            "parse": lambda _: ScoreFeaturesRequest.model_validate_json(body),
            "validate": lambda _: validate_feature_rows(predictor, parsed),
            "arrow": lambda _: validate_feature_table(predictor, read_arrow_stream(stream)),
            "model": lambda _: predictor.model_outputs(columns, method=method),
            "answers": lambda _: answers(predictor, columns, outputs, tiers, method),
            "crm": lambda _: with_early_warning(settings, predictor, columns, [dict(a) for a in done]),
            "log": lambda _: service.prediction_log.append(
                ids_big, predictor.version, columns, [0.5] * len(big), columns=predictor.features
            ),
            "json": lambda _: pydantic_core.to_json(done, inf_nan_mode="null"),
            "path": lambda _: api._score_feature_rows(service, predictor, parsed),
        },
        calls=20,
        warmup=3,
    )
    service.prediction_log.close()
    return {"single": single, "big": stages, "big_rows": len(big), "method": method}


# --- the benchmark ------------------------------------------------------------------------------


def run(
    workdir: str,
    seed: int,
    connections: list[int],
    seconds: float,
    open_rate: float,
    open_seconds: float,
    big_requests: int,
) -> dict[str, Any]:
    """The whole serving benchmark; see the module docstring. Returns JSON-ready figures."""
    import contextlib

    import yaml

    from churn.cli.common import Context
    from churn.server import running_service

    ws = Path(workdir) / "serving"
    shutil.rmtree(ws, ignore_errors=True)  # a fresh workspace and registry on every run
    ws.mkdir(parents=True)
    started = time.perf_counter()
    model = build_workspace(ws, seed)
    result: dict[str, Any] = {"model": model, "setup_seconds": time.perf_counter() - started}
    ids, rows = online_rows(ws, 200)
    id_bodies = [json.dumps({"customer_ids": [c]}).encode() for c in ids]
    row_bodies = [json.dumps({"rows": [r]}).encode() for r in rows]
    big = big_rows(rows, BIG_ROWS)
    big_json = json.dumps({"rows": big}).encode()
    big_arrow = arrow_body(big)
    settings = _settings(ws)
    result |= {
        "big_json_bytes": len(big_json),
        "big_arrow_bytes": len(big_arrow),
        "max_request_bytes": settings.serving.max_request_bytes,
    }
    if len(big_json) > settings.serving.max_request_bytes:
        raise RuntimeError(f"a {BIG_ROWS:,}-row body ({len(big_json):,} bytes) exceeds serving.max_request_bytes")

    gc.collect()
    result["in_process"] = in_process(ws, ids, big, calls=300)

    config = ws / "serving.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False))
    ctx = Context(settings, config)
    with contextlib.ExitStack() as stack:
        # Each server its own BentoML home: a server starting clears the Prometheus files of the home it uses.
        ready = time.perf_counter()
        service = stack.enter_context(
            running_service(ctx, timeout_s=300, env={"BENTOML_HOME": str(ws / "bentoml-service")})
        )
        result["startup_service"] = time.perf_counter() - ready
        minimal = stack.enter_context(
            running_service(
                ctx,
                timeout_s=300,
                service="bench.serving:MinimalBento",
                env={MODEL_ENV: model["model_path"], "BENTOML_HOME": str(ws / "bentoml-minimal")},
            )
        )
        targets = {"score": (f"{service}/score", id_bodies), "minimal": (f"{minimal}/predict", row_bodies)}

        for c in connections:  # (a)
            for name, (url, bodies) in targets.items():
                result[f"closed_{name}_c{c}"] = closed_loop(url, bodies, c, seconds, warmup=3)
        for name, (url, bodies) in targets.items():  # (b)
            result[f"open_{name}"] = open_loop(url, bodies, open_rate, open_seconds)
            time.sleep(2)
        # (c) and (d): the same rows as JSON and as Arrow, and the minimal endpoint's JSON, taking turns.
        result["big"] = interleaved_sequential(
            {
                "json": (f"{service}/score_features", big_json, JSON),
                "arrow": (f"{service}/score_features", big_arrow, ARROW),
                "minimal": (f"{minimal}/predict", big_json, JSON),
            },
            big_requests,
            warmup=3,
        )
    return result


def main(argv: list[str]) -> None:
    """`serving.py ARGS_JSON RESULT_JSON_PATH`: the benchmark's figures as JSON."""
    args, result_path = argv
    Path(result_path).write_text(json.dumps(run(**json.loads(args))))


if __name__ == "__main__":
    main(sys.argv[1:])
