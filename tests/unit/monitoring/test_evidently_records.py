"""The run's Evidently snapshot: performance beside drift in one report, and the workspace's dashboard.

Real Evidently reports on small seeded data, written to a real local workspace and read back the
way `evidently ui` reads it: the project's dashboard, each snapshot's timestamp and tags, and the
series each panel plots (`InMemoryDataStorage.get_data_series`, what the UI's data-series endpoint
answers for the panel's metrics).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from evidently import Run
from evidently.ui.service.base import SeriesFilter
from evidently.ui.service.storage.local.base import InMemoryDataStorage
from evidently.ui.workspace import Workspace
from sklearn.metrics import log_loss
from test_monitoring_index import START, column, summary

from core import names
from core.monitoring_settings import DriftTests
from core.settings import Settings, parse_settings
from monitoring.current import Window
from monitoring.drift import drift_report, read_columns
from monitoring.drift_methods import choose_tests
from monitoring.performance import Matured, performance_of, performance_report
from monitoring.records import DASHBOARD_TAB, add_to_workspace, evidently_run, snapshot_tags
from monitoring.summary import MonitorSummary, Status

TEST_AUC, AUC_DROP = 0.8, 0.03
HORIZON = dt.timedelta(days=30)


def _features(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tenure": rng.normal(24, 6, n) + shift * 6,
            "spend": rng.lognormal(3, 0.5, n),
            "plan": rng.choice(["basic", "plus", "pro"], n).astype(object),
            names.PREDICTION: rng.beta(2, 8 - 4 * shift, n),
        }
    )


def _matured(rng: np.random.Generator, window: Window, separation: float, n: int = 1500) -> Matured:
    """Labelled rows of the window one horizon before `window`; `separation` sets how well scores rank."""
    label = (rng.random(n) < 0.1).astype(int)
    probability = 1 / (1 + np.exp(-(rng.normal(-2.2, 1, n) + separation * label)))
    rows = pd.DataFrame({names.LABEL: label, names.PREDICTION: probability})
    earlier = window.shifted(-HORIZON)
    return Matured(earlier, window.end, rows, performance_of(rows, TEST_AUC, earlier))


def _run(rng: np.random.Generator, day: int, shift: float, separation: float | None, version: str) -> tuple[Run, Any]:
    """A run's combined snapshot and its summary: drift of a week's data (shifted by `shift` sd), performance."""
    reference, current = _features(rng, 3000, 0.0), _features(rng, 800, shift)
    drift, result = drift_report(reference, current, prediction_column=names.PREDICTION)
    status: Status = "drift" if result.prediction is not None and result.prediction.drifted else result.status
    window_end = START + dt.timedelta(days=day)
    matured = _matured(rng, Window(window_end - dt.timedelta(days=7), window_end), separation or 0.0)
    run_summary = summary(day, status, list(result.columns), prediction=result.prediction, model_version=version)
    run_summary = run_summary.model_copy(update={"performance": matured.performance if separation else None})
    parts = [performance_report(matured, AUC_DROP) if separation else None, drift]
    snapshot = evidently_run([p for p in parts if p is not None], run_summary)
    assert snapshot is not None
    return snapshot, run_summary


def _values(snapshot: Run) -> dict[str, float]:
    """Metric type (without Evidently's prefix) -> value, for the single-valued metrics of a snapshot."""
    out = {}
    for metric in snapshot.dict()["metrics"]:
        if isinstance(metric.get("value"), int | float):
            out[metric["config"]["type"].rsplit(":", 1)[-1]] = float(metric["value"])
    return out


def test_the_report_holds_the_matured_performance_first_then_the_drift(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    snapshot, run = _run(rng, 60, shift=0.5, separation=1.0, version="4")
    perf = run.performance
    assert perf is not None and perf.roc_auc is not None and perf.pr_auc is not None
    values = _values(snapshot)
    # The report's figures are the summary's: Evidently's RocAuc and LogLoss, the adapter's PrAuc and heading.
    assert values["MaturedLabels"] == perf.labelled_rows
    assert values["RocAuc"] == pytest.approx(perf.roc_auc)
    assert values["PrAuc"] == pytest.approx(perf.pr_auc)
    assert values["LogLoss"] == pytest.approx(perf.log_loss, rel=1e-3)
    # The test on ROC AUC is the policy's rule: at least the champion's test AUC less policy.auc_drop.
    (test,) = snapshot.dict()["tests"]
    assert test["test_config"]["threshold"] == pytest.approx(TEST_AUC - AUC_DROP)
    assert str(test["status"]).endswith("SUCCESS" if perf.roc_auc >= TEST_AUC - AUC_DROP else "FAIL")
    assert f"{TEST_AUC:.3f}" in test["description"] and str(perf.window_start.date()) in test["description"]
    # The drift verdicts read back from the combined snapshot as from the drift report alone.
    tests = choose_tests(_features(rng, 10, 0.0), ["tenure", "spend", "plan"], DriftTests())
    assert read_columns(snapshot.dict(), tests) == run.features.columns
    html = tmp_path / "report.html"
    snapshot.save_html(str(html))
    page = html.read_text()
    assert page.index("Performance on matured labels") < page.index("Feature drift")
    assert "PR AUC (average precision)" in page and "ROC Curve" in page


def test_no_performance_part_without_both_classes() -> None:
    rng = np.random.default_rng(4)
    window = Window(START, START + dt.timedelta(days=7))
    matured = _matured(rng, window, 1.0)
    one_class = matured.rows.assign(**{names.LABEL: 0})
    assert performance_report(Matured(matured.window, window.end, one_class, None), AUC_DROP) is None
    single = performance_of(one_class, TEST_AUC, matured.window)
    assert single is not None and single.roc_auc is None
    assert performance_report(Matured(matured.window, window.end, one_class, single), AUC_DROP) is None
    assert single.log_loss == pytest.approx(
        log_loss(one_class[names.LABEL], one_class[names.PREDICTION], labels=[0, 1])
    )


@pytest.fixture
def workspace_settings(tmp_path: Path) -> Settings:
    return parse_settings({"workspace": str(tmp_path / "ws")}, source="test", env={})


def test_the_workspace_project_shows_a_dashboard_of_the_runs(workspace_settings: Settings) -> None:
    rng = np.random.default_rng(5)
    # Added out of order, as a backtest after live runs would: the dashboard orders by window end.
    runs = [
        _run(rng, 74, shift=0.6, separation=0.4, version="5"),
        _run(rng, 60, shift=0.0, separation=None, version="4"),
        _run(rng, 67, shift=0.3, separation=1.2, version="4"),
    ]
    for snapshot, _ in runs:
        add_to_workspace(workspace_settings, snapshot)

    path = str(workspace_settings.path(workspace_settings.monitoring.evidently_workspace))
    workspace = Workspace(path)
    (project,) = workspace.search_project(workspace_settings.monitoring.project)
    dashboard = workspace.get_dashboard(project.id)
    (tab,) = [t for t in dashboard.tabs if t.title == DASHBOARD_TAB]
    panels = {p.id: p for p in dashboard.panels}
    assert [panels[i].title for i in tab.panels] == [
        "Drifted features, last run",
        "ROC AUC on matured labels, last run",
        "Share of drifted features",
        "Prediction drift",
        "ROC AUC on matured labels",
    ]

    stored = [workspace.get_run(project.id, i) for i in workspace.list_runs(project.id)]
    by_time = sorted((s for s in stored if s is not None), key=lambda s: s.timestamp)
    ordered = sorted((r for _, r in runs), key=lambda r: r.window_end)
    assert [s.timestamp for s in by_time] == [r.window_end.replace(tzinfo=None) for r in ordered]
    assert [s.tags for s in by_time] == [snapshot_tags(r) for r in ordered]
    assert [s.name for s in by_time] == [f"monitor-{r.run_id}" for r in ordered]
    assert {s.metadata["status"] for s in by_time} == {r.status for r in ordered}

    def plotted(title: str) -> tuple[list[dt.datetime], list[list[float | None]]]:
        """The window ends the panel plots, and each of its series, one value per window (what the UI draws)."""
        (panel,) = [p for p in dashboard.panels if p.title == title]
        filters = [
            SeriesFilter(tags=v.tags, metadata=v.metadata, metric=v.metric, metric_labels=v.metric_labels)
            for v in panel.values
        ]
        answer = asyncio.run(InMemoryDataStorage(path).get_data_series(project.id, filters, None, None))
        return [s.timestamp for s in answer.sources], [
            s.values for s in sorted(answer.series, key=lambda s: s.filter_index)
        ]

    ends = [r.window_end.replace(tzinfo=None) for r in ordered]
    assert plotted("Share of drifted features") == (ends, [[r.features.drifted_share for r in ordered]])
    assert plotted("Drifted features, last run") == (ends, [[float(r.features.drifted_columns) for r in ordered]])
    predictions = [r.prediction.value if r.prediction else None for r in ordered]
    assert plotted("Prediction drift") == (ends, [pytest.approx(predictions)])
    # The window of day 60 had no matured labels: the performance series start at the next one.
    labelled = [r for r in ordered if r.performance]
    auc = [r.performance.roc_auc for r in labelled if r.performance]
    pr = [r.performance.pr_auc for r in labelled if r.performance]
    assert len(labelled) == 2
    assert plotted("ROC AUC on matured labels") == (ends[1:], [pytest.approx(auc), pytest.approx(pr)])

    # A second run adds its snapshot but not a second dashboard tab.
    add_to_workspace(workspace_settings, _run(rng, 81, shift=0.0, separation=0.8, version="5")[0])
    again = Workspace(path)
    assert [t.title for t in again.get_dashboard(project.id).tabs].count(DASHBOARD_TAB) == 1
    assert len(again.list_runs(project.id)) == 4


def test_snapshot_tags_name_the_model_version_and_the_status() -> None:
    run: MonitorSummary = summary(7, "warning", [column("tenure", 0.2)], model_version="12")
    assert snapshot_tags(run) == ["model-v12", "status-warning"]
