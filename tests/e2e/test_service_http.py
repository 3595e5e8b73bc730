"""The BentoML scoring service over real HTTP, with a real small model trained here and Feast online
features: every endpoint, every class of bad input, API key, size limit, hot reload, the 503 path
and the prediction log."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.metadata
import json
import math
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import mlflow
import pandas as pd
import pyarrow as pa
import pytest
from conftest import require_service
from mlflow import MlflowClient
from training_fixtures import write_config
from typer.testing import CliRunner

from churn.cli import app
from churn.cli.common import Context
from churn.server import running_service
from core import names
from core.prediction_log import read_prediction_log
from core.settings import Settings, parse_settings
from crm.alerts import alert_list
from crm.answers import score, with_early_warning
from features.pipeline import historical_features, latest_snapshot, materialize, open_store
from model.champion import load_champion
from model.predictor import predictor_of


def _serving_settings(ws: Path, **serving: Any) -> Settings:
    raw = {
        "workspace": str(ws),
        "training": {"n_trials": 2, "max_rounds": 60},
        "serving": {"reload_interval_s": 1.0, "max_ids": 50, "max_request_bytes": 20_000, **serving},
    }
    return parse_settings(raw, "test", env={})


@pytest.fixture(scope="module")
def trained(served_workspace: Path) -> Path:
    """A workspace with features in the online store and a champion (shared with the fuzz tests)."""
    return served_workspace


@pytest.fixture(scope="module")
def service(trained: Path) -> Iterator[tuple[str, Settings]]:
    settings = _serving_settings(trained)
    config = write_config(settings, trained / "serving.yaml")
    with running_service(Context(settings, config), timeout_s=180) as url:
        yield url, settings


def _ids(settings: Settings, n: int) -> list[str]:
    return latest_snapshot(settings, columns=[names.CUSTOMER_ID])[names.CUSTOMER_ID].head(n).tolist()


def test_score_known_and_unknown_ids(service: tuple[str, Settings]) -> None:
    url, settings = service
    ids = _ids(settings, 3)
    answer = httpx.post(f"{url}/score", json={"customer_ids": [*ids, "nobody"]}, timeout=30)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert [b[names.CUSTOMER_ID] for b in body] == [*ids, "nobody"]
    for item in body[:3]:
        assert 0 <= item["churn_probability"] <= 1 and item["risk_tier"] in {"high", "medium", "low"}
        assert item["segment"] and item["action"] and isinstance(item["rule_hits"], list)
        assert item["model_version"] and item["feature_freshness"].startswith("20")
        assert all(r["phrase"] for r in item["reasons"])
        assert item["reasons_method"] == "shap"  # a small request gets exact TreeSHAP (explainer auto)
    assert "unknown customer_id 'nobody'" in body[3]["error"]


def test_score_features_matches_score_by_id(service: tuple[str, Settings]) -> None:
    url, settings = service
    info = httpx.get(f"{url}/model", timeout=10).json()
    assert info["version"] and info["trained_at"] and "test_roc_auc" in info["metrics"]
    features = info["features"]
    (cid,) = _ids(settings, 1)
    by_id = httpx.post(f"{url}/score", json={"customer_ids": [cid]}, timeout=30).json()[0]
    snapshot = latest_snapshot(settings)
    row = snapshot[snapshot[names.CUSTOMER_ID] == cid].iloc[0]
    days, gap = row["purchases_days_since_last"], row["purchases_gap_mean_90d"]
    row = row.to_dict() | {"purchases_overdue_ratio": days / gap if gap and gap > 0 else None}
    payload = {f: (None if pd.isna(row[f]) else row[f]) for f in features}
    got = httpx.post(f"{url}/score_features", json={"rows": [payload]}, timeout=30)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/json"
    answer = got.json()[0]
    assert answer["churn_probability"] == pytest.approx(by_id["churn_probability"], abs=1e-6)
    # The same reasons, values and actions whichever way the features came.
    assert [r["feature"] for r in answer["reasons"]] == [r["feature"] for r in by_id["reasons"]]
    assert [r["value"] for r in answer["reasons"]] == pytest.approx([r["value"] for r in by_id["reasons"]])
    assert (answer["segment"], answer["action"], answer["reasons_method"]) == (
        by_id["segment"],
        by_id["action"],
        "shap",
    )


def test_health_probes(service: tuple[str, Settings]) -> None:
    url, _ = service
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/score", b'{"customer_ids": ["a",', "json"),  # malformed JSON
        ("/score", b'{"customer_ids": "C1"}', "customer_ids"),  # wrong type
        ("/score", b'{"customer_ids": [1, 2]}', "customer_ids"),  # numbers, not strings
        ("/score", b'{"customer_ids": []}', "customer_ids"),  # empty list
        ("/score", json.dumps({"customer_ids": [f"C{i}" for i in range(51)]}).encode(), "at most 50"),
        ("/score", b"{}", "customer_ids"),  # missing field
        ("/score", b'{"customer_ids": [""]}', "customer_ids"),  # empty id
        ("/score_features", b'{"rows": [{"purchases_count_30d": NaN}]}', "rows"),
        ("/score_features", b'{"rows": [{"purchases_count_30d": Infinity}]}', "rows"),
        ("/score_features", b'{"rows": [{"purchases_count_30d": 1.0}]}', "missing field"),
        ("/score_features", b'{"rows": [{"bogus": 1.0}]}', "unknown field(s) bogus"),
        ("/score_features", b'{"rows": [{"purchases_count_30d": [1]}]}', "rows"),
        ("/score_features", b'{"rows": []}', "rows"),
    ],
)
def test_bad_requests_get_4xx_naming_the_field(
    service: tuple[str, Settings], path: str, body: bytes, needle: str
) -> None:
    url, _ = service
    answer = httpx.post(f"{url}{path}", content=body, headers={"content-type": "application/json"}, timeout=30)
    assert 400 <= answer.status_code < 500, answer.text
    assert needle.lower() in answer.text.lower()


def test_wrong_types_in_feature_rows_name_the_field(service: tuple[str, Settings]) -> None:
    url, _ = service
    features = httpx.get(f"{url}/model", timeout=10).json()["features"]
    row: dict[str, Any] = dict.fromkeys(features, 1.0)
    row["purchases_count_30d"] = "many"
    answer = httpx.post(f"{url}/score_features", json={"rows": [row]}, timeout=30)
    assert answer.status_code == 400 and "rows[0].purchases_count_30d: expected a number" in answer.text
    row["purchases_count_30d"] = 1.0
    row["profile_plan"] = 3.0
    answer = httpx.post(f"{url}/score_features", json={"rows": [row]}, timeout=30)
    assert answer.status_code == 400 and "rows[0].profile_plan: expected a string" in answer.text


def test_request_size_limit(service: tuple[str, Settings]) -> None:
    url, _ = service
    big = json.dumps({"customer_ids": ["x" * 100] * 300}).encode()
    answer = httpx.post(f"{url}/score", content=big, headers={"content-type": "application/json"}, timeout=30)
    assert answer.status_code == 413 and "limit of 20000 bytes" in answer.text


def test_swagger_ui_and_its_static_files_load(service: tuple[str, Settings]) -> None:
    """GET / is BentoML's Swagger UI, whole; the files it references load too (the guard once emptied them)."""
    url, _ = service
    page = httpx.get(f"{url}/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert len(page.content) == int(page.headers["content-length"]) > 0
    assert "swagger-ui" in page.text.lower()
    static = re.findall(r'(?:src|href)="\.?/?(static_content/[^"]+)"', page.text)
    assert any(path.endswith(".js") for path in static), page.text[:2000]
    for path in static:
        answer = httpx.get(f"{url}/{path}", timeout=30)
        assert answer.status_code == 200, path
        assert len(answer.content) == int(answer.headers["content-length"]) > 0, path


def test_a_streamed_body_over_the_limit_gets_413(service: tuple[str, Settings]) -> None:
    """A chunked body (no content-length) is limited as it is read."""
    url, _ = service
    chunks = (b'{"customer_ids": [' + b'"x",' * 2_000 for _ in range(5))
    answer = httpx.post(f"{url}/score", content=chunks, headers={"content-type": "application/json"}, timeout=30)
    assert answer.status_code == 413 and "limit of 20000 bytes" in answer.text


@pytest.mark.parametrize(("path", "body"), [("/score", {"customer_ids": ["C1"]}), ("/score_features", {"rows": [{}]})])
def test_an_unknown_top_level_field_is_refused_naming_it(service: tuple[str, Settings], path: str, body: dict) -> None:
    url, _ = service
    answer = httpx.post(f"{url}{path}", json={**body, "x": 1}, timeout=30)
    assert answer.status_code == 400, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["x"] and error["type"] == "extra_forbidden", answer.text


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """A validator of `schema`, whose references point into the document's components."""
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]})


