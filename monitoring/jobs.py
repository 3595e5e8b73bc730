"""Monitoring runs: the champion's reference vs a window of current data, the policy, the retraining loop.

A run (`churn monitor`):

1. loads the champion, its calibration, and the training sample stored with it (the reference);
2. takes the window's current data: the prediction log (serving mode: what the service scored)
   or the feature snapshots observed in the window, fetched through Feast and scored by the
   champion (batch mode);
3. runs the Evidently drift report (features, and the churn-probability distribution);
4. scores the champion on the newest window whose labels have matured (the window moved back by
   the label horizon) and compares its ROC AUC with the champion's test AUC;
5. applies the drift policy and its cool-down (`monitoring.policy`);
6. on a "retrain" decision, calls the retrainer it was given (`churn.loop.retrain_champion`:
   fresh features, a challenger, the promotion gate; the serving hot reload picks up a new
   champion). Monitoring itself never imports training: the CLI layer wires the two;
7. writes `monitor-<run id>.html` and `.json` to the reports folder, refreshes `index.html`, adds
   the snapshot to the Evidently workspace, and records the run in MLflow (experiment
   `monitoring.project`) with tags linking it to the training run and the gate's decision.

With an explicit `now` (a backtest, `churn monitor --end DATE`), the run acts as of that time:
labels, performance and retraining (`training.as_of`) use only what was known then.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from core import names
from core.io import write_atomic_text
from core.settings import Settings
from features.labels import compute_labels, known_at
from features.pipeline import FeaturePaths, historical_features, open_store
from model.champion import NoChampionError, RegisteredModel
from model.champion import load_champion as load_registered_champion
from monitoring.drift import drift_report
from monitoring.policy import decide, fired_rules, status_of
from monitoring.summary import (
    FeatureDrift,
    MonitorSummary,
    Performance,
    Retraining,
    read_summaries,
    summary_path,
)

log = logging.getLogger(__name__)

Mode = Literal["auto", "serving", "batch"]
Retrainer = Callable[[str, dt.date | None], Retraining]
"""Retrains on a drift decision: (monitoring run id, as-of date or None) -> what happened."""


@dataclass(frozen=True)
class Window:
    """A half-open time window [start, end), UTC."""

    start: dt.datetime
    end: dt.datetime

    def shifted(self, delta: dt.timedelta) -> Window:
        """The same window moved by `delta`."""
        return Window(self.start + delta, self.end + delta)

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M}"


def load_champion(settings: Settings) -> RegisteredModel:
    """The champion with its reference sample (monitoring compares against it).

    Raises:
        NoChampionError: There is no champion, or it has no reference sample; the message says what to run.
    """
    champion = load_registered_champion(settings.mlflow_uri, settings.training.model_name)
    if champion.bundle.reference is None:
        raise NoChampionError(
            f"champion v{champion.version} has no reference sample to monitor against: retrain with `churn train`"
        )
    return champion


def reference_of(champion: RegisteredModel) -> pd.DataFrame:
    """The champion's training sample: its features and churn probabilities."""
    assert champion.bundle.reference is not None, "load_champion checks it"
    return champion.bundle.reference


# ---------------------------------------------------------------- current data


def serving_rows(settings: Settings, window: Window) -> pd.DataFrame:
    """The prediction log's rows logged in `window`: customer_id, time, features, churn_probability."""
    from core.prediction_log import LOGGED_AT, read_prediction_log

    frame = read_prediction_log(settings.path(settings.serving.prediction_log_dir), window.start, window.end)
    return frame.rename(columns={LOGGED_AT: names.EVENT_TIMESTAMP})


def snapshot_keys(settings: Settings, window: Window) -> pd.DataFrame:
    """customer_id and event_timestamp of the feature snapshots observed in `window`."""
    paths = FeaturePaths.of(settings)
    if not paths.snapshots.exists():
        raise FileNotFoundError(f"{paths.snapshots} does not exist: run `churn features build` first")
    keys = pd.read_parquet(
        paths.snapshots,
        columns=[names.CUSTOMER_ID, names.EVENT_TIMESTAMP],
        filters=[
            (names.EVENT_TIMESTAMP, ">=", pd.Timestamp(window.start)),
            (names.EVENT_TIMESTAMP, "<", pd.Timestamp(window.end)),
        ],
    )
    return keys.reset_index(drop=True)


def batch_rows(settings: Settings, champion: RegisteredModel, keys: pd.DataFrame) -> pd.DataFrame:
    """Feature rows of snapshot keys through Feast (as training saw them), scored by the champion."""
    if keys.empty:
        return keys.assign(**{names.PREDICTION: pd.Series(dtype=float)})
    frame = historical_features(open_store(settings), keys, settings.training.feature_service)
    frame[names.PREDICTION] = champion.bundle.probabilities(frame)
    return frame


