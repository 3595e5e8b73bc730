"""Monitoring jobs: fetch the champion's reference sample, compare current data, write reports."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient

from churn import names
from churn.settings import Settings
from features.io import write_atomic_text
from features.matrix import predict
from features.pipeline import latest_features
from monitoring.drift import DriftSummary, drift_report


@dataclass(frozen=True)
class MonitorResult:
    """Where a monitoring run wrote its outputs, and its verdict."""

    html: Path
    summary_json: Path
    summary: DriftSummary
    model_version: str
    current_rows: int


def champion_reference(settings: Settings) -> tuple[str, pd.DataFrame]:
    """The champion's version and the training sample stored with it."""
    mlflow.set_tracking_uri(settings.mlflow_uri)
    client = MlflowClient(settings.mlflow_uri)
    version = client.get_model_version_by_alias(settings.training.model_name, names.CHAMPION_ALIAS)
    local = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path=names.REFERENCE_ARTIFACT)
    return str(version.version), pd.read_parquet(local)


def score_with_champion(settings: Settings, version: str, frame: pd.DataFrame) -> pd.Series:
    """The champion's churn probabilities for feature rows (the prediction-drift column)."""
    booster = mlflow.xgboost.load_model(f"models:/{settings.training.model_name}/{version}")
    return pd.Series(predict(booster, frame), index=frame.index)


def monitor_batch(settings: Settings, now: dt.datetime | None = None) -> MonitorResult:
    """Drift of the newest feature snapshot and its scores against the champion's training sample.

    Writes `reports/drift-<time>.html` and `reports/drift-<time>.json` in the workspace.
    """
    version, reference = champion_reference(settings)
    current = latest_features(settings)
    current[names.PREDICTION] = score_with_champion(settings, version, current)
    snapshot, summary = drift_report(reference, current, settings.monitoring.drift_share)
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    out = settings.path(settings.monitoring.reports_dir)
    out.mkdir(parents=True, exist_ok=True)
    html, summary_json = out / f"drift-{stamp}.html", out / f"drift-{stamp}.json"
    tmp_html = html.with_suffix(".html.tmp")
    snapshot.save_html(str(tmp_html))
    tmp_html.replace(html)
    payload = {
        "created": stamp,
        "model_version": version,
        "status": summary.status,
        "current_rows": len(current),
        **asdict(summary),
    }
    write_atomic_text(json.dumps(payload, indent=2), summary_json)
    return MonitorResult(html, summary_json, summary, version, len(current))
