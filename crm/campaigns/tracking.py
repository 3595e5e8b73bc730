"""Campaign runs in MLflow: one run per campaign in the experiment `crm.campaigns.experiment`.

`churn score` creates the run with the record's figures (customers, groups, expected cost per
action) and the record as an artifact; `churn campaigns evaluate` adds the measured effects and
their figure to the same run. The run's id is kept in the record (`mlflow_run_id`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from core.settings import Settings

CAMPAIGN_TAG = "churn.campaign.id"


def experiment_id(settings: Settings, client: MlflowClient) -> str:
    """The campaigns experiment's id (created with the workspace's artifact root when missing)."""
    name = settings.crm.campaigns.experiment
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    artifacts = settings.mlflow_artifacts if settings.training.tracking_uri is None else None
    return str(client.create_experiment(name, artifact_location=artifacts))


def log_campaign(settings: Settings, record: Mapping[str, Any], files: list[Path]) -> str:
    """Create the campaign's MLflow run: parameters, per-action figures, the record as an artifact.

    Args:
        settings: The profile (tracking URI, experiment).
        record: The campaign record.
        files: Files to attach (the record, the alert list's record beside it, ...).

    Returns:
        The run's id.
    """
    client = MlflowClient(settings.mlflow_uri)
    run = client.create_run(
        experiment_id(settings, client),
        run_name=f"campaign-{record['campaign_id']}",
        tags={CAMPAIGN_TAG: str(record["campaign_id"])},
    )
    run_id = str(run.info.run_id)
    for key in ("campaign_id", "as_of", "window_end", "model_version", "seed", "rank_by", "horizon_days"):
        client.log_param(run_id, key, record[key])
    metrics = {key: float(record[key]) for key in ("customers", "treatment", "control", "expected_cost")}
    for entry in record["actions"]:
        for key in ("customers", "treatment", "control", "expected_cost"):
            metrics[f"{entry['action']}.{key}"] = float(entry[key])
    log_metrics(client, run_id, metrics)
    for path in files:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id)
    return run_id


def log_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, float]) -> None:
    """Log finite metrics (MLflow stores no NaN in some backends; a missing figure stays missing)."""
    for key, value in metrics.items():
        if value == value and abs(value) != float("inf"):
            client.log_metric(run_id, key, float(value))


def log_evaluation(
    settings: Settings, run_id: str, metrics: Mapping[str, float], files: list[Path], tags: Mapping[str, str]
) -> None:
    """Add a campaign's measured effects to its run: figures as metrics, tables and plots as artifacts."""
    client = MlflowClient(settings.mlflow_uri)
    log_metrics(client, run_id, metrics)
    for key, text in tags.items():
        client.set_tag(run_id, key, text[:4900])
    for path in files:
        client.log_artifact(run_id, str(path), artifact_path="evaluation")