def choose_mode(settings: Settings, mode: Mode, window: Window) -> tuple[Literal["serving", "batch"], pd.DataFrame]:
    """The mode to use and, for serving mode, its rows (auto: serving when the log has rows in the window)."""
    if mode == "batch":
        return "batch", pd.DataFrame()
    rows = serving_rows(settings, window)
    if mode == "serving" or not rows.empty:
        return "serving", rows
    return "batch", pd.DataFrame()


# ---------------------------------------------------------------- performance on matured labels


def matured_labels(settings: Settings, keys: pd.DataFrame, now: dt.datetime) -> pd.DataFrame:
    """Labels of (customer_id, event_timestamp) keys that are known at `now`.

    A key's observation date is the day its event_timestamp falls on (a prediction at 14:00
    predicts the horizon from that day). Keys whose horizon has not passed are dropped.
    """
    if keys.empty:
        return pd.DataFrame(columns=[names.CUSTOMER_ID, names.EVENT_TIMESTAMP, names.LABEL])
    paths = FeaturePaths.of(settings)
    day_keys = keys[[names.CUSTOMER_ID]].assign(
        **{names.EVENT_TIMESTAMP: pd.to_datetime(keys[names.EVENT_TIMESTAMP], utc=True).dt.floor("D")}
    )
    day_keys = day_keys.drop_duplicates().reset_index(drop=True)
    events = pd.read_parquet(paths.clean_events, columns=[names.CUSTOMER_ID, names.EVENT_TIMESTAMP, names.EVENT_TYPE])
    last_day = pd.to_datetime(events[names.EVENT_TIMESTAMP], utc=True).max().date()
    labels = compute_labels(
        day_keys,
        pd.read_parquet(paths.clean_customers),
        events,
        kind=settings.labels.kind,
        horizon_days=settings.labels.horizon_days,
        last_event_day=last_day,
        activity_event_types=settings.labels.activity_event_types,
    )
    # known_at takes a day: a label is known on the day its horizon ends, so the day of `now`.
    return known_at(labels, now.date(), settings.labels.horizon_days)


def performance_of(
    scored: pd.DataFrame, labels: pd.DataFrame, reference_auc: float | None, window: Window
) -> Performance | None:
    """The champion's performance on scored rows that have a matured label (None when none has)."""
    if scored.empty or labels.empty:
        return None
    day = pd.to_datetime(scored[names.EVENT_TIMESTAMP], utc=True).dt.floor("D")
    joined = scored.assign(_day=day).merge(
        labels.rename(columns={names.EVENT_TIMESTAMP: "_day"}), on=[names.CUSTOMER_ID, "_day"], how="inner"
    )
    if joined.empty:
        return None
    y = joined[names.LABEL].to_numpy()
    p = np.clip(joined[names.PREDICTION].to_numpy(dtype=float), 1e-6, 1 - 1e-6)
    both = 0 < y.sum() < len(y)
    auc = float(roc_auc_score(y, p)) if both else None
    return Performance(
        window_start=window.start,
        window_end=window.end,
        labelled_rows=len(joined),
        positives=int(y.sum()),
        roc_auc=auc,
        pr_auc=float(average_precision_score(y, p)) if both else None,
        log_loss=float(log_loss(y, p, labels=[0, 1])),
        reference_roc_auc=reference_auc,
        auc_drop=(reference_auc - auc) if auc is not None and reference_auc is not None else None,
    )


# ---------------------------------------------------------------- the run


@dataclass(frozen=True)
class MonitorResult:
    """A finished monitoring run: its summary and where its files are."""

    summary: MonitorSummary
    html: Path
    summary_json: Path
    index: Path


