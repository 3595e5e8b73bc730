"""The training job: Feast training set -> Optuna study -> MLflow run -> registry and gate."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature

from churn import names
from churn.settings import Settings, resolved_yaml
from features.pipeline import FeaturePaths, open_store
from training.dataset import historical_frame, out_of_time_split
from training.registry import GateDecision, champion_version, gate, record_and_apply
from training.tune import fit, predict, score, tune


@dataclass(frozen=True)
class TrainResult:
    """What the training job produced."""

    run_id: str
    model_name: str
    version: str
    metrics: dict[str, float]
    decision: GateDecision
    n_trials: int
    features: tuple[str, ...]


def configure_mlflow(settings: Settings) -> str:
    """Point MLflow at the profile's tracking store and make sure the experiment exists.

    Returns:
        The experiment id.
    """
    if settings.training.tracking_uri is None:
        settings.path("mlflow").mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.mlflow_uri)
    experiment = mlflow.get_experiment_by_name(settings.training.experiment)
    if experiment is None:
        artifacts = settings.mlflow_artifacts if settings.training.tracking_uri is None else None
        experiment_id = mlflow.create_experiment(settings.training.experiment, artifact_location=artifacts)
    else:
        experiment_id = experiment.experiment_id
    # Nested runs (the Optuna trials) land in the active experiment, so make it ours.
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def fingerprint(frame: pd.DataFrame) -> str:
    """A short content hash of a training frame."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def train(settings: Settings, on_trial: Callable[[int], None] | None = None) -> TrainResult:
    """Tune, train, log and register a churn model; promote it through the gate.

    Args:
        settings: The profile.
        on_trial: Called after each Optuna trial with its number (progress bars).

    Returns:
        The registered version, its validation metrics and the gate decision.
    """
    experiment_id = configure_mlflow(settings)
    cfg = settings.training
    paths = FeaturePaths.of(settings)
    labels = pd.read_parquet(paths.labels)
    if labels.empty:
        raise ValueError("no labelled observation dates: generate or ingest a longer history than the label horizon")
    store = open_store(settings)
    frame = historical_frame(store, labels)
    features = [c for c in frame.columns if c not in (names.CUSTOMER_ID, names.EVENT_TIMESTAMP, names.LABEL)]
    split = out_of_time_split(frame, features, cfg.valid_fraction)
    if split.valid[names.LABEL].nunique() < 2 or split.train[names.LABEL].nunique() < 2:
        raise ValueError("train and validation data both need churners and stayers: use more customers or days")
    client = MlflowClient(settings.mlflow_uri)
    if cfg.optuna_storage is None:
        settings.path("optuna").mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    # Under `mlflow run` the project's run id arrives in MLFLOW_RUN_ID; start_run would resume that
    # run (in another experiment) instead of starting ours, so take it out and keep it as a tag.
    launcher = os.environ.pop("MLFLOW_RUN_ID", None)
    tags = {"churn.launched_by_run": launcher} if launcher else {}
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{stamp}", tags=tags) as run:
        with TemporaryDirectory() as tmp:
            cfg_path = Path(tmp) / "config.yaml"
            cfg_path.write_text(resolved_yaml(settings))
            mlflow.log_artifact(str(cfg_path))
        mlflow.set_tags(
            {
                "feature_service": names.FEATURE_SERVICE,
                "data.fingerprint": fingerprint(frame),
                "data.first_date": str(frame[names.EVENT_TIMESTAMP].min().date()),
                "data.last_date": str(frame[names.EVENT_TIMESTAMP].max().date()),
            }
        )
        mlflow.log_params({"n_features": len(features), "train_rows": len(split.train), "valid_rows": len(split.valid)})
        result = tune(
            split,
            metric=cfg.metric,
            n_trials=cfg.n_trials,
            timeout_s=cfg.timeout_s,
            seed=cfg.seed,
            max_rounds=cfg.max_rounds,
            storage=settings.optuna_uri,
            study_name=f"{cfg.model_name}-{stamp}",
            on_trial=on_trial,
        )
        booster = fit(result.best_params, split, cfg.max_rounds, cfg.seed)
        x_valid, y_valid = split.xy("valid")
        proba = predict(booster, x_valid)
        metrics = {f"valid_{m}": score(m, y_valid.to_numpy(), proba) for m in ("roc_auc", "pr_auc", "log_loss")}
        mlflow.log_metrics({**metrics, "n_trees": float(booster.num_boosted_rounds())})
        mlflow.log_params({f"best_{k}": v for k, v in result.best_params.items()})
        _log_reference(settings, split.train[list(features)], predict(booster, split.train[list(features)]))
        info = mlflow.xgboost.log_model(
            booster,
            name="model",
            registered_model_name=cfg.model_name,
            # The API schema: what callers send (attributes as strings), not the model-typed frame.
            signature=infer_signature(split.valid[list(features)].head(50), proba[:50]),
            input_example=split.valid[list(features)].head(3),
            model_format="ubj",
        )
        version = str(info.registered_model_version)
    client.set_model_version_tag(cfg.model_name, version, "feature_service", names.FEATURE_SERVICE)
    client.set_model_version_tag(cfg.model_name, version, "features", ",".join(features))
    client.set_registered_model_alias(cfg.model_name, names.CHALLENGER_ALIAS, version)
    decision = _gate(settings, client, version, metrics[f"valid_{cfg.metric}"], split.valid, y_valid.to_numpy())
    record_and_apply(client, cfg.model_name, version, decision)
    return TrainResult(run.info.run_id, cfg.model_name, version, metrics, decision, result.n_trials, tuple(features))


def _log_reference(settings: Settings, x_train: pd.DataFrame, proba: object) -> None:
    n = min(settings.monitoring.reference_sample, len(x_train))
    sample = x_train.assign(**{names.PREDICTION: proba}).sample(n=n, random_state=settings.training.seed)
    with TemporaryDirectory() as tmp:
        folder, filename = names.REFERENCE_ARTIFACT.rsplit("/", 1)
        path = Path(tmp) / filename
        sample.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=folder)


def _gate(
    settings: Settings, client: MlflowClient, version: str, value: float, x_valid: pd.DataFrame, y_valid: object
) -> GateDecision:
    cfg = settings.training
    current = champion_version(client, cfg.model_name)
    champion_value: float | None = None
    if current is not None:
        champion = mlflow.xgboost.load_model(f"models:/{cfg.model_name}@{names.CHAMPION_ALIAS}")
        missing = set(champion.feature_names or []) - set(x_valid.columns)
        if missing:
            return GateDecision(
                False,
                f"champion v{current} needs features {sorted(missing)} this data lacks: not comparable, champion kept",
                cfg.metric,
                value,
                None,
                current,
            )
        champion_value = score(cfg.metric, y_valid, predict(champion, x_valid))  # type: ignore[arg-type]
    return gate(cfg.metric, value, champion_value, current, cfg.promotion_margin)
