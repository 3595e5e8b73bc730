"""The scoring API's HTTP contract: request bodies, answers, and the OpenAPI document that states them.

The request models forbid unknown fields (an unknown field is a 400 naming it) and carry the
configured limits (`serving.max_ids`), read from `$CHURN_CONFIG` when BentoML imports the service,
so the OpenAPI document at `/docs.json` states the limits the service enforces. The answer models
exist for that document only: the handlers encode their answers themselves (`json_answers`).

POST /score_features also takes its rows as an Arrow IPC stream
(`content-type: application/vnd.apache.arrow.stream`), one column per feature: a big call then
skips parsing a JSON object per row. The table is read here and checked against the model's
signature on the scoring thread (`serving.validation.validate_feature_table`).
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import bentoml
from bentoml.exceptions import InvalidArgument
from bentoml.validators import ContentType
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from core import names
from core.settings import ConfigError, Settings, load_settings
from serving.validation import MAX_STRING

if TYPE_CHECKING:
    import pyarrow as pa
    from _bentoml_impl.serde import Serde
    from starlette.requests import Request

PACKAGE = "churn-platform"
ARROW_STREAM = "application/vnd.apache.arrow.stream"
"""The media type of an Arrow IPC stream (IANA-registered)."""
REF = "#/components/schemas/{model}"


def served_settings() -> Settings:
    """The settings of `$CHURN_CONFIG`, read at import: BentoML fixes a service's workers, traffic
    limits and request models then.

    A config that does not load gives the defaults here; the service's `__init__` reports it.
    """
    try:
        return load_settings()
    except ConfigError:
        return Settings()


SETTINGS = served_settings()
MAX_IDS = SETTINGS.serving.max_ids
LAYERS = list(SETTINGS.crm.layers)

CustomerId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
FiniteNumber = Annotated[float, Field(allow_inf_nan=False)]
FeatureValue = FiniteNumber | Annotated[str, StringConstraints(max_length=MAX_STRING)] | None


class ScoreRequest(bentoml.IODescriptor):
    """The body of POST /score."""

    model_config = ConfigDict(extra="forbid", title="ScoreRequest")

    customer_ids: Annotated[
        list[CustomerId],
        Field(
            min_length=1,
            max_length=MAX_IDS,
            description="Customers to score from their online features (serving.max_ids per request).",
        ),
    ]


class EventsRequest(bentoml.IODescriptor):
    """The body of POST /events: CRM events as they happen (checked against the data contract)."""

    model_config = ConfigDict(extra="forbid", title="EventsRequest")

    events: Annotated[
        list[dict[str, Any]],
        Field(
            min_length=1,
            max_length=SETTINGS.stream.max_events,
            description="Events: event_id, customer_id, event_timestamp (ISO 8601), event_type, optional "
            "amount and category. A batch is taken whole or refused whole (400 naming each bad event).",
        ),
    ]


class ScoreFeaturesRequest(bentoml.IODescriptor):
    """The body of POST /score_features: JSON rows, or an Arrow IPC stream of the same columns."""

    model_config = ConfigDict(extra="forbid", title="ScoreFeaturesRequest")

    rows: Annotated[
        list[dict[str, FeatureValue]],
        Field(
            min_length=1,
            max_length=MAX_IDS,
            description="Feature rows: every feature of GET /model (null for unknown), customer_id optional.",
        ),
    ]

    @classmethod
    async def from_http_request(cls, request: Request, serde: Serde) -> bentoml.IODescriptor:
        """The JSON body through BentoML, or an Arrow IPC stream read here (its table becomes `rows`).

        Raises:
            InvalidArgument: The Arrow stream does not read, or has too few or too many rows.
        """
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != ARROW_STREAM:
            return await super().from_http_request(request, serde)
        table = read_arrow_stream(await request.body())
        # No validation here: the handler checks the table against the model (`validate_feature_table`).
        return cls.model_construct(rows=table)


def read_arrow_stream(body: bytes) -> pa.Table:
    """The table of an Arrow IPC stream body, with 1 to `MAX_IDS` rows.

    Raises:
        InvalidArgument: The body is no Arrow IPC stream, or has too few or too many rows.
    """
    import pyarrow as pa

    try:
        table = pa.ipc.open_stream(body).read_all()
        # Reading trusts the offsets and lengths the stream states; check them all before any
        # compute function reads past a buffer on their word.
        table.validate(full=True)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidArgument(f"rows: the body is not an Arrow IPC stream ({exc})") from None
    if table.num_rows == 0:
        raise InvalidArgument("rows: the Arrow stream holds no rows; send at least one")
    if table.num_rows > MAX_IDS:
        raise InvalidArgument(f"rows: {table.num_rows} rows, at most {MAX_IDS} per request (serving.max_ids)")
    return table


# --- answers, as the OpenAPI document states them -----------------------------------------------


def _with_layers(schema: dict[str, Any]) -> None:
    """Add the behaviour layers of the config (`crm.layers`) to an answer's schema."""
    for layer in LAYERS:
        schema["properties"][layer] = {"type": "string", "description": f"behaviour layer '{layer}' (crm.layers)"}
    schema["required"] = [*schema.get("required", []), *LAYERS]


