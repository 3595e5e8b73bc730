"""Where a monitoring run is recorded besides its files: an MLflow run and the Evidently workspace.

The MLflow run (experiment `monitoring.project`) holds the run's figures as metrics, its decision
chain as tags (`churn.monitor.*`, and `churn.retrain.*` linking the training run and the gate's
verdict) and its report and summary as artifacts. It is created with the client, not as the active
run, so that a retraining started by the run can start its own.

The Evidently snapshot (`evidently_run`) is the run's reports as one: the drift report and, when
labels have matured, the performance report (`monitoring.performance`), stamped with the window's
end (not the time the run happened to execute, so a backtest lands where its data belongs) and
tagged with the champion's version and the run's status. It goes to the workspace's project of the
same name (`evidently ui --workspace ...`), whose dashboard (`DASHBOARD_TAB`) plots the share of
drifted features, the prediction drift and the matured labels' ROC AUC over the snapshots.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

from evidently import Run
from evidently.core.report import Snapshot
from evidently.core.serialization import ReportModel, SnapshotModel
from evidently.sdk.models import DashboardModel, DashboardPanelPlot, DashboardTabModel, PanelMetric
from evidently.sdk.panels import counter_panel, line_plot_panel
from mlflow import MlflowClient

from core import names
from core.settings import Settings
from monitoring.current import Window
from monitoring.summary import MonitorSummary

if TYPE_CHECKING:
    from evidently.ui.workspace import Workspace

DASHBOARD_TAB = "Churn monitoring"
"""The dashboard tab of the Evidently project that monitoring creates (once; panels added by hand stay)."""


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


def snapshot_tags(summary: MonitorSummary) -> list[str]:
    """The tags of a run's Evidently snapshot: the champion's version and the run's status."""
    return [f"model-v{summary.model_version}", f"status-{summary.status}"]


def evidently_run(parts: Sequence[Run], summary: MonitorSummary) -> Run | None:
    """The run's Evidently reports as one snapshot, stamped and tagged (see the module docstring).

    Args:
        parts: Evidently snapshots in the order the report shows them (drift, then performance).
        summary: The run: its window's end is the timestamp (UTC, without a zone, as Evidently
            keeps its own), its run id the name, its version and status the tags.

    Returns:
        None when there is no part.
    """
    if not parts:
        return None
    models = [part.to_snapshot_model() for part in parts]
    metadata: dict[str, str] = {
        "model_version": summary.model_version,
        "status": summary.status,
        "mode": summary.mode,
        "window_start": summary.window_start.isoformat(),
        "window_end": summary.window_end.isoformat(),
    }
    merged = SnapshotModel(
        report=ReportModel(items=[]),
        name=f"monitor-{summary.run_id}",
        timestamp=summary.window_end.astimezone(dt.UTC).replace(tzinfo=None),
        metadata=metadata,
        tags=snapshot_tags(summary),
        metric_results={key: value for model in models for key, value in model.metric_results.items()},
        top_level_metrics=[key for model in models for key in model.top_level_metrics],
        widgets=[widget for model in models for widget in model.widgets],
        tests_widgets=[widget for model in models for widget in model.tests_widgets],
    )
    return Snapshot.load_model(merged)


def dashboard_panels() -> list[DashboardPanelPlot]:
    """The panels of the monitoring tab: drift and performance over the snapshots' windows."""
    drifted = "FastDriftedColumnsCount"
    count = PanelMetric(legend="drifted features", metric=drifted, metric_labels={"value_type": "count"})
    share = PanelMetric(legend="drifted share", metric=drifted, metric_labels={"value_type": "share"})
    prediction = PanelMetric(
        legend="churn probability", metric="FastValueDrift", metric_labels={"column": names.PREDICTION}
    )
    roc_auc, pr_auc = PanelMetric(legend="ROC AUC", metric="RocAuc"), PanelMetric(legend="PR AUC", metric="PrAuc")
    return [
        counter_panel("Drifted features, last run", [count], size="half"),
        counter_panel("ROC AUC on matured labels, last run", [roc_auc], size="half"),
        line_plot_panel(
            "Share of drifted features",
            [share],
            description="per window; monitoring.policy.drifted_share of them makes a retrain decision",
        ),
        line_plot_panel(
            "Prediction drift",
            [prediction],
            description="distance of the window's churn probabilities from the reference's (monitoring.tests)",
        ),
        line_plot_panel(
            "ROC AUC on matured labels",
            [roc_auc, pr_auc],
            description="the window one label horizon earlier, scored by the champion; runs whose labels have matured",
        ),
    ]


def ensure_dashboard(workspace: Workspace, project_id: UUID) -> None:
    """Give the project the monitoring tab and its panels unless it has that tab already."""
    dashboard: DashboardModel = workspace.get_dashboard(project_id)
    if any(tab.title == DASHBOARD_TAB for tab in dashboard.tabs):
        return
    panels = dashboard_panels()
    dashboard.panels.extend(panels)
    dashboard.tabs.append(DashboardTabModel(title=DASHBOARD_TAB, panels=[panel.id for panel in panels]))
    workspace.save_dashboard(project_id, dashboard)


def add_to_workspace(settings: Settings, snapshot: Run) -> None:
    """Add the run's Evidently snapshot (`evidently_run`) to the workspace's project, with its dashboard."""
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(settings.path(settings.monitoring.evidently_workspace)))
    found = workspace.search_project(settings.monitoring.project)
    project = found[0] if found else workspace.create_project(settings.monitoring.project)
    ensure_dashboard(workspace, project.id)
    workspace.add_run(project.id, snapshot)