def _answer_schema(document: dict[str, Any], path: str, method: str = "post", status: str = "200") -> dict[str, Any]:
    return document["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]


def test_the_openapi_document_states_the_service(service: tuple[str, Settings]) -> None:
    """/docs.json: the package version, a description with the real limits, the enforced list
    limits, unknown fields refused, GET /model listed, and schemas the real answers match."""
    url, settings = service
    document = httpx.get(f"{url}/docs.json", timeout=30).json()
    assert document["info"]["version"] == importlib.metadata.version("churn-platform")
    about = document["info"]["description"]
    assert "created with BentoML" not in about and "Churn scoring" in about
    assert "50 customer ids or rows per request" in about and "20,000 bytes" in about
    bodies = {
        path: document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        for path in ("/score", "/score_features")
    }
    assert bodies["/score"]["properties"]["customer_ids"]["maxItems"] == settings.serving.max_ids == 50
    assert bodies["/score_features"]["properties"]["rows"]["maxItems"] == 50
    assert all(body["additionalProperties"] is False for body in bodies.values())
    assert (
        "application/vnd.apache.arrow.stream" in document["paths"]["/score_features"]["post"]["requestBody"]["content"]
    )
    for path in ("/score", "/score_features"):
        assert {"200", "400", "413", "429"} <= set(document["paths"][path]["post"]["responses"])

    ids = _ids(settings, 2)
    scored = httpx.post(f"{url}/score", json={"customer_ids": [*ids, "nobody"]}, timeout=30).json()
    _validator(document, _answer_schema(document, "/score")).validate(scored)
    info = httpx.get(f"{url}/model", timeout=10).json()
    _validator(document, _answer_schema(document, "/model", "get")).validate(info)
    row = dict.fromkeys(info["features"], None)
    features = httpx.post(f"{url}/score_features", json={"rows": [row]}, timeout=30).json()
    _validator(document, _answer_schema(document, "/score_features")).validate(features)
    refused = httpx.post(f"{url}/score_features", json={"rows": [{"bogus": 1.0}]}, timeout=30)
    assert refused.status_code == 400
    _validator(document, _answer_schema(document, "/score_features", status="400")).validate(refused.json())
    invalid = httpx.post(f"{url}/score", json={"customer_ids": "C1"}, timeout=30)
    _validator(document, _answer_schema(document, "/score", status="400")).validate(invalid.json())
    # An answer with a field the document does not state fails the check.
    with pytest.raises(jsonschema.ValidationError):
        _validator(document, _answer_schema(document, "/score")).validate([{**scored[0], "surprise": 1}])


def _arrow(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


ARROW = {"content-type": "application/vnd.apache.arrow.stream"}


def _feature_rows(url: str, settings: Settings, n: int) -> list[dict[str, Any]]:
    """The online features of `n` customers as /score_features takes them."""
    features = httpx.get(f"{url}/model", timeout=10).json()["features"]
    snapshot = latest_snapshot(settings).head(n)
    days, gap = snapshot["purchases_days_since_last"], snapshot["purchases_gap_mean_90d"]
    snapshot = snapshot.assign(purchases_overdue_ratio=(days / gap).where(gap > 0))
    return [{f: (None if pd.isna(r[f]) else r[f]) for f in features} for r in snapshot.to_dict("records")]


def test_arrow_rows_get_the_answers_of_the_same_json_rows(service: tuple[str, Settings]) -> None:
    url, settings = service
    rows = _feature_rows(url, settings, 8)
    rows[0][names.CUSTOMER_ID] = "C-arrow"
    as_json = httpx.post(f"{url}/score_features", json={"rows": rows}, timeout=30)
    assert as_json.status_code == 200, as_json.text
    as_arrow = httpx.post(
        f"{url}/score_features", content=_arrow(pa.Table.from_pylist(rows)), headers=ARROW, timeout=30
    )
    assert as_arrow.status_code == 200, as_arrow.text
    assert as_arrow.json() == as_json.json()


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda t: b"not arrow", "the body is not an Arrow IPC stream"),
        (lambda t: _arrow(t.append_column("x", pa.array([1.0]))), "unknown column(s) x"),
        (lambda t: _arrow(t.drop_columns(["purchases_count_30d"])), "missing column(s) purchases_count_30d"),
        (
            lambda t: _arrow(
                t.set_column(t.column_names.index("purchases_count_30d"), "purchases_count_30d", pa.array([math.nan]))
            ),
            "rows[0].purchases_count_30d: must be a finite number",
        ),
        (
            lambda t: _arrow(
                t.set_column(t.column_names.index("purchases_count_30d"), "purchases_count_30d", pa.array(["many"]))
            ),
            "rows.purchases_count_30d: expected numbers",
        ),
        (lambda t: _arrow(t.slice(0, 0)), "holds no rows"),
        (lambda t: _arrow(pa.table({"any": range(51)})), "51 rows, at most 50 per request"),
    ],
)
def test_a_bad_arrow_body_gets_400_naming_the_problem(service: tuple[str, Settings], change: Any, needle: str) -> None:  # noqa: ANN401
    url, settings = service
    table = pa.Table.from_pylist(_feature_rows(url, settings, 1))
    answer = httpx.post(f"{url}/score_features", content=change(table), headers=ARROW, timeout=30)
    assert answer.status_code == 400, answer.text
    assert needle in answer.json()[0]["error"]