def run_monitor(
    settings: Settings,
    window: Window,
    *,
    mode: Mode | None = None,
    retrainer: Retrainer | None = None,
    backtest: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> MonitorResult:
    """One monitoring run over `window` (see the module docstring).

    Args:
        settings: The profile.
        window: The current data's window; its end is the run's clock (cool-down, matured labels).
        mode: serving, batch or auto; None takes `monitoring.mode`.
        retrainer: Called on a "retrain" decision with the MLflow monitoring run's id and the
            `training.as_of` date (None unless backtesting); builds features, trains a challenger
            and runs the gate (`churn.loop.retrain_champion`). None: decide only.
        backtest: Act as of `window.end`: retraining uses only labels known then (`training.as_of`).
        on_step: Called with a short description as each step starts (progress display).

    Raises:
        NoChampionError: There is no champion to monitor.
        ValueError: The window is empty or backwards.
    """
    if window.end <= window.start:
        raise ValueError(f"window {window}: its end must be after its start")
    step = on_step or (lambda _text: None)
    created = dt.datetime.now(dt.UTC)
    run_id = created.strftime("%Y%m%dT%H%M%S") + f"{created.microsecond // 1000:03d}Z"
    reports = settings.path(settings.monitoring.reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    history = read_summaries(reports)

    step("loading the champion and its reference sample")
    champion = load_champion(settings)
    used, current = choose_mode(settings, mode or settings.monitoring.mode, window)
    step(f"current data ({used} mode, {window})")
    if used == "batch":
        current = batch_rows(settings, champion, snapshot_keys(settings, window))
    reference = reference_of(champion)
    columns = [c for c in champion.bundle.features if c in reference.columns]

    step("Evidently drift report")
    policy = settings.monitoring.policy
    if current.empty:
        snapshot, result = None, None
        features = FeatureDrift(n_columns=0, drifted_columns=0, drifted_share=0.0, columns=[])
        prediction = None
    else:
        snapshot, result = drift_report(
            reference,
            current,
            columns=columns,
            prediction_column=names.PREDICTION,
            methods=settings.monitoring.tests,
            drift_share=policy.drifted_share,
        )
        features = FeatureDrift(
            n_columns=result.n_columns,
            drifted_columns=result.drifted_columns,
            drifted_share=result.drifted_share,
            columns=list(result.columns),
        )
        prediction = result.prediction

    step("performance on matured labels")
    performance = _performance(settings, champion, used, window, current)
    decision = decide(
        policy, features, prediction, performance, current_rows=len(current), window_end=window.end, history=history
    )
    fired = len(current) >= policy.min_rows and bool(fired_rules(policy, features, prediction, performance))
    status = status_of(features, prediction, decision, fired)

    client = MlflowClient(settings.mlflow_uri)
    mlflow_run = _start_mlflow_run(settings, client, run_id, used, window, champion.version)
    retraining = None
    if retrainer is not None and decision.retrain:
        step("retraining: fresh features, a challenger, the promotion gate")
        retraining = retrainer(mlflow_run, window.end.date() if backtest else None)

    html_name = f"monitor-{run_id}.html"
    summary = MonitorSummary(
        run_id=run_id,
        created=created,
        mode=used,
        window_start=window.start,
        window_end=window.end,
        model_version=champion.version,
        reference_rows=len(reference),
        current_rows=len(current),
        status=status,
        features=features,
        prediction=prediction,
        performance=performance,
        decision=decision,
        retraining=retraining,
        mlflow_run_id=mlflow_run,
        html=html_name,
    )
    step("writing the report, the summary, the index and the Evidently workspace")
    html = reports / html_name
    if snapshot is not None:
        with tempfile.NamedTemporaryFile(dir=reports, suffix=".html.tmp", delete=False) as tmp:
            tmp_path = Path(tmp.name)
        snapshot.save_html(str(tmp_path))
        tmp_path.replace(html)
        add_to_workspace(settings, snapshot, run_id)
    else:
        write_atomic_text(_empty_report(summary), html)
    summary_json = write_atomic_text(summary.model_dump_json(indent=2), summary_path(reports, run_id))
    from monitoring.index import write_index

    index = write_index(reports)
    _finish_mlflow_run(client, mlflow_run, summary, html, summary_json)
    return MonitorResult(summary, html, summary_json, index)


def _performance(
    settings: Settings, champion: RegisteredModel, mode: str, window: Window, current: pd.DataFrame
) -> Performance | None:
    """Performance on the window moved back by the label horizon, with labels known at the window's end."""
    horizon = dt.timedelta(days=settings.labels.horizon_days)
    matured = window.shifted(-horizon)
    if mode == "serving":
        scored = serving_rows(settings, matured)
    else:
        scored = batch_rows(settings, champion, snapshot_keys(settings, matured))
    if scored.empty:
        return None
    labels = matured_labels(settings, scored[[names.CUSTOMER_ID, names.EVENT_TIMESTAMP]], window.end)
    return performance_of(scored, labels, champion.metrics.get("test_roc_auc"), matured)


def _empty_report(summary: MonitorSummary) -> str:
    """The HTML page of a run whose window held no current data."""
    return (
        "<!doctype html><meta charset='utf-8'><title>No data</title>"
        f"<p>No current rows between {summary.window_start:%Y-%m-%d %H:%M} and {summary.window_end:%Y-%m-%d %H:%M} "
        f"({summary.mode} mode): nothing to compare.</p>"
    )


def add_to_workspace(settings: Settings, snapshot: Any, run_id: str) -> None:  # noqa: ANN401
    """Add the run's Evidently snapshot to the workspace's project (`evidently ui --workspace ...`)."""
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(settings.path(settings.monitoring.evidently_workspace)))
    found = workspace.search_project(settings.monitoring.project)
    project = found[0] if found else workspace.create_project(settings.monitoring.project)
    workspace.add_run(project.id, snapshot, name=f"monitor-{run_id}")


# ---------------------------------------------------------------- MLflow records and retraining


def _start_mlflow_run(
    settings: Settings, client: MlflowClient, run_id: str, mode: str, window: Window, version: str
) -> str:
    """Create the monitoring run (not an active run, so training can start its own)."""
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


def _finish_mlflow_run(client: MlflowClient, run: str, summary: MonitorSummary, html: Path, summary_json: Path) -> None:
    """Metrics, the decision chain as tags, the report files as artifacts; then end the run."""
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


def history(settings: Settings) -> list[MonitorSummary]:
    """Every earlier run's summary, oldest first."""
    return read_summaries(settings.path(settings.monitoring.reports_dir))
