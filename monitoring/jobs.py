"""Monitoring runs: the champion's reference vs a window of current data, the policy, the retraining loop.

A run (`churn monitor`):

1. loads the champion, its calibration, and the reference sample stored with it (the newest
   labelled rows at training time, `model.bundle.reference_sample`);
2. takes the window's current data (`monitoring.current`): the prediction log (serving mode: what
   the service scored) or the feature snapshots observed in the window, fetched through Feast and
   scored by the champion (batch mode);
3. runs the Evidently drift report (`monitoring.drift`: features, and the churn-probability
   distribution);
4. scores the champion on the newest window whose labels have matured (`monitoring.performance`:
   the window moved back by the label horizon) and compares its ROC AUC with the champion's test AUC,
   in figures and in an Evidently performance report;
5. applies the drift policy and its cool-down (`monitoring.policy`);
6. on a "retrain" decision, calls the retrainer it was given (`churn.loop.retrain_champion`:
   fresh features, a challenger, the promotion gate; the serving hot reload picks up a new
   champion). Monitoring itself never imports training: the CLI layer wires the two;
7. joins the drift and performance reports into one Evidently snapshot, stamped with the
   window's end and tagged with the champion's version and the status (`monitoring.records`);
   writes it as `monitor-<run id>.html` and the summary as `.json` to the reports folder,
   refreshes `index.html` (`monitoring.index`), adds the snapshot to the Evidently workspace
   (whose project gets its dashboard), and records the run in MLflow (experiment
   `monitoring.project`, with tags linking it to the training run and the gate's decision).
   The summary and the index also carry the real-time path's event-to-feature lag over the window
   (`crm.freshness`: from the records `stream.freshness_log` holds, or "no streamed events").

With an explicit `now` (a backtest, `churn monitor --end DATE`), the run acts as of that time:
labels, performance and retraining (`training.as_of`) use only what was known then.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient

from core import names
from core.html import render
from core.io import write_atomic_text
from core.settings import Settings
from crm.freshness import freshness_of
from model.champion import NoChampionError, RegisteredModel
from model.champion import load_champion as load_registered_champion
from monitoring.current import Mode, Window, batch_rows, choose_mode, snapshot_keys
from monitoring.drift import drift_report
from monitoring.index import write_index
from monitoring.performance import matured_performance, performance_report
from monitoring.policy import decide, fired_rules, status_of
from monitoring.records import add_to_workspace, evidently_run, finish_mlflow_run, start_mlflow_run
from monitoring.summary import FeatureDrift, MonitorSummary, Retraining, read_summaries, summary_path

Retrainer = Callable[[str, dt.date | None], Retraining]
"""Retrains on a drift decision: (monitoring run id, as-of date or None) -> what happened."""


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
    """The champion's reference sample: its features and churn probabilities."""
    assert champion.bundle.reference is not None, "load_champion checks it"
    return champion.bundle.reference


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
    known = [c for c in champion.bundle.features if c in reference.columns]
    skip = settings.monitoring.tests.cumulative == "skip"
    untested = [c for c in known if skip and names.is_cumulative(c)]
    columns = [c for c in known if c not in untested]

    step("Evidently drift report")
    policy = settings.monitoring.policy
    if current.empty:
        drift_snapshot, result = None, None
        features = FeatureDrift(n_columns=0, drifted_columns=0, drifted_share=0.0, columns=[], untested=untested)
        prediction = None
    else:
        drift_snapshot, result = drift_report(
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
            untested=untested,
        )
        prediction = result.prediction

    step("performance on matured labels")
    matured = matured_performance(settings, champion, used, window)
    performance = matured.performance
    decision = decide(
        policy, features, prediction, performance, current_rows=len(current), window_end=window.end, history=history
    )
    fired = len(current) >= policy.min_rows and bool(fired_rules(policy, features, prediction, performance))
    status = status_of(features, prediction, decision, fired)

    client = MlflowClient(settings.mlflow_uri)
    mlflow_run = start_mlflow_run(settings, client, run_id, used, window, champion.version)
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
        freshness=freshness_of(settings.path(settings.stream.freshness_log), window.start, window.end),
    )
    step("writing the report, the summary, the index and the Evidently workspace")
    html = reports / html_name
    parts = [performance_report(matured, policy.auc_drop), drift_snapshot]
    snapshot = evidently_run([part for part in parts if part is not None], summary)
    if snapshot is not None:
        with tempfile.NamedTemporaryFile(dir=reports, suffix=".html.tmp", delete=False) as tmp:
            tmp_path = Path(tmp.name)
        snapshot.save_html(str(tmp_path))
        tmp_path.replace(html)
        add_to_workspace(settings, snapshot)
    else:
        write_atomic_text(_no_data_page(summary), html)
    summary_json = write_atomic_text(summary.model_dump_json(indent=2), summary_path(reports, run_id))
    index = write_index(reports)
    finish_mlflow_run(client, mlflow_run, summary, html, summary_json)
    return MonitorResult(summary, html, summary_json, index)


def _no_data_page(summary: MonitorSummary) -> str:
    """The HTML page of a run whose window held no current data."""
    return render("monitoring", "no_data.html", title="No current data", wide=False, summary=summary)