class Reason(BaseModel):
    """A feature that pushed the churn score up."""

    model_config = ConfigDict(extra="forbid")

    feature: str
    value: float | str | None = Field(description="the row's value (null: unknown)")
    contribution: float = Field(description="its share of the score's log-odds")
    phrase: str


class RuleHit(BaseModel):
    """An early-warning rule (crm.rules) the row meets."""

    model_config = ConfigDict(extra="forbid")

    rule: str
    description: str
    values: dict[str, float | None] = Field(description="the features the rule reads, with the row's values")


class Answer(BaseModel):
    """A scored row: probability, tier, reasons, CRM early warning and action."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_with_layers)

    churn_probability: float = Field(ge=0, le=1)
    risk_tier: str = Field(description="from serving.risk_tiers")
    reasons: list[Reason]
    reasons_method: Literal["shap", "approx"] = Field(description="exact TreeSHAP, or XGBoost's approximation")
    model_version: str
    segment: str = Field(description="RFM segment")
    rule_hits: list[RuleHit]
    action: str | None = Field(description="the retention playbook's action")
    customer_value: float | None
    expected_loss: float | None = Field(description="churn probability x customer value")


class ScoreAnswer(Answer):
    """A customer scored by POST /score."""

    customer_id: str
    feature_freshness: str = Field(description="when the online features were computed (ISO 8601)")
    newest_event: str | None = Field(
        None, description="the newest event (pushed through POST /events or the stream) the features include"
    )


class UnknownCustomer(BaseModel):
    """A customer POST /score has no online features for."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str
    error: str


class ModelInfo(BaseModel):
    """GET /model: the served champion."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: str
    run_id: str
    trained_at: str = Field(description="ISO 8601, UTC")
    metrics: dict[str, float] = Field(description="validation and test metrics of its training run")
    feature_service: str
    features: list[str] = Field(description="what POST /score_features rows hold")
    calibrated: bool


class ErrorAnswer(BaseModel):
    """A refused request: the guard's 401 and 413, load shedding's 429 (an object), or the
    service's own 400 and 503 (a list of one)."""

    error: str


class ValidationFailure(BaseModel):
    """A body that does not match the request schema (BentoML's 400)."""

    error: str = Field(description="how many errors, and in which model")
    detail: list[dict[str, Any]] = Field(description="pydantic's errors: type, loc (the field), msg")


ScoreAnswers = Annotated[list[ScoreAnswer | UnknownCustomer], ContentType("application/json")]
FeaturesAnswers = Annotated[list[Answer], ContentType("application/json")]


# --- the OpenAPI document -----------------------------------------------------------------------


def package_version() -> str:
    """This platform's version: the installed package's, else that of the `pyproject.toml` beside
    the packages (a Bento holds the code, not the installed package)."""
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        if pyproject.exists():
            return str(tomllib.loads(pyproject.read_text())["project"]["version"])
        return "unknown"


