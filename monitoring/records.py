"""Where a monitoring run is recorded besides its files: an MLflow run and the Evidently workspace.

The MLflow run (experiment `monitoring.project`) holds the run's figures as metrics, its decision
chain as tags (`churn.monitor.*`, and `churn.retrain.*` linking the training run and the gate's
verdict) and its report and summary as artifacts. It is created with the client, not as the active
run, so that a retraining started by the run can start its own. The Evidently snapshot goes to the
workspace's project of the same name (`evidently ui --workspace ...`).
"""

from __future__ import annotations

from pathlib import Path

from evidently import Run
from mlflow import MlflowClient

from core.settings import Settings
from monitoring.current import Window
from monitoring.summary import MonitorSummary


def start_mlflow_run(
    settings: Settings, client: MlflowClient, run_id: str, mode: str, window: Window, version: str
) -> str:
    """Create the monitoring run (not an active run, so training can start its own).

    Args:
        settings: The profile (`monitoring.project` names the experiment).
        client: The MLflow client of the tracking server.
        run_id: The monitoring run's id (its start time), in the MLflow run's name.
        mode: serving or batch, as a tag and a parameter.
        window: The run's window, as parameters.
        version: The champion's registry version, as a parameter.

    Returns:
        The MLflow run's id.
    """
    name = settings.monitoring.project
    experiment = client.get_experiment_by_name(name)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(
            name, artifact_location=settings.mlflow_artifacts if settings.training.tracking_uri is None else None
        )
    )
    run = client.create_run(experiment_id, run_name=f"monitor-{run_id}", tags={"churn.monitor.mode": mode})
    for key, value in {
        "mode": mode,
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "champion_version": version,
    }.items():
        client.log_param(run.info.run_id, key, value)
    return str(run.info.run_id)


def finish_mlflow_run(client: MlflowClient, run: str, summary: MonitorSummary, html: Path, summary_json: Path) -> None:
    """Metrics, the decision chain as tags, the report files as artifacts; then end the run.

    Args:
        client: The MLflow client of the tracking server.
        run: The MLflow run's id (`start_mlflow_run`).
        summary: The monitoring run's summary.
        html: Its HTML report.
        summary_json: Its JSON summary.
    """
    metrics: dict[str, float] = {
        "current_rows": float(summary.current_rows),
        "drifted_share": summary.features.drifted_share,
        "drifted_columns": float(summary.features.drifted_columns),
    }
    if summary.prediction is not None:
        metrics["prediction_drift"] = summary.prediction.value
    if summary.performance is not None and summary.performance.roc_auc is not None:
        metrics["roc_auc"] = summary.performance.roc_auc
        if summary.performance.auc_drop is not None:
            metrics["auc_drop"] = summary.performance.auc_drop
    for key, value in metrics.items():
        client.log_metric(run, key, value)
    decision = summary.decision
    tags: dict[str, str] = {
        "churn.monitor.status": summary.status,
        "churn.monitor.decision": "retrain"
        if decision.retrain
        else ("cooldown" if decision.cooldown_until else "none"),
        "churn.monitor.reasons": "; ".join(decision.reasons)[:4900],
        "churn.monitor.summary": summary_json.name,
    }
    if summary.retraining is not None:
        r = summary.retraining
        tags |= {
            "churn.retrain.training_run_id": r.training_run_id or "",
            "churn.retrain.challenger_version": r.challenger_version or "",
            "churn.retrain.gate": "promoted" if r.promoted else "kept",
            "churn.retrain.gate_reason": r.gate_reason[:4900],
            "churn.retrain.champion_before": r.champion_before or "",
            "churn.retrain.champion_after": r.champion_after or "",
        }
    for key, text in tags.items():
        client.set_tag(run, key, text)
    client.log_artifact(run, str(html))
    client.log_artifact(run, str(summary_json))
    client.set_terminated(run)


def add_to_workspace(settings: Settings, snapshot: Run, run_id: str) -> None:
    """Add the run's Evidently snapshot to the workspace's project (`evidently ui --workspace ...`)."""
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(settings.path(settings.monitoring.evidently_workspace)))
    found = workspace.search_project(settings.monitoring.project)
    project = found[0] if found else workspace.create_project(settings.monitoring.project)
    workspace.add_run(project.id, snapshot, name=f"monitor-{run_id}")
