"""Campaigns on a real trained workspace: `churn score` plans one with control groups, keeps its
record and features, and logs it to MLflow; the `churn campaigns` commands import actions, evaluate
and report on it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
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


def test_evaluate_before_the_horizon_has_passed_says_when(workspace: Path) -> None:
    campaign = json.loads((workspace / "alerts.campaign.json").read_text())["campaign_id"]
    env = {"CHURN_WORKSPACE": str(workspace), "COLUMNS": "200"}
    result = runner.invoke(app, ["campaigns", "evaluate", "--campaign", campaign], env=env)
    assert result.exit_code == 1
    assert "are not known yet: its 30-day label horizon has not passed" in result.output.replace("\n", "")
    assert "churn features build" in result.output.strip().splitlines()[-1]


def test_simulate_plays_campaign_cycles_and_evaluates_them(workspace: Path) -> None:
    config = workspace / "uplift.yaml"
    config.write_text("crm:\n  campaigns:\n    uplift: {min_per_group: 20, rounds: 30}\n")
    output = churn(
        workspace,
        *("campaigns", "simulate", "--campaigns", "2", "--every", "28", "--seed", "3"),
        *("--catch-all", "time_limited_coupon", "-c", str(config)),
    )
    assert "recovered effects beside the injected ones" in output
    # `churn campaigns evaluate` recovers the injected effects (the generator's by-risk truth, absolute
    # falls in churn probability given who would have churned): per action and per action and segment,
    # in the cells with 30 customers an arm or more, the 95% intervals (intent to treat and on the
    # customers the CRM reached) hold their injected effect but for at most 2 (1 in 20 misses by
    # chance), and the sleeping dogs' harm shows.
    recovered = pd.read_csv(workspace / "campaigns" / "recovered.csv")
    print(recovered.round(4).to_string())
    cells = recovered[(recovered["treatment_n"] >= 30) & (recovered["control_n"] >= 30)]
    assert len(cells) >= 6 and (cells["segment"] == "all").sum() >= 3
    assert (~cells["itt_within"]).sum() + (~cells["cace_within"]).sum() <= 2
    assert (cells["injected_itt"] < 0).any() and (cells["itt_high"] < 0).any()
    assert output.count("3 quarantined (unknown_customer, unknown_action, outside_campaign_window)") == 2
    listed = churn(workspace, "campaigns", "list")
    simulated = sorted(p.parent for p in (workspace / "campaigns").glob("*/truth.json"))
    assert len(simulated) == 2
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow/mlflow.db'}")
    for folder in simulated:
        assert folder.name in listed
        evaluation = json.loads((folder / "evaluation.json").read_text())
        record = json.loads((folder / "campaign.json").read_text())
        assert evaluation["actions_known"] and evaluation["customers"] == record["customers"]
        assert {row["action"] for row in evaluation["by_action"]} == {a["action"] for a in record["actions"]}
        overall = evaluation["overall"]
        assert overall["treatment_n"] == record["treatment"] and overall["control_n"] == record["control"]
        assert overall["itt_low"] <= overall["itt"] <= overall["itt_high"]
        # The effects and their figure are in the campaign's MLflow run.
        run = client.get_run(record["mlflow_run_id"])
        assert run.data.metrics["effect.all.itt"] == pytest.approx(overall["itt"])
        files = [a.path for a in client.list_artifacts(run.info.run_id, "evaluation")]
        assert "evaluation/effects.png" in files and "evaluation/evaluation.json" in files
        assert (folder / "effects.png").read_bytes()[:4] == b"\x89PNG"
    # The ops report has the campaign section: the pooled table per action, its figure, the newest campaign's segments.
    page = (workspace / "reports" / "ops-campaigns.html").read_text()
    section = page.split('id="campaign-effects"', 1)[1]
    assert 'id="campaign-actions"' in section and 'id="campaign-segments"' in section
    assert "data:image/png;base64," in section
    assert section.count("<tr><td>") >= 4


def test_measured_effects_replace_the_configured_success(workspace: Path) -> None:
    config = workspace / "measured.yaml"
    config.write_text("crm:\n  campaigns:\n    min_arm_customers: 5\n")
    churn(workspace, "score", "--out", str(workspace / "after.csv"), "-c", str(config))
    alerts = pd.read_csv(workspace / "after.csv")
    measured = alerts[alerts["success_source"] == "measured"]
    assert not measured.empty
    from core.settings import load_settings
    from crm.campaigns.evaluation import action_table, read_evaluations

    settings = load_settings(config, env={"CHURN_WORKSPACE": str(workspace)})
    pooled = action_table(read_evaluations(settings)).set_index("action")
    for action, rows in measured.groupby("action"):
        assert rows["retention_success"].iloc[0] == pytest.approx(min(pooled.loc[action, "relative"], 1.0))
        expected = rows["churn_probability"] * rows["retention_success"] * rows["customer_value"] - rows["unit_cost"]
        assert np.allclose(rows["expected_profit"], expected)
    configured = alerts[alerts["success_source"] == "configured"]
    assert (configured["retention_success"] == 0.25).all()
    assert alerts["expected_profit"].is_monotonic_decreasing


def test_uplift_model_trains_on_campaigns_and_ranks_the_list(workspace: Path) -> None:
    config = workspace / "uplift.yaml"
    output = churn(workspace, "campaigns", "uplift", "-c", str(config))
    assert "Qini on campaign" in output
    meta = json.loads((workspace / "campaigns" / "uplift" / "meta.json").read_text())
    assert set(meta["qini"]) == {"uplift", "churn_probability", "random"} and len(meta["campaigns"]) == 2
    # By construction (lost causes and sleeping dogs among the likeliest churners, the persuadable in
    # the middle), ranking the held-out campaign by uplift avoids more churners than ranking by churn
    # probability, and than random targeting.
    print(meta["qini"])
    assert meta["qini"]["uplift"] > max(meta["qini"]["churn_probability"], meta["qini"]["random"])
    assert meta["avoided_at_30pct"]["uplift"] > meta["avoided_at_30pct"]["churn_probability"]
    assert meta["held_out"] == f"campaign {meta['campaigns'][-1]}"
    assert (workspace / "campaigns" / "uplift" / "qini.png").read_bytes()[:4] == b"\x89PNG"
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow/mlflow.db'}")
    experiment = client.get_experiment_by_name("churn-campaigns")
    runs = client.search_runs([experiment.experiment_id], "tags.`churn.campaign.uplift` = 't-learner'")
    assert runs and runs[0].data.metrics["qini.uplift"] == pytest.approx(meta["qini"]["uplift"])
    # Ranking by expected uplift x value - cost.
    ranked = workspace / "ranked.yaml"
    ranked.write_text("crm:\n  campaigns:\n    rank_by: uplift\n    min_expected_profit: null\n")
    churn(workspace, "score", "--out", str(workspace / "by-uplift.csv"), "-c", str(ranked))
    alerts = pd.read_csv(workspace / "by-uplift.csv")
    assert alerts["uplift_profit"].is_monotonic_decreasing
    expected = alerts["expected_uplift"] * alerts["customer_value"] - alerts["unit_cost"]
    assert np.allclose(alerts["uplift_profit"], expected)
    assert alerts["expected_uplift"].between(-1, 1).all() and alerts["expected_uplift"].std() > 0
    record = json.loads((workspace / "by-uplift.campaign.json").read_text())
    assert record["rank_by"] == "uplift"
    # The ops report shows the Qini table.
    churn(workspace, "report", "--out", str(workspace / "ops.html"))
    assert 'id="campaign-qini"' in (workspace / "ops.html").read_text()


def test_score_ranked_by_uplift_without_a_model_says_what_to_run(tmp_path: Path, workspace: Path) -> None:
    config = tmp_path / "ranked.yaml"
    config.write_text(f"workspace: {workspace}\ncrm:\n  campaigns:\n    rank_by: uplift\n    dir: nowhere\n")
    result = runner.invoke(app, ["score", "--out", str(tmp_path / "a.csv"), "-c", str(config)], env={"COLUMNS": "200"})
    assert result.exit_code == 1 and "no uplift model in" in result.output
    assert "churn campaigns uplift" in result.output.strip().splitlines()[-1]


def test_training_profit_uses_the_measured_effect_once_there_is_one(workspace: Path, tmp_path: Path) -> None:
    from training_fixtures import SMALL_TRAINING

    from core.settings import parse_settings
    from crm.campaigns.evaluation import action_table, read_evaluations, retention_success
    from training.pipeline import train

    # Nothing evaluated: the configured success, and the note says so.
    empty = parse_settings({"workspace": str(tmp_path)}, "test", env={})
    assert retention_success(empty).source == "configured" and retention_success(empty).value == 0.25
    # The simulated campaigns are evaluated: their pooled effect replaces it in training's profit threshold.
    raw = {
        "workspace": str(workspace),
        "training": {**SMALL_TRAINING, "n_trials": 1, "max_rounds": 30},
        "crm": {"campaigns": {"min_arm_customers": 5}},
    }
    settings = parse_settings(raw, "test", env={})
    success = retention_success(settings)
    evaluations = read_evaluations(settings)
    pooled = action_table(
        [{**e, "by_action": [{**e["overall"], "action": "all"}]} for e in evaluations if e["overall"]]
    )
    assert success.source == "measured" and success.value == pytest.approx(np.clip(pooled["relative"].iloc[0], 0, 1))
    done = train(settings)
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow/mlflow.db'}")
    run = client.get_run(done.run_id)
    assert float(run.data.params["retention_success"]) == pytest.approx(success.value)
    assert run.data.tags["retention_success.source"] == "measured"
    report = Path(client.download_artifacts(done.run_id, "evaluation/report.html", str(tmp_path))).read_text()
    assert "Offer success rate: measured" in report and "in place of training.retention_success 0.25" in report


def test_simulate_with_an_unknown_catch_all_action_names_the_known_ones(workspace: Path) -> None:
    env = {"CHURN_WORKSPACE": str(workspace), "COLUMNS": "200", "CHURN_CONFIG": ""}
    result = runner.invoke(app, ["campaigns", "simulate", "--catch-all", "carrier_pigeon"], env=env)
    assert result.exit_code == 1 and "--catch-all must name a playbook action, got 'carrier_pigeon'" in result.output
    assert "time_limited_coupon" in result.output.strip().splitlines()[-1]
