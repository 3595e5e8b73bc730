"""Schemathesis fuzzes the running BentoML service from its own OpenAPI document: never a 5xx.

A real small model is trained here and served over HTTP (as in test_service_http.py). Two
schemas drive the fuzzer, each for POST /score and POST /score_features, with valid (positive)
and invalid (negative: wrong types, missing or extra fields, broken bounds) bodies:

* `served`: `/docs.json` exactly as the service serves it. Feature rows there are free-form
  objects, so almost every generated row is refused for unknown or missing fields; /score_features
  also gets random bytes as an Arrow IPC stream.
* `signature`: the same document with the request bodies narrowed to what the model takes (its
  features from GET /model, categories from the snapshots, known customer ids), so valid cases
  reach the scoring code with odd values (huge, tiny, negative, unknown categories) and invalid
  ones break the signature one field at a time.

Every answer must be below 500, JSON, an error message for a 4xx and probabilities in [0, 1]
for a 200. Cases come from Schemathesis strategies (`APIOperation.as_strategy`) drawn in a plain
Hypothesis test: Schemathesis's fixture-based `@schema.parametrize()` (`schemathesis.pytest.
from_fixture`, needed because the service starts in a fixture) fails on pytest 9.2, which has
no `Function._nodeid` any more.

`CHURN_FUZZ_EXAMPLES` sets the examples per operation and schema (default `DEFAULT_EXAMPLES`, 4 x
that in all). Generation is derandomized, so a run is reproducible. Each fuzz test checks that its
operation got its budget of cases, valid and invalid ones, and prints how many went out, by mode,
and the answers by status.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from training_fixtures import write_config

from churn.cli.common import Context
from churn.server import running_service
from core import names
from core.settings import Settings, parse_settings
from features.pipeline import latest_snapshot

FUZZ_EXAMPLES_ENV = "CHURN_FUZZ_EXAMPLES"
DEFAULT_EXAMPLES = 150
"""Examples per operation and schema: 2 operations x 2 schemas x 150 = 600 cases."""

MIN_SHARE = 0.9
"""The share of its budget each operation must have been sent (Hypothesis may stop a little short
when it runs out of distinct cases)."""

MAX_IDS = 50
MAX_REQUEST_BYTES = 100_000
FUZZED_PATHS = ("/score", "/score_features")
SCHEMAS = ("served", "signature")

Strategies = dict[tuple[str, str], st.SearchStrategy[schemathesis.Case]]


def fuzz_examples() -> int:
    """Examples per operation and schema, from `CHURN_FUZZ_EXAMPLES` (default `DEFAULT_EXAMPLES`)."""
    raw = os.environ.get(FUZZ_EXAMPLES_ENV, "").strip()
    if not raw:
        return DEFAULT_EXAMPLES
    if not raw.isdigit() or int(raw) < 1:
        raise pytest.UsageError(f"{FUZZ_EXAMPLES_ENV}={raw!r}: expected a positive whole number")
    return int(raw)


def _serving_settings(ws: Path) -> Settings:
    raw = {
        "workspace": str(ws),
        "training": {"n_trials": 2, "max_rounds": 60},
        "serving": {"reload_interval_s": 5.0, "max_ids": MAX_IDS, "max_request_bytes": MAX_REQUEST_BYTES},
    }
    return parse_settings(raw, "test", env={})


@pytest.fixture(scope="module")
def service(served_workspace: Path) -> Iterator[tuple[str, Settings]]:
    """A service on a trained champion, with features in the online store: (URL, settings)."""
    settings = _serving_settings(served_workspace)
    config = write_config(settings, served_workspace / "fuzz.yaml")
    with running_service(Context(settings, config), timeout_s=180) as url:
        yield url, settings


def _config(url: str) -> schemathesis.Config:
    return schemathesis.Config.from_dict({"base-url": url, "request-timeout": 60, "warnings": False})


def _signature_document(document: dict[str, Any], features: list[str], settings: Settings) -> dict[str, Any]:
    """`document` with the bodies of /score and /score_features narrowed to the served model."""
    snapshot = latest_snapshot(settings)
    categorical = {c for c in features if c in snapshot and not pd.api.types.is_numeric_dtype(snapshot[c])}
    known_ids = snapshot[names.CUSTOMER_ID].head(20).tolist()

    def feature_schema(name: str) -> dict[str, Any]:
        if name in categorical:
            seen = sorted(str(v) for v in snapshot[name].dropna().unique())
            return {"anyOf": [{"enum": seen}, {"type": "string", "maxLength": 256}, {"type": "null"}]}
        return {"anyOf": [{"type": "number"}, {"type": "null"}]}

    row = {
        "type": "object",
        "properties": {
            **{f: feature_schema(f) for f in features},
            names.CUSTOMER_ID: {"type": "string", "maxLength": 128},
        },
        "required": list(features),
        "additionalProperties": False,
    }
    out = copy.deepcopy(document)
    body = ("post", "requestBody", "content", "application/json", "schema", "properties")
    score_features = _dig(out["paths"]["/score_features"], body)
    score_features["rows"] = {"type": "array", "items": row, "minItems": 1, "maxItems": 5}
    # JSON bodies only here, so every case of this schema reaches the model (the served one sends Arrow too).
    content = out["paths"]["/score_features"]["post"]["requestBody"]["content"]
    out["paths"]["/score_features"]["post"]["requestBody"]["content"] = {
        "application/json": content["application/json"]
    }
    score = _dig(out["paths"]["/score"], body)
    score["customer_ids"]["items"] = {
        "anyOf": [{"enum": known_ids}, {"type": "string", "minLength": 1, "maxLength": 128}]
    }
    score["customer_ids"]["maxItems"] = MAX_IDS
    return out


def _dig(node: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    for key in keys:
        node = node[key]
    return node


@pytest.fixture(scope="module")
def strategies(service: tuple[str, Settings]) -> Strategies:
    """Per (schema, path): Schemathesis cases, valid (positive) or invalid (negative) at random."""
    url, settings = service
    served = schemathesis.openapi.from_url(f"{url}/docs.json", config=_config(url), timeout=30)
    features = httpx.get(f"{url}/model", timeout=30).json()["features"]
    signature = schemathesis.openapi.from_dict(
        _signature_document(httpx.get(f"{url}/docs.json", timeout=30).json(), features, settings), config=_config(url)
    )
    out: Strategies = {}
    for name, schema in (("served", served), ("signature", signature)):
        for path in FUZZED_PATHS:
            operation = schema[path]["POST"]
            out[(name, path)] = st.one_of(
                operation.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE),
                operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE),
            )
    return out


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    """One keep-alive session for every fuzz case."""
    with requests.Session() as session:
        yield session


def _check_answer(case: schemathesis.Case, response: schemathesis.Response) -> None:
    """Never a 5xx; a 4xx names the problem in JSON; a 200 has a probability in [0, 1] per scored row."""
    label = f"{case.method} {case.path}"
    request = f"{label} body={case.body!r}"[:3000]
    text = response.content.decode("utf-8", "replace")[:2000]
    assert response.status_code < 500, f"{response.status_code} for {request}\nanswer: {text}"
    try:
        answer = json.loads(response.content)
    except ValueError:
        pytest.fail(f"{response.status_code} answer is not JSON for {request}\nanswer: {text}")
    if response.status_code >= 400:
        # BentoML 1.4 wraps the message of an error raised in an API method in a list
        # (`[{"error": ...}]`); its own validation errors and the guard's answers are objects.
        error = answer[0] if isinstance(answer, list) and len(answer) == 1 else answer
        assert isinstance(error, dict) and error.get("error"), f"no error message for {request}\nanswer: {text}"
        return
    assert response.status_code == 200, f"{response.status_code} for {request}\nanswer: {text}"
    assert isinstance(answer, list), f"not a list of answers for {request}\nanswer: {text}"
    for item in answer:
        if "error" in item:
            assert case.path == "/score" and item["error"].startswith("unknown customer_id"), text
            continue
        probability = item["churn_probability"]
        assert math.isfinite(probability) and 0 <= probability <= 1, f"{request}\nanswer: {text}"
        assert item["risk_tier"] and item["model_version"], f"{request}\nanswer: {text}"


@pytest.mark.parametrize("path", FUZZED_PATHS)
@pytest.mark.parametrize("schema", SCHEMAS)
def test_fuzzed_requests_never_get_5xx(strategies: Strategies, http: requests.Session, schema: str, path: str) -> None:
    """Valid and invalid bodies for one operation of one schema: every answer is below 500, and
    the operation got its budget of cases (`CHURN_FUZZ_EXAMPLES`), valid and invalid ones."""
    budget = fuzz_examples()
    sent: Counter[str] = Counter()
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=budget, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        case = data.draw(strategies[(schema, path)], label="case")
        sent[case.meta.generation.mode.value if case.meta is not None else "explicit"] += 1
        response = case.call(session=http, timeout=60)
        statuses[response.status_code] += 1
        _check_answer(case, response)

    fuzz()
    print(f"\n{schema} POST {path}: {dict(sent)} cases sent; answers by status {dict(sorted(statuses.items()))}")
    assert sent["positive"] > 0 and sent["negative"] > 0, f"not both valid and invalid cases: {dict(sent)}"
    assert sum(sent.values()) >= MIN_SHARE * budget, f"{sum(sent.values())} cases sent of a budget of {budget}"


@pytest.mark.parametrize("value", [3.4028235677973366e38, 1e300, -1e300, 5e-324])
def test_finite_values_past_float32_are_scored(service: tuple[str, Settings], value: float) -> None:
    """Found by the fuzzer: a finite number past float32's range made XGBoost's DMatrix raise (500)."""
    url, _ = service
    features = httpx.get(f"{url}/model", timeout=30).json()["features"]
    row = dict.fromkeys(features, None) | {"purchases_spend_90d": value, "service_tickets_90d": value}
    answer = httpx.post(f"{url}/score_features", json={"rows": [row]}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert 0 <= answer.json()[0]["churn_probability"] <= 1