def description(settings: Settings) -> str:
    """What the OpenAPI document says about the service, with its configured limits."""
    serving = settings.serving
    key = (
        "Every request except the probes must send the API key (`Authorization: Bearer <key>` or `X-API-Key`)."
        if serving.api_key
        else "No API key is configured (serving.api_key)."
    )
    return (
        "Churn scoring for CRM systems: the registry's champion model (XGBoost, calibrated) scores "
        "customers by id from Feast's online features (POST /score) or feature rows the caller "
        "sends (POST /score_features, as JSON or as an Arrow IPC stream). Each answer holds the "
        "churn probability, risk tier, top reasons, RFM segment, behaviour layers, rule hits, "
        "retention action and expected loss. GET /model names the served version and its features.\n\n"
        f"Limits: {serving.max_ids} customer ids or rows per request; bodies up to "
        f"{serving.max_request_bytes:,} bytes (413 beyond); past {serving.max_concurrency} requests in "
        f"progress per worker, 429. {key} Bad input gets a 4xx whose message names the field."
    )


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ONE_ERROR = {"type": "array", "items": _ref(ErrorAnswer), "minItems": 1, "maxItems": 1}


class ScoringService(bentoml.Service[Any]):
    """A BentoML service whose OpenAPI document describes this platform's scoring API as served:
    its version and limits, the answers and refusals of each endpoint, GET /model and the Arrow
    body of /score_features."""

    @property
    def openapi_spec(self) -> Any:  # noqa: ANN401  (BentoML's OpenAPISpecification)
        """BentoML's document of the service, completed."""
        from bentoml._internal.service.openapi.specification import (
            Info,
            MediaType,
            OpenAPISpecification,
            PathItem,
            Schema,
        )

        spec = super().openapi_spec
        schemas = spec.components["schemas"]
        for model in (ErrorAnswer, ValidationFailure, UnknownCustomer, ModelInfo):
            schemas[model.__name__] = Schema(**model.model_json_schema(ref_template=REF))
        refused = {
            HTTPStatus.BAD_REQUEST.value: _answer(
                "A body that does not parse or match the schema (an object), or a value the model "
                "refuses (a list of one error naming the row and the field)",
                {"anyOf": [_ref(ValidationFailure), ONE_ERROR]},
            ),
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE.value: _answer(
                "Body over serving.max_request_bytes", _ref(ErrorAnswer)
            ),
            HTTPStatus.TOO_MANY_REQUESTS.value: _answer(
                "More requests in progress than serving.max_concurrency", _ref(ErrorAnswer)
            ),
        }
        unauthorised = (
            {HTTPStatus.UNAUTHORIZED.value: _answer("Missing or wrong API key", _ref(ErrorAnswer))}
            if SETTINGS.serving.api_key
            else {}
        )
        for path in ("/score", "/score_features"):
            responses = spec.paths[path].post["responses"]
            responses.pop(HTTPStatus.NOT_FOUND.value, None)  # BentoML's default: neither endpoint answers 404
            responses.update(refused | unauthorised)
        score = spec.paths["/score"].post["responses"]
        score[HTTPStatus.SERVICE_UNAVAILABLE.value] = _answer(
            "The online feature store is unavailable (POST /score_features still works)", ONE_ERROR
        )
        # BentoML documents the first member of a union only: /score also answers unknown customers.
        score[HTTPStatus.OK.value] = _answer(
            "Successful Response", {"type": "array", "items": {"anyOf": [_ref(ScoreAnswer), _ref(UnknownCustomer)]}}
        )
        spec.paths["/score_features"].post["requestBody"]["content"][ARROW_STREAM] = MediaType(
            schema=Schema(
                type="string",
                format="binary",
                description="An Arrow IPC stream: one column per feature of GET /model (numbers, or strings "
                f"for a category), optional {names.CUSTOMER_ID}; null for unknown.",
            )
        )
        spec.paths["/model"] = PathItem(
            get={
                "responses": {HTTPStatus.OK.value: _answer("Successful Response", _ref(ModelInfo)), **unauthorised},
                "tags": ["Service APIs"],
                "description": "The served model: version, training time, metrics and features.",
                "operationId": f"{self.name}__model",
            }
        )
        return OpenAPISpecification(
            openapi=spec.openapi,
            info=Info(title=self.name, version=package_version(), description=description(SETTINGS)),
            paths=spec.paths,
            servers=spec.servers,
            tags=spec.tags,
            components=spec.components,
        )
