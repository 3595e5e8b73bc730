"""End to end: `churn quickstart` on tiny data runs every real component and scores over HTTP, and
the command the README gives right after it plays one simulated campaign cycle on its workspace."""

from __future__ import annotations

import inspect
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from churn.cli.quickstart import CAMPAIGN_CYCLE

CHURN = Path(sys.executable).parent / "churn"
README = Path(__file__).parents[2] / "README.md"


def _run(args: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@dataclass
class Quickstart:
    """One `churn quickstart` run: its workspace, environment and output.

    `changed` is set by the test that changes the workspace afterwards (the campaign cycle), so that
    a test reading what the quickstart left fails if it ever runs after that one.
    """

    ws: Path
    env: dict[str, str]
    stdout: str
    changed: bool = False


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> Quickstart:
    """`churn quickstart` on tiny data, run once for the module's two tests of it (it takes minutes)."""
    ws = tmp_path_factory.mktemp("quickstart") / "ws"
    env = {**os.environ, "CHURN_WORKSPACE": str(ws), "COLUMNS": "200"}
    env.pop("CHURN_CONFIG", None)
    quick = [str(CHURN), "quickstart", "--customers", "600", "--days", "200", "--trials", "3", "--seed", "3"]
    return Quickstart(ws, env, _run(quick, env))


@pytest.mark.slow
def test_quickstart_end_to_end(quickstart_run: Quickstart) -> None:
    assert not quickstart_run.changed, "reads the quickstart's workspace before the campaign cycle changes it"
    ws, stdout = quickstart_run.ws, quickstart_run.stdout
    assert "scores returned over HTTP" in stdout
    summary = json.loads((ws / "quickstart-summary.json").read_text())
    # Real scores from the HTTP endpoint: probabilities, tiers and reasons for known customers.
    scored = [s for s in summary["scores"] if "error" not in s]
    assert len(scored) == 5
    for s in scored:
        assert 0.0 <= s["churn_probability"] <= 1.0
        assert s["risk_tier"] in {"high", "medium", "low"}
        assert s["model_version"] == summary["model_version"]
        assert all(r["feature"] and r["contribution"] > 0 for r in s["reasons"])
        # The early-warning layer: segment, behaviour layers, rule hits and a recommended action.
        assert s["segment"] and s["activity"] in {"active", "cooling", "dormant"} and s["action"]
        assert isinstance(s["rule_hits"], list) and s["expected_loss"] >= 0
    assert summary["service_url"].startswith("http://127.0.0.1:")

    # The registry holds the model with the champion alias, in the SQLite tracking store.
    assert summary["mlflow_tracking_uri"] == f"sqlite:///{ws / 'mlflow/mlflow.db'}"
    client = MlflowClient(summary["mlflow_tracking_uri"])
    champion = client.get_model_version_by_alias("churn-xgb", "champion")
    assert str(champion.version) == summary["model_version"]
    # Tiny data (600 customers): the gate may refuse a model that does not beat its baselines; the
    # quickstart then promotes it by hand to show the loop, and says so.
    if champion.tags["gate.decision"] != "promote":
        assert "promoted by hand to show the loop" in stdout.replace("\n", "")
        assert client.get_model_version("churn-xgb", champion.version).tags["champion.promoted_by"] == "quickstart"
    run = client.get_run(champion.run_id)
    parent = f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    trials = client.search_runs([run.info.experiment_id], filter_string=parent)
    assert len(trials) == 3
    assert 0.5 < summary["metrics"]["test_roc_auc"] <= 1.0

    # Evidently wrote an HTML report and a JSON summary with per-column tests.
    assert Path(summary["drift_report"]).stat().st_size > 10_000
    drift = json.loads(Path(summary["drift_summary"]).read_text())
    assert drift["features"]["n_columns"] > 10 and drift["status"] in {"ok", "warning", "drift"}
    assert drift["prediction"]["method"] == "wasserstein"
    assert drift["html"] in Path(summary["monitoring_index"]).read_text()
    # The summary ends with the commands that open the three UIs on this workspace's stores.
    commands = summary["ui_commands"]
    assert commands == {
        "MLflow UI": f"mlflow ui --backend-store-uri {summary['mlflow_tracking_uri']}",
        "Evidently UI": f"evidently ui --workspace {ws / 'evidently'}",
        "Optuna dashboard": f"optuna-dashboard sqlite:///{ws / 'optuna/optuna.db'}",
    }
    for command in commands.values():
        assert command in stdout.replace("\n", ""), command

    # The CRM alert list (every active customer, highest expected loss first) and the ops report.
    alerts = pd.read_csv(summary["alerts"])
    assert len(alerts) > 100 and alerts["expected_loss"].is_monotonic_decreasing
    assert {"churn_probability", "risk_tier", "reasons", "segment", "rule_hits", "action"} <= set(alerts.columns)
    assert alerts["action"].nunique() >= 2 and summary["top_actions"]
    assert '<h2 id="top-alerts"' in Path(summary["ops_report"]).read_text()

    # One pushed complaint (two, through the path of POST /events, in process) raises an alert.
    alert = summary["pushed_alert"]
    assert alert is not None and "complaint_spike" in alert["new_rules"], alert
    assert any(
        h["rule"] == "complaint_spike" and h["values"]["service_complaints_30d"] >= 2 for h in alert["rule_hits"]
    )
    assert 0.0 <= alert["churn_probability"] <= 1.0 and alert["risk_tier"] in {"high", "medium", "low"}
    assert alert["action"] and alert["model_version"] == summary["model_version"]
    out = stdout.replace("\n", "")
    assert f"alert: customer {alert['customer_id']}, rules hit " in out and "complaint_spike" in out
    logged = [json.loads(line) for line in Path(summary["stream_alert_log"]).read_text().splitlines()]
    assert [a["customer_id"] for a in logged] == [alert["customer_id"]]

    # Ingestion wrote clean data and a quarantine file; the Feast stores exist.
    assert (ws / "clean/events.parquet").exists()
    assert (ws / "feast/registry.db").exists() and (ws / "feast/online_store.db").exists()
    # Every job logged its resolved config.
    logs = list((ws / "logs").glob("quickstart-*.log"))
    assert logs and "resolved to:" in logs[0].read_text()


@pytest.mark.slow
def test_the_quickstarts_undrifted_data_gives_status_ok(tmp_path: Path) -> None:
    """The quickstart's own data and model (its defaults), monitored as it does: no drift, so status ok.

    Its generated data has no drift injected. The quickstart's window is the newest snapshot date,
    months after the first training dates, whose short histories once made 8 of 43 features drift.
    """
    from churn.cli.data import generate_data, ingest_data
    from churn.cli.features import build_snapshots
    from churn.cli.quickstart import monitor_newest, quickstart
    from core.settings import load_settings, parse_settings
    from features.pipeline import apply_features
    from training.pipeline import train

    defaults = {name: p.default for name, p in inspect.signature(quickstart).parameters.items()}
    tree = load_settings(env={}).model_dump(mode="json")
    tree["workspace"] = str(tmp_path / "ws")
    tree["generator"] |= {"customers": defaults["customers"], "days": defaults["days"], "seed": defaults["seed"]}
    tree["training"] |= {"n_trials": defaults["trials"], "seed": defaults["seed"]}
    settings = parse_settings(tree, "quickstart defaults", env={})
    generate_data(settings)
    ingest_data(settings)
    build_snapshots(settings)
    apply_features(settings)
    trained = train(settings)
    # The quickstart's own data: the model beats every baseline on the test period, and is promoted.
    assert trained.verdict.beats_all and trained.decision.promote, trained.verdict.line()

    summary = monitor_newest(settings).summary
    assert summary.current_rows >= settings.monitoring.policy.min_rows
    drifted = [(c.column, round(c.value, 3)) for c in summary.features.columns if c.drifted]
    assert summary.status == "ok", (drifted, summary.prediction)
    assert not drifted and summary.prediction is not None and not summary.prediction.drifted


@pytest.mark.slow
def test_the_documented_campaign_cycle_runs_on_the_quickstart_workspace(quickstart_run: Quickstart) -> None:
    """Score with control groups, simulated actions and outcomes, evaluation, the uplift model and the
    ops report's campaign section. It changes the workspace (the raw customers, the ops report), so
    it is the module's last test."""
    # The README gives the command right after the quickstart, and the quickstart ends with it.
    text = README.read_text(encoding="utf-8")
    assert f"make quickstart\n{CAMPAIGN_CYCLE}" in text.replace(".venv/bin/churn", "churn")
    assert CAMPAIGN_CYCLE in quickstart_run.stdout.splitlines()

    quickstart_run.changed = True
    output = _run([str(CHURN), *shlex.split(CAMPAIGN_CYCLE)[1:]], quickstart_run.env)

    assert "recovered effects beside the injected ones" in output
    ws = quickstart_run.ws
    simulated = sorted(p.parent for p in (ws / "campaigns").glob("*/truth.json"))
    assert len(simulated) == 2
    for folder in simulated:
        record = json.loads((folder / "campaign.json").read_text())
        assert record["treatment"] > 0 and record["control"] > 0
        assert json.loads((folder / "evaluation.json").read_text())["actions_known"]
    recovered = pd.read_csv(ws / "campaigns" / "recovered.csv")
    assert set(recovered["campaign_id"]) == {f.name for f in simulated}
    page = (ws / "reports" / "ops-campaigns.html").read_text()
    assert 'id="campaign-effects"' in page and 'id="campaign-actions"' in page
