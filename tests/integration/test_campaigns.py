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
