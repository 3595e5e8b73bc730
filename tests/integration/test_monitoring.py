"""The drift scenario, end to end on real components: generated data with and without drift,
Feast, a champion in MLflow (SQLite), Evidently reports, the policy, retraining and the gate.

Two small workspaces share seed, size and dates; one has the generator's drift from day
`DRIFT_AT`. Each trains a champion as of day `AS_OF` (before the drift) and is monitored over
the same weekly windows, each run acting as of its window's end (`monitoring.backtest`).
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from mlflow import MlflowClient
from monitoring_fixtures import DRIFT_AT, START, WEEK, build, day, scenario_settings

from churn.loop import MONITOR_TAG, retrain_champion, retrainer_for
from core import names
from core.settings import Settings
from monitoring.backtest import backtest, detection_figures
from monitoring.current import Window, batch_rows, snapshot_keys
from monitoring.jobs import MonitorResult, load_champion, run_monitor
from monitoring.summary import read_summaries
from serving.prediction_log import PredictionLog

# Window ends: three before the drift starts, three from two weeks after it.
CLEAN_ENDS = (224, 231, 238)
DRIFTED_ENDS = (259, 273, 287)


def monitored(settings: Settings) -> list[MonitorResult]:
    ends = [day(d) for d in (*CLEAN_ENDS, *DRIFTED_ENDS)]
    return backtest(settings, [Window(e - WEEK, e) for e in ends])


@pytest.fixture(scope="module")
def drifted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, list[MonitorResult]]:
    settings = build(tmp_path_factory.mktemp("drifted"), drift=True)
    return settings, monitored(settings)


@pytest.fixture(scope="module")
def steady(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, list[MonitorResult]]:
    settings = build(tmp_path_factory.mktemp("steady"), drift=False)
    return settings, monitored(settings)


def statuses(results: list[MonitorResult]) -> dict[int, str]:
    return {(r.summary.window_end - START).days: r.summary.status for r in results}


def test_drift_is_flagged_after_it_starts_and_not_before(drifted: tuple[Settings, list[MonitorResult]]) -> None:
    _, results = drifted
    seen = statuses(results)
    assert all(seen[d] != "drift" for d in CLEAN_ENDS), seen
    assert all(seen[d] == "drift" for d in DRIFTED_ENDS), seen
    figures = detection_figures([r.summary for r in results], day(DRIFT_AT))
    assert figures.false_alarm_rate == 0
    assert figures.delay_days is not None and figures.delay_days <= DRIFTED_ENDS[0] - DRIFT_AT
    # The drift is in behaviour the generator changed: baskets and the event mix.
    drifted_columns = {c.column for c in results[-1].summary.features.columns if c.drifted}
    assert drifted_columns & {"purchases_avg_order_value_30d", "engagement_clicks_30d", "engagement_visits_30d"}


def test_no_drift_raises_no_alarm_over_the_same_windows(steady: tuple[Settings, list[MonitorResult]]) -> None:
    _, results = steady
    seen = statuses(results)
    assert all(s != "drift" for s in seen.values()), seen
    assert not any(r.summary.decision.retrain for r in results)
    assert detection_figures([r.summary for r in results], None).false_alarm_rate == 0


def test_every_run_leaves_a_report_a_summary_an_index_entry_and_an_evidently_snapshot(
    drifted: tuple[Settings, list[MonitorResult]],
) -> None:
    settings, results = drifted
    reports = settings.path(settings.monitoring.reports_dir)
    summaries = read_summaries(reports)
    assert [s.run_id for s in summaries] == [r.summary.run_id for r in results]
    index = (reports / "index.html").read_text()
    for r in results:
        assert r.html.stat().st_size > 10_000, "an Evidently report, not an empty page"
        assert json.loads(r.summary_json.read_text())["status"] == r.summary.status
        assert r.html.name in index
        assert r.summary.mode == "batch"
        assert r.summary.current_rows > 300
        assert r.summary.features.n_columns > 30
        assert r.summary.prediction is not None
    # Labels mature 30 days after a window: the later windows get the champion's performance.
    assert results[-1].summary.performance is not None
    assert results[-1].summary.performance.labelled_rows > 300

    from evidently.core.report import Snapshot
    from evidently.ui.workspace import Workspace

    from monitoring.records import DASHBOARD_TAB, snapshot_tags

    workspace = Workspace(str(settings.path(settings.monitoring.evidently_workspace)))
    (project,) = workspace.search_project(settings.monitoring.project)
    assert [tab.title for tab in workspace.get_dashboard(project.id).tabs] == [DASHBOARD_TAB]
    stored = [workspace.get_run(project.id, snapshot_id) for snapshot_id in workspace.list_runs(project.id)]
    snapshots = sorted((s for s in stored if s is not None), key=lambda s: s.timestamp)
    runs_by_end = sorted((r.summary for r in results), key=lambda s: s.window_end)
    # Each snapshot is stamped with its window's end (not the run's clock) and tagged with version and status.
    assert [s.timestamp for s in snapshots] == [r.window_end.replace(tzinfo=None) for r in runs_by_end]
    assert [s.tags for s in snapshots] == [snapshot_tags(r) for r in runs_by_end]
    # Once labels have matured, the Evidently report holds the performance, with the summary's ROC AUC.
    for snapshot, run in zip(snapshots, runs_by_end, strict=True):
        metrics = Snapshot.load_model(snapshot).dict()["metrics"]
        auc = [m["value"] for m in metrics if m["config"]["type"].endswith(":RocAuc")]
        known = run.performance.roc_auc if run.performance else None
        assert auc == ([pytest.approx(known)] if known is not None else []), run.run_id
        page = (reports / run.html).read_text()
        assert ("Performance on matured labels" in page) == (known is not None), run.run_id
    assert all(r.performance for r in runs_by_end), "every window here lies a horizon after the first snapshots"

    client = MlflowClient(settings.mlflow_uri)
    experiment = client.get_experiment_by_name(settings.monitoring.project)
    runs = client.search_runs([experiment.experiment_id])
    assert {r.info.run_id for r in runs} == {r.summary.mlflow_run_id for r in results}
    assert {r.data.tags["churn.monitor.status"] for r in runs} == {r.summary.status for r in results}


def test_serving_mode_reads_the_prediction_log_and_scores_matured_labels(
    drifted: tuple[Settings, list[MonitorResult]],
) -> None:
    """What the service logged is the current data; labels of a window one horizon back are scored."""
    settings, _ = drifted
    champion = load_champion(settings)
    log = PredictionLog(settings.path(settings.serving.prediction_log_dir))

    def log_snapshot(observed: int, logged: dt.datetime) -> int:
        rows = batch_rows(settings, champion, snapshot_keys(settings, Window(day(observed), day(observed + 1))))
        features = rows[champion.bundle.features].to_dict("records")
        log.append(rows[names.CUSTOMER_ID].tolist(), champion.version, features, rows[names.PREDICTION], now=logged)
        return len(rows)

    # Snapshots are weekly, on Mondays: day 271 (2025-09-29) lies in the window one horizon (30 days)
    # before the monitored one, day 299 (2025-10-27) in it.
    matured = log_snapshot(271, day(271) + dt.timedelta(hours=10))
    current = log_snapshot(299, day(299) + dt.timedelta(hours=10))
    log.close()
    assert matured > 300 and current > 300

    summary = run_monitor(settings, Window(day(298), day(305)), backtest=True).summary  # mode auto
    assert summary.mode == "serving"
    assert summary.current_rows == current
    assert summary.status == "drift", "post-drift behaviour, as logged by the service"
    perf = summary.performance
    assert perf is not None and perf.window_end == day(305) - dt.timedelta(days=30)
    assert perf.labelled_rows == matured and 0 < perf.positives < matured
    # The deliberately weak champion (3 stumps) ranks poorly; what matters is that it was measured.
    assert perf.roc_auc is not None and perf.reference_roc_auc is not None
    assert perf.auc_drop == pytest.approx(perf.reference_roc_auc - perf.roc_auc)


def test_drift_retrains_promotes_only_a_better_challenger_then_cools_down(
    drifted: tuple[Settings, list[MonitorResult]],
) -> None:
    settings, _ = drifted
    client = MlflowClient(settings.mlflow_uri)
    model = settings.training.model_name
    weak = str(client.get_model_version_by_alias(model, names.CHAMPION_ALIAS).version)

    # 1. Drift after the window ending at day 289: a challenger trained on what was known then
    #    beats the weak champion on the same held-out rows, so the gate promotes it.
    first = run_monitor(settings, Window(day(282), day(289)), retrainer=retrainer_for(settings), backtest=True).summary
    assert first.decision.retrain and first.retraining is not None
    r = first.retraining
    assert r.error is None, r.error
    assert r.champion_before == weak
    assert r.challenger_score is not None and r.champion_score is not None
    assert r.promoted == (r.challenger_score > r.champion_score), r.gate_reason
    assert r.promoted, f"a depth-1, 3-tree champion should lose: {r}"
    assert str(client.get_model_version_by_alias(model, names.CHAMPION_ALIAS).version) == r.challenger_version
    # The chain is in MLflow: monitoring run -> training run -> gate -> alias.
    monitor_run = client.get_run(first.mlflow_run_id or "")
    assert monitor_run.data.tags["churn.retrain.training_run_id"] == r.training_run_id
    assert monitor_run.data.tags["churn.retrain.gate"] == "promoted"
    assert monitor_run.data.tags["churn.retrain.champion_after"] == r.challenger_version
    assert client.get_run(r.training_run_id or "").data.tags[MONITOR_TAG] == first.mlflow_run_id

    # 2. A week later features still drift against the new champion's reference (a partly
    #    post-drift one, so fewer of them: the policy here fires on any drifted feature), but the
    #    cool-down holds retraining back.
    policy = settings.monitoring.policy.model_copy(update={"drifted_share": 0.01})
    strict = settings.model_copy(update={"monitoring": settings.monitoring.model_copy(update={"policy": policy})})
    second = run_monitor(strict, Window(day(289), day(296)), retrainer=retrainer_for(strict), backtest=True).summary
    assert second.features.drifted_columns >= 1, second.features
    assert second.status == "drift" and second.decision.reasons, second.decision
    assert not second.decision.retrain and second.decision.cooldown_until == first.window_end + dt.timedelta(days=14)
    assert second.retraining is None

    # 3. A genuinely worse challenger (one tree that cannot split: min_child_weight above the rows'
    #    total hessian, so every row scores alike) loses to the promoted champion on the same
    #    held-out rows, so the gate keeps the champion. (A single stump is not worse enough: after
    #    the drift, one split on a post-drift signal can outrank a champion trained mostly before it.)
    search = {"max_depth": (1, 1), "min_child_weight": (1e9, 1e9)}
    weak = scenario_settings(settings.path("."), max_rounds=1, search=search, n_trials=1)
    kept = retrain_champion(weak, monitor_run=first.mlflow_run_id or "", as_of=day(303).date())
    assert kept.error is None, kept.error
    assert kept.challenger_score is not None and kept.champion_score is not None
    assert kept.challenger_score < kept.champion_score, kept
    assert not kept.promoted and "champion v" in kept.gate_reason and "kept" in kept.gate_reason, kept.gate_reason
    assert kept.champion_before == kept.champion_after == r.challenger_version
    assert str(client.get_model_version_by_alias(model, names.CHAMPION_ALIAS).version) == r.challenger_version
    index = (settings.path(settings.monitoring.reports_dir) / "index.html").read_text()
    assert r.training_run_id in index


def test_monitor_shows_the_event_to_feature_lag_of_streamed_events(
    drifted: tuple[Settings, list[MonitorResult]],
) -> None:
    """Runs last: it adds streamed events to the drifted workspace."""
    from crm.freshness import NO_EVENTS
    from features.paths import FeaturePaths
    from stream.log import EventLog
    from stream.online import OnlineFeatures
    from stream.processor import StreamProcessor
    from stream.state import SqliteState

    settings, results = drifted
    # The backtest windows are in the data's past: nothing was streamed in them.
    assert all(r.summary.freshness is not None and r.summary.freshness.events == 0 for r in results)
    reports = settings.path(settings.monitoring.reports_dir)
    assert NO_EVENTS in (reports / "index.html").read_text()

    paths = FeaturePaths.of(settings)
    log = EventLog(paths.clean_events)
    processor = StreamProcessor(
        settings, log, OnlineFeatures(settings, log), SqliteState(settings.path("stream/state.db")), None, None
    )
    customers = pd.read_parquet(paths.clean_customers)
    cids = customers[customers[names.CHURN_DATE].isna()][names.CUSTOMER_ID].astype(str).head(4).tolist()
    now = dt.datetime.now(dt.UTC)
    records = [
        {"event_id": f"m-{c}", "customer_id": c, "event_timestamp": now.isoformat(), "event_type": "complaint"}
        for c in cids
    ]
    processor.apply(records, arrived_at=now - dt.timedelta(seconds=1))
    result = run_monitor(settings, Window(now - dt.timedelta(hours=1), now + dt.timedelta(minutes=5)), mode="batch")
    fresh = result.summary.freshness
    assert fresh is not None and fresh.events == 4 and fresh.batches == 1
    assert fresh.lag_p50_s is not None and fresh.lag_p50_s >= 1.0 and fresh.lag_max_s == fresh.lag_p99_s
    assert fresh.newest_event == now
    stored = json.loads(result.summary_json.read_text())["freshness"]
    assert stored["events"] == 4 and stored["newest_event"].startswith(now.strftime("%Y-%m-%dT%H:%M:%S"))
    assert "4 streamed events in 1 batch:" in result.index.read_text()
