"""BentoML service: scores customers with the registry's champion and Feast online features.

Start it with `churn serve` or `bentoml serve serving.service:ChurnService`; the config file comes
from `$CHURN_CONFIG` (the embedded default otherwise).

Endpoints: POST /score (customer ids), POST /score_features (the caller sends features),
GET /model (the served version, when it was trained, its metrics and features), and BentoML's
own GET /healthz, /livez and /readyz. Every scored row goes to the prediction log. The service
checks the champion alias every `serving.reload_interval_s` and swaps in a new champion without
a restart; a request in flight finishes with the model it started with.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Annotated, Any

import bentoml
import mlflow
import pandas as pd
from bentoml.exceptions import InvalidArgument
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from pydantic import Field, StringConstraints
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from churn import names
from churn.settings import Settings, load_settings, resolved_yaml
from features.matrix import CALIBRATION_ARTIFACT
from features.pipeline import open_store
from serving.batch import with_early_warning
from serving.guard import RequestGuard
from serving.prediction_log import PredictionLog
from serving.predictor import Predictor

log = logging.getLogger(__name__)

SCHEMA_MAX_ITEMS = 10_000
"""Hard cap in the request schema; `serving.max_ids` (default 1000) is the configured limit."""

CustomerId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
FiniteNumber = Annotated[float, Field(allow_inf_nan=False)]
FeatureValue = FiniteNumber | Annotated[str, StringConstraints(max_length=256)] | None


class NoChampionError(RuntimeError):
    """The registry has no model with the champion alias."""


def champion_info(settings: Settings) -> tuple[str, str]:
    """The champion's version and run id.

    Raises:
        NoChampionError: There is no champion yet; the message says how to train one.
    """
    name = settings.training.model_name
    client = MlflowClient(settings.mlflow_uri)
    try:
        version = client.get_model_version_by_alias(name, names.CHAMPION_ALIAS)
    except MlflowException:
        raise NoChampionError(
            f"no '{names.CHAMPION_ALIAS}' version of model '{name}' at {settings.mlflow_uri}: "
            "run `churn train` (or `churn quickstart`) first"
        ) from None
    return str(version.version), str(version.run_id)


def load_champion(settings: Settings) -> Predictor:
    """Load `models:/<name>@champion` from the MLflow registry, with its calibration and training sample.

    Raises:
        NoChampionError: There is no champion yet; the message says how to train one.
    """
    mlflow.set_tracking_uri(settings.mlflow_uri)
    version, run_id = champion_info(settings)
    return load_version(settings, version, run_id)


def load_version(settings: Settings, version: str, run_id: str) -> Predictor:
    """Load one registered version as a `Predictor`."""
    name = settings.training.model_name
    booster = mlflow.xgboost.load_model(f"models:/{name}/{version}")
    predictor = Predictor(booster, version, settings.serving.risk_tiers, settings.serving.top_reasons)
    run = MlflowClient(settings.mlflow_uri).get_run(run_id)
    predictor.info = {
        "name": name,
        "version": version,
        "run_id": run_id,
        "trained_at": pd.Timestamp(run.info.start_time, unit="ms", tz="UTC").isoformat(),
        "metrics": {k: v for k, v in run.data.metrics.items() if k.startswith(("test_", "valid_"))},
        "feature_service": run.data.tags.get("feature_service", names.FEATURE_SERVICE),
    }
    try:
        predictor.calibration = mlflow.artifacts.load_dict(f"runs:/{run_id}/{CALIBRATION_ARTIFACT}")
    except (MlflowException, OSError):
        predictor.calibration = None
    try:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=names.REFERENCE_ARTIFACT)
        predictor.reference = pd.read_parquet(local)
    except (MlflowException, OSError):
        log.warning("champion v%s has no reference sample: quantile layers use the request's rows", version)
    return predictor


def validate_feature_rows(predictor: Predictor, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Check caller-supplied rows against the model's signature.

    Raises:
        InvalidArgument: Naming the row, the field and the problem (unknown, missing, wrong type).
    """
    expected = set(predictor.features)
    allowed = expected | {names.CUSTOMER_ID}
    categorical = set(predictor.categories)
    for i, row in enumerate(rows):
        unknown = sorted(set(row) - allowed)
        if unknown:
            raise InvalidArgument(
                f"rows[{i}]: unknown field(s) {', '.join(unknown)}; the model's features are listed at GET /model"
            )
        missing = sorted(expected - set(row))
        if missing:
            raise InvalidArgument(f"rows[{i}]: missing field(s) {', '.join(missing)} (send null for an unknown value)")
        for field in predictor.features:
            value = row[field]
            if value is None:
                continue
            if field in categorical and not isinstance(value, str):
                raise InvalidArgument(f"rows[{i}].{field}: expected a string (a category), got {value!r}")
            if field not in categorical and isinstance(value, str):
                raise InvalidArgument(f"rows[{i}].{field}: expected a number, got the string {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidArgument(f"rows[{i}].{field}: must be a finite number, got {value}")
        if names.CUSTOMER_ID in row and not isinstance(row[names.CUSTOMER_ID], str):
            raise InvalidArgument(f"rows[{i}].customer_id: expected a string")
    return pd.DataFrame(
        rows, columns=[*predictor.features, *([names.CUSTOMER_ID] if any(names.CUSTOMER_ID in r for r in rows) else [])]
    )


async def model_info(request: Request) -> JSONResponse:
    """GET /model: the served model's version, training time, metrics and features."""
    service = bentoml.get_current_service()
    predictor: Predictor = service.predictor
    return JSONResponse(
        {**predictor.info, "features": predictor.features, "calibrated": predictor.calibration is not None}
    )


# Mounted at the root: BentoML's passive mount only takes requests one of these routes matches.
info_app = Starlette(routes=[Route("/model", model_info, methods=["GET"])])


@bentoml.asgi_app(info_app, path="/")
@bentoml.service(name="churn_scoring", traffic={"timeout": 30})
class ChurnService:
    """Churn scoring for CRM systems."""

    def __init__(self) -> None:
        """Load settings, the champion model and the Feast store (fails fast without a champion)."""
        self.settings = load_settings()
        log.info("serving with resolved config:\n%s", resolved_yaml(self.settings))
        self.predictor = load_champion(self.settings)
        self.store = open_store(self.settings)
        self.feature_service = self.store.get_feature_service(self.predictor.info["feature_service"])
        self.prediction_log = PredictionLog(self.settings.path(self.settings.serving.prediction_log_dir))
        self._stop = threading.Event()
        self._reloader = threading.Thread(target=self._watch_champion, name="champion-reload", daemon=True)
        self._reloader.start()

    def _watch_champion(self) -> None:
        """Hot reload: when the champion alias moves, load the new version and swap it in."""
        while not self._stop.wait(self.settings.serving.reload_interval_s):
            try:
                version, run_id = champion_info(self.settings)
                if version != self.predictor.version:
                    fresh = load_version(self.settings, version, run_id)
                    self.feature_service = self.store.get_feature_service(fresh.info["feature_service"])
                    self.predictor = fresh  # one assignment: a request holds the predictor it started with
                    log.info("hot reload: now serving champion v%s", version)
            except Exception:  # keep serving the current model whatever the registry does
                log.exception("hot reload check failed; still serving v%s", self.predictor.version)

    @bentoml.on_shutdown
    def close(self) -> None:
        """Stop the reload thread and write out the prediction log."""
        self._stop.set()
        self.prediction_log.close()

    def _score_rows(self, predictor: Predictor, rows: pd.DataFrame, ids: list[str]) -> list[dict[str, Any]]:
        scored = with_early_warning(self.settings, predictor, rows, predictor.score(rows))
        features = rows[predictor.features].to_dict("records")
        self.prediction_log.append(ids, predictor.version, features, [s["churn_probability"] for s in scored])
        return scored

    @bentoml.api
    def score(
        self,
        customer_ids: Annotated[list[CustomerId], Field(min_length=1, max_length=SCHEMA_MAX_ITEMS)],
        ctx: bentoml.Context,
    ) -> list[dict[str, Any]]:
        """Score customers by id from their online features; an unknown id gets a per-item error.

        Each answer: churn_probability, risk_tier, reasons, segment, behaviour layers, rule_hits,
        action, expected_loss, model_version and feature_freshness (when the features were computed).
        """
        limit = self.settings.serving.max_ids
        if len(customer_ids) > limit:
            raise InvalidArgument(
                f"customer_ids: {len(customer_ids)} ids, at most {limit} per request (serving.max_ids)"
            )
        predictor = self.predictor
        try:
            response = self.store.get_online_features(
                features=self.feature_service, entity_rows=[{names.CUSTOMER_ID: c} for c in customer_ids]
            )
            online = response.to_df(include_event_timestamps=True)
        except Exception as exc:  # the online store (SQLite file, Redis) is unreachable or broken
            log.exception("online store lookup failed")
            # Set the status here: BentoML hides the message of a raised 5xx error, and the caller
            # should learn what is down and what still works.
            ctx.response.status_code = 503
            message = (
                f"the online feature store is unavailable ({type(exc).__name__}); POST /score_features still works"
            )
            return [{"error": message}]
        known = online[predictor.features].notna().any(axis=1)
        answers: list[dict[str, Any]] = [
            {names.CUSTOMER_ID: c, "error": f"unknown customer_id '{c}': no online features"} for c in customer_ids
        ]
        if known.any():
            rows = online.loc[known].reset_index(drop=True)
            ids = [customer_ids[i] for i in known[known].index]
            stamps = _freshness(online.loc[known], predictor.features)
            for i, answer, fresh in zip(
                known[known].index, self._score_rows(predictor, rows, ids), stamps, strict=True
            ):
                answers[i] = {names.CUSTOMER_ID: customer_ids[i], **answer, "feature_freshness": fresh}
        return answers

    @bentoml.api
    def score_features(
        self, rows: Annotated[list[dict[str, FeatureValue]], Field(min_length=1, max_length=SCHEMA_MAX_ITEMS)]
    ) -> list[dict[str, Any]]:
        """Score rows of features the caller supplies, validated against the model's signature.

        Every model feature must be present (null for unknown); customer_id is optional.
        """
        limit = self.settings.serving.max_ids
        if len(rows) > limit:
            raise InvalidArgument(f"rows: {len(rows)} rows, at most {limit} per request (serving.max_ids)")
        predictor = self.predictor
        frame = validate_feature_rows(predictor, rows)
        ids = (
            frame[names.CUSTOMER_ID].fillna("").astype(str).tolist()
            if names.CUSTOMER_ID in frame
            else [""] * len(frame)
        )
        return self._score_rows(predictor, frame, ids)


def _freshness(online: pd.DataFrame, features: list[str]) -> list[str | None]:
    """Per row, when its newest feature snapshot was taken (ISO, UTC)."""
    columns = [f"{f}__ts" for f in features if f"{f}__ts" in online]
    if not columns:
        return [None] * len(online)
    newest = online[columns].max(axis=1)
    return [pd.Timestamp(int(s), unit="s", tz="UTC").isoformat() if s and s > 0 else None for s in newest]


ChurnService.add_asgi_middleware(RequestGuard)  # type: ignore[attr-defined]
