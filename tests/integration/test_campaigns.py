"""Campaigns on a real trained workspace: `churn score` plans one with control groups, keeps its
record and features, and logs it to MLflow; the `churn campaigns` commands import actions, evaluate
and report on it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from churn.cli import app
from core import names

runner = CliRunner()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A small generated workspace with a champion (trained here: its data is changed by the tests)."""
    from training_fixtures import build_workspace, settings_for

    from training.pipeline import train

    ws = tmp_path_factory.mktemp("campaigns")
    build_workspace(ws, customers=800, days=220, seed=5)
    train(settings_for(ws, n_trials=2, max_rounds=60))
    yield ws


def churn(ws: Path, *args: str) -> str:
    """Run a `churn` command on the workspace; its output (fails the test on a non-zero exit)."""
    result = runner.invoke(app, list(args), env={"CHURN_WORKSPACE": str(ws), "COLUMNS": "200", "CHURN_CONFIG": ""})
    assert result.exit_code == 0, result.output
    return result.output


def test_score_plans_a_campaign_with_control_groups(workspace: Path) -> None:
    out = workspace / "alerts.csv"
    output = churn(workspace, "score", "--out", str(out))
    alerts = pd.read_csv(out)
    record = json.loads((workspace / "alerts.campaign.json").read_text())
    campaign = record["campaign_id"]
    assert campaign == f"{alerts['as_of'].iloc[0]}-v{alerts['model_version'].iloc[0]}"
    assert f"campaign {campaign}:" in output
    alerted = alerts[alerts["group"].notna()]
    assert set(alerted["group"]) == {"treatment", "control"} and record["customers"] == len(alerted)
    assert (alerts["contact"] == (alerts["group"] == "treatment")).all()
    assert alerts["expected_profit"].is_monotonic_decreasing
    assert (alerts.loc[alerts["group"].isna() & (alerts["action"] != "monitor"), "expected_profit"] <= 0).all()
    # The campaign's folder: the record, the alerted customers and their features as scored.
    folder = workspace / "campaigns" / campaign
    assert json.loads((folder / "campaign.json").read_text()) == record
    kept = pd.read_parquet(folder / "assignments.parquet")
    assert sorted(kept[names.CUSTOMER_ID]) == sorted(alerted[names.CUSTOMER_ID])
    features = pd.read_parquet(folder / "features.parquet")
    assert set(features[names.CUSTOMER_ID]) == set(alerted[names.CUSTOMER_ID]) and features.shape[1] > 20
    # MLflow: one run in the campaigns experiment, with the record's figures and the record itself.
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow/mlflow.db'}")
    run = client.get_run(record["mlflow_run_id"])
    assert run.data.tags["churn.campaign.id"] == campaign
    assert run.data.params["as_of"] == record["as_of"]
    assert run.data.metrics["control"] == record["control"]
    assert run.data.metrics["expected_cost"] == pytest.approx(record["expected_cost"])
    assert "campaign.json" in [a.path for a in client.list_artifacts(run.info.run_id)]
    # Scoring the same snapshot again draws the same groups.
    churn(workspace, "score", "--out", str(workspace / "again.parquet"))
    again = pd.read_parquet(workspace / "again.parquet")
    merged = alerts.merge(again, on=names.CUSTOMER_ID)
    assert (merged["group_x"].fillna("-") == merged["group_y"].fillna("-")).all()


def test_score_with_a_bad_out_suffix_says_what_to_pass(workspace: Path) -> None:
    result = runner.invoke(
        app,
        ["score", "--out", str(workspace / "alerts.txt")],
        env={"CHURN_WORKSPACE": str(workspace), "COLUMNS": "200"},
    )
    assert result.exit_code == 1
    assert "--out must end in .csv or .parquet" in result.output
    assert result.output.strip().splitlines()[-1].startswith("next:")


def test_import_actions_keeps_good_rows_and_quarantines_bad_ones(workspace: Path) -> None:
    record = json.loads((workspace / "alerts.campaign.json").read_text())
    campaign = record["campaign_id"]
    kept = pd.read_parquet(workspace / "campaigns" / campaign / "assignments.parquet")
    treated = kept[kept["group"] == "treatment"].head(20)
    rows = [
        {"cust": c, "what": a, "ts": f"{record['as_of']}T10:00:00Z", "eur": "5"}
        for c, a in zip(treated[names.CUSTOMER_ID], treated["action"], strict=True)
    ]
    rows += [
        {"cust": "C9999999", "what": "win_back_offer", "ts": f"{record['as_of']}T10:00:00Z", "eur": "5"},
        {"cust": rows[0]["cust"], "what": "carrier_pigeon", "ts": f"{record['as_of']}T11:00:00Z", "eur": "5"},
        {"cust": rows[1]["cust"], "what": rows[1]["what"], "ts": f"{record['window_end']}T00:00:00Z", "eur": ""},
    ]
    export = workspace / "exports" / "actions.csv"
    export.parent.mkdir(exist_ok=True)
    pd.DataFrame(rows).to_csv(export, index=False)
    config = workspace / "actions.yaml"
    config.write_text(
        "data:\n  actions:\n    columns: {customer_id: cust, action: what, action_timestamp: ts, cost: eur}\n"
    )
    output = churn(
        workspace, "campaigns", "import-actions", "--campaign", campaign, "--file", str(export), "-c", str(config)
    )
    assert "unknown_customer: 1" in output and "unknown_action: 1" in output
    assert "outside_campaign_window: 1" in output
    actions = pd.read_parquet(workspace / "campaigns" / campaign / "actions.parquet")
    assert len(actions) == 20 and set(actions[names.CUSTOMER_ID]) == set(treated[names.CUSTOMER_ID])
    quarantined = pd.read_csv(workspace / "quarantine" / f"actions-{campaign}.csv")
    assert len(quarantined) == 3
    assert any("is not in campaign" in r for r in quarantined["quarantine_reason"])


def test_import_actions_errors_say_what_to_do(workspace: Path) -> None:
    env = {"CHURN_WORKSPACE": str(workspace), "COLUMNS": "200"}
    result = runner.invoke(app, ["campaigns", "import-actions", "--campaign", "nope"], env=env)
    assert result.exit_code == 1 and "no campaign 'nope'" in result.output
    assert "churn campaigns list" in result.output.strip().splitlines()[-1]
    campaign = json.loads((workspace / "alerts.campaign.json").read_text())["campaign_id"]
    export = workspace / "exports" / "bad.csv"
    export.parent.mkdir(exist_ok=True)
    export.write_text("customer_id,action,when\nC1,monitor,2025-07-01\n")
    result = runner.invoke(app, ["campaigns", "import-actions", "--campaign", campaign, "--file", str(export)], env=env)
    assert result.exit_code == 1
    assert "data.actions.columns.action_timestamp" in result.output.replace("\n", "")
    assert result.output.strip().splitlines()[-1].startswith("next: fix data.actions.columns")
