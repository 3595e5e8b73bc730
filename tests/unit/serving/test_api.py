"""The scoring API's contract as its OpenAPI document states it (`serving.api`), built without a server."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path
from typing import Any

import pytest

from serving import api
from serving.service import ChurnService

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    spec: dict[str, Any] = ChurnService.openapi_spec.asdict()
    return spec


def test_the_document_states_the_version_the_limits_and_every_endpoint(document: dict[str, Any]) -> None:
    assert document["info"]["version"] == importlib.metadata.version("churn-platform")
    assert "created with BentoML" not in document["info"]["description"]
    assert f"{api.MAX_IDS} customer ids or rows per request" in document["info"]["description"]
    assert {"/score", "/score_features", "/model"} <= set(document["paths"])
    for path, field in (("/score", "customer_ids"), ("/score_features", "rows")):
        body = document["paths"][path]["post"]["requestBody"]["content"]
        assert body["application/json"]["schema"]["properties"][field]["maxItems"] == api.MAX_IDS
        assert body["application/json"]["schema"]["additionalProperties"] is False
    assert api.ARROW_STREAM in document["paths"]["/score_features"]["post"]["requestBody"]["content"]


def test_the_answers_have_schemas_with_the_configured_layers(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for model in ("ScoreAnswer", "UnknownCustomer", "Answer", "ModelInfo", "Reason", "RuleHit"):
        assert model in schemas, model
    assert set(api.LAYERS) <= set(schemas["Answer"]["properties"]) and api.LAYERS
    assert set(api.LAYERS) <= set(schemas["Answer"]["required"])
    score = document["paths"]["/score"]["post"]["responses"]
    assert {"200", "400", "413", "429", "503"} <= set(map(str, score))
    model = document["paths"]["/model"]["get"]["responses"]
    assert model[200]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ModelInfo"}


def test_without_the_installed_package_the_version_is_pyprojects(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Bento holds the code and pyproject.toml, not the installed package."""

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    expected = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert api.package_version() == expected