def test_hot_reload_without_failing_requests(service: tuple[str, Settings]) -> None:
    url, settings = service
    client = MlflowClient(settings.mlflow_uri)
    name = settings.training.model_name
    before = httpx.get(f"{url}/model", timeout=10).json()["version"]
    run_id = client.get_model_version(name, before).run_id
    mlflow.set_tracking_uri(settings.mlflow_uri)
    new = mlflow.register_model(f"runs:/{run_id}/model", name).version
    ids = _ids(settings, 5)
    failures: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            r = httpx.post(f"{url}/score", json={"customer_ids": ids}, timeout=30)
            if r.status_code != 200:
                failures.append(r.text)

    worker = threading.Thread(target=hammer)
    worker.start()
    try:
        client.set_registered_model_alias(name, names.CHAMPION_ALIAS, str(new))
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/model", timeout=10).json()["version"] != str(new):
            assert time.monotonic() < deadline, "the service did not pick up the new champion within 30 s"
            time.sleep(0.2)
    finally:
        stop.set()
        worker.join()
        client.set_registered_model_alias(name, names.CHAMPION_ALIAS, before)
    assert not failures
    answer = httpx.post(f"{url}/score", json={"customer_ids": ids[:1]}, timeout=30).json()[0]
    assert answer["model_version"] in {str(new), before}


