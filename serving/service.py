"""BentoML service: scores customers with the registry's champion and Feast online features.

Start it with `churn serve` or `bentoml serve serving.service:ChurnService`; the config file comes
from `$CHURN_CONFIG` (the embedded default otherwise).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import bentoml
import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from pydantic import Field

from churn import names
from churn.settings import Settings, load_settings, resolved_yaml
from features.pipeline import open_store
from serving.batch import with_early_warning
from serving.predictor import Predictor

MAX_IDS = 1000


class NoChampionError(RuntimeError):
    """The registry has no model with the champion alias."""


def load_champion(settings: Settings) -> Predictor:
    """Load `models:/<name>@champion` from the MLflow registry.

    Raises:
        NoChampionError: There is no champion yet; the message says how to train one.
    """
    name = settings.training.model_name
    mlflow.set_tracking_uri(settings.mlflow_uri)
    client = MlflowClient(settings.mlflow_uri)
    try:
        version = client.get_model_version_by_alias(name, names.CHAMPION_ALIAS)
    except MlflowException:
        raise NoChampionError(
            f"no '{names.CHAMPION_ALIAS}' version of model '{name}' at {settings.mlflow_uri}: "
            "run `churn train` (or `churn quickstart`) first"
        ) from None
    booster = mlflow.xgboost.load_model(f"models:/{name}/{version.version}")
    predictor = Predictor(booster, str(version.version), settings.serving.risk_tiers, settings.serving.top_reasons)
    try:
        local = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path=names.REFERENCE_ARTIFACT)
        predictor.reference = pd.read_parquet(local)
    except (MlflowException, OSError):
        logging.getLogger(__name__).warning("champion v%s has no reference sample: quantile layers use the batch")
    return predictor


@bentoml.service(name="churn_scoring", traffic={"timeout": 30})
class ChurnService:
    """Churn scoring for CRM systems."""

    def __init__(self) -> None:
        """Load settings, the champion model and the Feast store (fails fast without a champion)."""
        self.settings = load_settings()
        logging.getLogger(__name__).info("serving with resolved config:\n%s", resolved_yaml(self.settings))
        self.predictor = load_champion(self.settings)
        self.store = open_store(self.settings)
        self.feature_service = self.store.get_feature_service(names.FEATURE_SERVICE)

    @bentoml.api
    def score(
        self, customer_ids: Annotated[list[str], Field(min_length=1, max_length=MAX_IDS)]
    ) -> list[dict[str, Any]]:
        """Score customers by id from their online features; unknown ids get a per-item error."""
        online = self.store.get_online_features(
            features=self.feature_service, entity_rows=[{names.CUSTOMER_ID: c} for c in customer_ids]
        ).to_df()
        features = self.predictor.features
        known = online[features].notna().any(axis=1)
        answers: list[dict[str, Any]] = [
            {names.CUSTOMER_ID: c, "error": f"unknown customer_id '{c}': no online features"} for c in customer_ids
        ]
        if known.any():
            rows = online.loc[known]
            scored = with_early_warning(self.settings, self.predictor, rows, self.predictor.score(rows))
            for i, answer in zip(known[known].index, scored, strict=True):
                answers[i] = {names.CUSTOMER_ID: customer_ids[i], **answer}
        return answers

    @bentoml.api
    def score_features(
        self, rows: Annotated[list[dict[str, float | str | None]], Field(min_length=1, max_length=MAX_IDS)]
    ) -> list[dict[str, Any]]:
        """Score rows of features the caller supplies (every model feature must be present)."""
        frame = pd.DataFrame(rows)
        missing = [f for f in self.predictor.features if f not in frame.columns]
        if missing:
            raise bentoml.exceptions.InvalidArgument(f"rows lack model features: {', '.join(missing)}")
        return with_early_warning(self.settings, self.predictor, frame, self.predictor.score(frame))

    @bentoml.api(route="/model")
    def model(self) -> dict[str, Any]:
        """The served model version and its features."""
        return {
            "name": self.settings.training.model_name,
            "version": self.predictor.version,
            "features": self.predictor.features,
        }