def test_concurrent_requests_get_the_answers_they_get_alone(service: tuple[str, Settings]) -> None:
    """One-row /score_features requests sent all at once get the answers they get one at a time."""
    url, settings = service
    features = httpx.get(f"{url}/model", timeout=10).json()["features"]
    snapshot = latest_snapshot(settings).head(48)
    days, gap = snapshot["purchases_days_since_last"], snapshot["purchases_gap_mean_90d"]
    snapshot = snapshot.assign(purchases_overdue_ratio=(days / gap).where(gap > 0))
    rows = [{f: (None if pd.isna(r[f]) else r[f]) for f in features} for r in snapshot.to_dict("records")]
    alone = []
    for row in rows:
        answer = httpx.post(f"{url}/score_features", json={"rows": [row]}, timeout=30)
        assert answer.status_code == 200, answer.text
        alone.append(answer.json()[0]["churn_probability"])

    async def together() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(rows), max_keepalive_connections=len(rows))
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            return await asyncio.gather(*(client.post(f"{url}/score_features", json={"rows": [r]}) for r in rows))

    answers = asyncio.run(together())
    assert [a.status_code for a in answers] == [200] * len(rows), [a.text for a in answers if a.status_code != 200]
    got = [a.json()[0]["churn_probability"] for a in answers]
    assert got == pytest.approx(alone, abs=1e-9)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_api_key_load_shedding_and_unreachable_online_store(trained: Path, tmp_path: Path) -> None:
    """An API key; past serving.max_concurrency requests at once, 429; with a Redis online store of
    its own, which the test then stops: /score answers 503."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        require_service("redis-server (the Redis binary)", "127.0.0.1", 6379)
        pytest.skip("needs the redis-server binary to start a Redis the test may stop")
    port = _free_port()
    redis = subprocess.Popen(
        [redis_server, "--port", str(port), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
    )
    try:
        settings = _serving_settings(trained, api_key="s3cret", max_concurrency=2)
        tree = settings.model_dump(mode="json")
        tree["feast"]["online_store"] = {"type": "redis", "connection_string": f"127.0.0.1:{port}"}
        settings = parse_settings(tree, "test", env={})
        newest = latest_snapshot(settings)[names.EVENT_TIMESTAMP].max().to_pydatetime()
        second = dt.timedelta(seconds=1)
        materialize(settings, newest - second, newest + second)
        config = write_config(settings, tmp_path / "secured.yaml")
        ids = _ids(settings, 2)
        with running_service(Context(settings, config), timeout_s=180) as url:
            assert httpx.post(f"{url}/score", json={"customer_ids": ids}, timeout=30).status_code == 401
            wrong = {"Authorization": "Bearer nope"}
            assert httpx.post(f"{url}/score", json={"customer_ids": ids}, headers=wrong, timeout=30).status_code == 401
            key = {"X-API-Key": "s3cret"}
            assert httpx.post(f"{url}/score", json={"customer_ids": ids}, headers=key, timeout=30).status_code == 200
            assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200  # probes stay open
            features = httpx.get(f"{url}/model", headers=key, timeout=10).json()["features"]

            # Load shedding: 24 requests at once against a limit of 2 in progress.
            many = _ids(settings, 50)

            async def burst() -> tuple[list[httpx.Response], int]:
                limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
                async with httpx.AsyncClient(timeout=60, limits=limits, headers=key) as client:
                    posts = [client.post(f"{url}/score", json={"customer_ids": many}) for _ in range(24)]
                    probe = client.get(f"{url}/healthz")
                    *answers, health = await asyncio.gather(*posts, probe)
                    return answers, health.status_code

            answers, health = asyncio.run(burst())
            statuses = sorted({a.status_code for a in answers})
            assert statuses == [200, 429], statuses
            assert all(a.json() == {"error": "Too many requests"} for a in answers if a.status_code == 429)
            assert health == 200  # probes are never refused
            assert httpx.post(f"{url}/score", json={"customer_ids": ids}, headers=key, timeout=30).status_code == 200

            # The online store goes away: /score answers 503, /score_features still scores.
            redis.terminate()
            redis.wait(timeout=10)
            down = httpx.post(f"{url}/score", json={"customer_ids": ids}, headers=key, timeout=60)
            assert down.status_code == 503 and "online feature store is unavailable" in down.text
            row = dict.fromkeys(features, None)
            ok = httpx.post(f"{url}/score_features", json={"rows": [row]}, headers=key, timeout=30)
            assert ok.status_code == 200
    finally:
        redis.kill()
        redis.wait(timeout=10)
    # Stopping the service wrote out every scored row.
    logged = read_prediction_log(settings.path(settings.serving.prediction_log_dir))
    assert set(ids) <= set(logged[names.CUSTOMER_ID])
    assert {"model_version", names.PREDICTION, "purchases_count_30d"} <= set(logged.columns)


def _worker_ids(log: str, marker: str) -> set[str]:
    """Which churn_scoring workers wrote a line containing `marker` to BentoML's log
    (its lines name the worker: `[entry_service:churn_scoring:2]`)."""
    tag = "[entry_service:churn_scoring:"
    return {line.split(tag)[1].split("]")[0] for line in log.splitlines() if tag in line and marker in line}


def test_two_api_workers_share_the_requests(trained: Path, tmp_path: Path) -> None:
    """serving.workers 2: two API processes answer, each logging what it scored."""
    settings = _serving_settings(trained, workers=2, prediction_log_dir="log-2w")
    config = write_config(settings, tmp_path / "two-workers.yaml")
    ids = _ids(settings, 5)
    sent = 0
    with running_service(Context(settings, config), timeout_s=180) as url:
        logfile = settings.path("logs") / f"service-{url.rsplit(':', 1)[1]}.log"
        # The service is ready once one worker is; the other may still be loading the model.
        deadline = time.monotonic() + 180
        while _worker_ids(logfile.read_text(), "Service churn_scoring initialized") != {"1", "2"}:
            assert time.monotonic() < deadline, "the second worker did not start"
            time.sleep(0.5)

        async def load(n: int) -> list[httpx.Response]:
            # A connection per request: each is accepted by whichever worker takes it first (a
            # worker keeps the connections it accepted).
            limits = httpx.Limits(max_connections=8, max_keepalive_connections=0)
            async with httpx.AsyncClient(timeout=60, limits=limits) as client:
                return await asyncio.gather(
                    *(client.post(f"{url}/score", json={"customer_ids": [ids[i % 5]]}) for i in range(n))
                )

        for _ in range(10):  # which worker accepts is up to timing: send until both have answered
            answers = asyncio.run(load(40))
            sent += len(answers)
            assert {a.status_code for a in answers} == {200}
            assert all(a.json()[0]["churn_probability"] >= 0 for a in answers)
            if _worker_ids(logfile.read_text(), "path=/score,") == {"1", "2"}:
                break
    assert _worker_ids(logfile.read_text(), "path=/score,") == {"1", "2"}
    logged = read_prediction_log(settings.path("log-2w"))
    assert len(logged) == sent and set(logged[names.CUSTOMER_ID]) == set(ids)
    assert len(list(settings.path("log-2w").glob("date=*/part-*.parquet"))) >= 2  # a writer per worker


def test_batch_alert_list_explains_the_top_rows(trained: Path, tmp_path: Path) -> None:
    settings = _serving_settings(trained, batch_reasons_top=3)
    config = write_config(settings, tmp_path / "batch.yaml")
    out = tmp_path / "alerts.parquet"
    env = {"COLUMNS": "200"}
    result = CliRunner().invoke(app, ["score", "--out", str(out), "--reasons-top", "5", "-c", str(config)], env=env)
    assert result.exit_code == 0, result.output
    alerts = pd.read_parquet(out)
    snapshot = latest_snapshot(settings)
    assert sorted(alerts[names.CUSTOMER_ID]) == sorted(snapshot[names.CUSTOMER_ID])
    assert alerts["expected_loss"].is_monotonic_decreasing
    assert alerts["reasons"].head(5).map(lambda r: len(json.loads(r)) > 0).all()
    assert alerts["reasons"].iloc[5:].isna().all()
    assert alerts["reasons_method"].head(5).eq("shap").all() and alerts["reasons_method"].iloc[5:].isna().all()

    bad = CliRunner().invoke(app, ["score", "--out", str(out), "--reasons-top", "-2", "-c", str(config)], env=env)
    assert bad.exit_code == 1 and "--reasons-top: expected a count" in bad.output
    # Without the option, serving.batch_reasons_top rows get reasons; with 'all', every row does.
    for option, explained in (([], 3), (["--reasons-top", "all"], len(snapshot))):
        result = CliRunner().invoke(app, ["score", "--out", str(out), *option, "-c", str(config)], env=env)
        assert result.exit_code == 0, result.output
        assert pd.read_parquet(out)["reasons"].notna().sum() == explained, option

    # With reasons for every row, the vectorized batch path answers as the endpoint's per-request path.
    predictor = predictor_of(load_champion(settings.mlflow_uri, settings.training.model_name), settings.serving)
    date = snapshot[names.EVENT_TIMESTAMP].iloc[0]
    features = historical_features(open_store(settings), snapshot[[names.CUSTOMER_ID, names.EVENT_TIMESTAMP]])
    every = alert_list(settings, predictor, features, date, reasons_top=None).set_index(names.CUSTOMER_ID)
    single = with_early_warning(settings, predictor, features, score(predictor, features, settings.serving.risk_tiers))
    for customer, answer in zip(features[names.CUSTOMER_ID], single, strict=True):
        row = every.loc[customer]
        # The batch path predicts; the per-request path sums the contributions (float32 rounding apart).
        assert row["churn_probability"] == pytest.approx(answer["churn_probability"], rel=1e-5, abs=3e-7)
        assert row["risk_tier"] == answer["risk_tier"]
        assert row["reasons"] == answer["reasons"]
        assert row["reasons_method"] == answer["reasons_method"] == predictor.method(len(features))
        assert (row["segment"], row["action"]) == (answer["segment"], answer["action"])
        assert row["rule_hits"] == answer["rule_hits"]
