"""Training on a real small workspace: the split, tuning runs in MLflow, evaluation artifacts,
lineage, the registry's gate, manual promotion and history, and failures that leave the champion."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from churn.cli import app
from core import names
from core.settings import Settings, parse_settings
from features.generator.dataset import generate, write_generated
from features.ingest import ingest
from features.pipeline import apply_features, build_features, training_set
from model.bundle import reference_dates
from training import pipeline
from training.dataset import out_of_time_split
from training.evaluation import Verdict
from training.fitting import final_model, fit_regression
from training.registry import champion_history, champion_version, gate, promote
from training.tune import fit


def _settings(workspace: Path, **training: object) -> Settings:
    """Small settings; the baseline rule is off unless a test turns it on (600 customers are too few to
    beat the logistic regression reliably, and these tests need champions for other reasons)."""
    training = {"n_trials": 4, "max_rounds": 60, "gate": {"must_beat_baselines": False}, **training}
    return parse_settings({"workspace": str(workspace), "training": training}, "test", env={})


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 customers over 220 days: ingested, features built and applied to Feast."""
    ws = tmp_path_factory.mktemp("training")
    settings = _settings(ws)
    customers, events = write_generated(generate(600, 220, seed=3), ws / "raw")
    ingest(settings, customers_path=customers, events_path=events)
    build_features(settings)
    apply_features(settings)
    return ws


def test_split_is_out_of_time_with_disjoint_test_customers(workspace: Path) -> None:
    settings = _settings(workspace)
    split = pipeline.prepare(settings).split
    dates = {part: sorted(getattr(split, part)[names.EVENT_TIMESTAMP].unique()) for part in ("train", "valid", "test")}
    assert len(dates["test"]) == 2 and len(dates["valid"]) == 2
    assert dates["train"][-1] < dates["valid"][0] < dates["valid"][-1] < dates["test"][0]
    # The embargo (label horizon, 30 days): every training label was known when the test period starts.
    assert (dates["test"][0] - dates["train"][-1]).days >= settings.labels.horizon_days
    test_customers = set(split.test[names.CUSTOMER_ID])
    assert not test_customers & set(split.train[names.CUSTOMER_ID])
    assert not test_customers & set(split.valid[names.CUSTOMER_ID])
    assert 0.2 < len(test_customers) / split.test[names.CUSTOMER_ID].nunique() <= 1
    # Only the rows the split keeps, and every row of the drift reference's dates, are retrieved;
    # the split equals the one of every labelled row, and the reference's dates are whole.
    prepared, every_row = pipeline.prepare(settings), training_set(settings)
    cfg = settings.training
    everything = out_of_time_split(
        every_row,
        list(split.features),
        test_dates=cfg.split.test_dates,
        valid_dates=cfg.split.valid_dates,
        embargo_days=settings.labels.horizon_days,
        test_customers=cfg.split.test_customers,
        seed=cfg.seed,
    )
    for part in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(getattr(prepared.split, part), getattr(everything, part))
    assert len(prepared.frame) < len(every_row)
    dates = reference_dates(every_row[names.EVENT_TIMESTAMP], settings.monitoring.reference_sample)
    assert list(dates) == list(
        reference_dates(prepared.frame[names.EVENT_TIMESTAMP], settings.monitoring.reference_sample)
    )
    whole = every_row[every_row[names.EVENT_TIMESTAMP].isin(dates)].reset_index(drop=True)
    kept = prepared.frame[prepared.frame[names.EVENT_TIMESTAMP].isin(dates)].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, whole)
    # The same seed and data give the same split and fingerprint (hashed beside the split).
    first, second = pipeline.prepare(settings), pipeline.prepare(settings)
    pd.testing.assert_frame_equal(split.test, second.split.test)
    assert first.fingerprint == second.fingerprint == pipeline.fingerprint(first.frame)


def test_the_regression_fitted_beside_the_trials_is_the_final_models(workspace: Path) -> None:
    """`train` fits the logistic regression while the trials run and hands it to `final_model`:
    the same model as `final_model` fitting it itself."""
    settings = _settings(workspace)
    cfg, split = settings.training, pipeline.prepare(settings).split
    params = {"eta": 0.1, "max_depth": 4, "scale_pos_weight": 1.0}
    booster = fit(params, split, max_rounds=30, early_stopping_rounds=10, seed=cfg.seed)
    beside = fit_regression(split, cfg)
    own = final_model(params, split, cfg, booster=booster)
    given = final_model(params, split, cfg, booster=booster, regression=beside)
    assert given.regression is beside.model
    assert given.regression_rows == own.regression_rows == len(split.train)
    assert given.blend_scores == own.blend_scores
    np.testing.assert_array_equal(given.holdout_proba, own.holdout_proba)


def test_split_errors_name_the_settings() -> None:
    frame = pd.DataFrame(
        {
            names.CUSTOMER_ID: ["a", "b"] * 3,
            names.EVENT_TIMESTAMP: pd.to_datetime(
                ["2025-01-06"] * 2 + ["2025-01-13"] * 2 + ["2025-01-20"] * 2, utc=True
            ),
            names.LABEL: [0, 1] * 3,
            "x": np.arange(6.0),
        }
    )
    with pytest.raises(ValueError, match="training.split needs at least 5"):
        out_of_time_split(frame, ["x"], test_dates=2, valid_dates=2, embargo_days=0, test_customers=0.5, seed=1)


def test_gate_margin_and_guards() -> None:
    champion = {"roc_auc": 0.80, "pr_auc": 0.40, "log_loss": 0.30}
    better = {"roc_auc": 0.83, "pr_auc": 0.41, "log_loss": 0.29}
    assert gate("roc_auc", better, None, None, 0.01, {}).promote  # no champion yet
    assert gate("roc_auc", better, champion, "1", 0.01, {"pr_auc": 0.02}).promote
    assert not gate("roc_auc", better, champion, "1", 0.05, {}).promote  # below the margin
    worse_pr = {**better, "pr_auc": 0.35}
    decision = gate("roc_auc", worse_pr, champion, "1", 0.01, {"pr_auc": 0.02})
    assert not decision.promote and "pr_auc regresses by 0.0500" in decision.reason
    # Lower is better for log loss, as objective and as guard.
    assert gate("log_loss", {**champion, "log_loss": 0.25}, champion, "1", 0.01, {}).promote
    assert not gate("roc_auc", {**better, "log_loss": 0.40}, champion, "1", 0.0, {"log_loss": 0.05}).promote


def test_the_gate_refuses_a_challenger_that_loses_to_a_baseline() -> None:
    challenger = {"roc_auc": 0.75, "pr_auc": 0.30, "log_loss": 0.20}
    loses = Verdict("roc_auc", 0.75, {"logistic_regression": 0.77, "recency_rule": 0.60})
    decision = gate("roc_auc", challenger, None, None, 0.0, {}, loses)
    assert not decision.promote and "loses to the logistic_regression baseline" in decision.reason
    assert decision.baselines == {"logistic_regression": 0.77, "recency_rule": 0.60}
    beats = Verdict("roc_auc", 0.78, {"logistic_regression": 0.77, "bg_nbd": 0.70})
    assert gate("roc_auc", challenger, None, None, 0.0, {}, beats).promote
    assert "+0.0100 over logistic_regression" in beats.line() and "does NOT" in loses.line()
    # A baseline rule does not skip the champion: beating the baselines is necessary, not enough.
    champion = {"roc_auc": 0.80, "pr_auc": 0.30, "log_loss": 0.20}
    assert not gate("roc_auc", challenger, champion, "3", 0.0, {}, beats).promote


def test_a_training_run_judges_its_model_against_every_baseline(workspace: Path) -> None:
    """With the rule on, the gate promotes exactly when the run's verdict says the model beats every baseline."""
    settings = _settings(workspace, model_name="churn-judged", gate={"must_beat_baselines": True})
    result = pipeline.train(settings)
    assert set(result.verdict.baselines) == {"logistic_regression", "recency_rule", "activity_rule"}
    assert result.decision.promote == result.verdict.beats_all, result.decision.reason
    assert result.decision.baselines == result.verdict.baselines
    client = MlflowClient(settings.mlflow_uri)
    version = client.get_model_version("churn-judged", result.version)
    assert version.tags["baselines.verdict"] == result.verdict.line()
    metrics = client.get_run(result.run_id).data.metrics
    margin = metrics["beats_baselines_margin_roc_auc"]
    assert margin == pytest.approx(result.verdict.margin) and (margin > 0) == result.verdict.beats_all
    assert metrics["blend_tree_weight"] in {0.5, 0.6, 0.7, 0.8, 0.9, 1.0}


def test_training_run_lineage_evaluation_and_registry(workspace: Path) -> None:
    settings = _settings(workspace)
    first = pipeline.train(settings)
    client = MlflowClient(settings.mlflow_uri)
    assert first.decision.promote and champion_version(client, "churn-xgb") == first.version
    version = client.get_model_version("churn-xgb", first.version)
    # Lineage on the version: data fingerprint and date range, feature service and list, git commit.
    tags = version.tags
    assert len(tags["data.fingerprint"]) == 16 and tags["data.first_date"] < tags["data.last_date"]
    assert tags["feature_service"] == names.FEATURE_SERVICE and "purchases_count_30d" in tags["features"].split(",")
    assert tags["git.commit"] != "" and json.loads(tags["gate.evidence"])["promote"] is True
    run = client.get_run(first.run_id)
    metrics = run.data.metrics
    for key in ("test_roc_auc", "test_pr_auc", "test_log_loss", "test_brier", "test_lift_top10", "test_capture_top10"):
        assert key in metrics
    assert "baseline_logistic_regression_roc_auc" in metrics and "baseline_recency_rule_roc_auc" in metrics
    assert metrics["test_roc_auc"] > 0.55  # a small test period (about 300 rows): well above chance
    artifacts = {a.path for a in client.list_artifacts(first.run_id, "evaluation")}
    assert {
        "evaluation/report.html",
        "evaluation/roc.png",
        "evaluation/profit.png",
        "evaluation/calibration.png",
    } <= artifacts
    assert "config.yaml" in {a.path for a in client.list_artifacts(first.run_id)}
    # Every trial is a nested run with its parameters, metric, best iteration and duration.
    trials = client.search_runs([run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{first.run_id}'")
    assert len(trials) == 4
    complete = [t for t in trials if t.data.tags.get("optuna.state") == "complete"]
    assert complete and all({"best_iteration", "duration_s"} <= set(t.data.metrics) for t in complete)
    assert all("eta" in t.data.params for t in trials)
    # The model carries a signature (attributes as strings) and an input example.
    model_info = mlflow.models.get_model_info(f"models:/churn-xgb/{first.version}")
    inputs = {c.name: str(c.type) for c in model_info.signature.inputs.inputs}
    assert inputs["profile_plan"] == "DataType.string" and "purchases_count_30d" in inputs
    assert model_info.saved_input_example_info is not None

    # A second training on the same data: the gate compares both on the same test rows.
    second = pipeline.train(settings)
    evidence = json.loads(client.get_model_version("churn-xgb", second.version).tags["gate.evidence"])
    assert evidence["champion_version"] == first.version and evidence["champion"] is not None
    assert str(client.get_model_version_by_alias("churn-xgb", "challenger").version) == second.version

    # Manual promotion and the history of champions.
    promote(client, "churn-xgb", first.version, by="manual", reason="rollback for the test")
    history = champion_history(client, "churn-xgb")
    assert history[-1].version == first.version and history[-1].promoted_by == "manual" and history[-1].current
    assert history[-1].reason == "rollback for the test"
    assert [h.promoted_by for h in history][0] == "gate"

    # The same through the CLI: `churn promote` and `churn champions`.
    config = workspace / "training.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json")))  # sorted keys: order must not matter
    runner = CliRunner()
    done = runner.invoke(app, ["promote", second.version, "--reason", "cli check", "--config", str(config)])
    assert done.exit_code == 0 and f"v{second.version} is champion" in done.output, done.output
    assert champion_version(client, "churn-xgb") == second.version
    listed = runner.invoke(app, ["champions", "--config", str(config)], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "cli check" in listed.output and "manual" in listed.output
    missing = runner.invoke(app, ["promote", "999", "--reason", "x", "--config", str(config)])
    assert missing.exit_code != 0 and "version 999" in missing.output


def test_failed_training_leaves_the_champion(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(workspace, n_trials=2)
    client = MlflowClient(settings.mlflow_uri)
    before = champion_version(client, "churn-xgb")
    if before is None:
        before = pipeline.train(settings).version
    versions = len(client.search_model_versions("name = 'churn-xgb'"))

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("evaluation crashed")

    monkeypatch.setattr(pipeline, "_log_evaluation", broken)
    with pytest.raises(RuntimeError, match="evaluation crashed"):
        pipeline.train(settings)
    assert champion_version(client, "churn-xgb") == before
    assert len(client.search_model_versions("name = 'churn-xgb'")) == versions  # nothing registered


def test_a_regression_failing_beside_the_trials_fails_the_run(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(workspace, n_trials=1)
    client = MlflowClient(settings.mlflow_uri)
    before = champion_version(client, "churn-xgb")
    versions = len(client.search_model_versions("name = 'churn-xgb'"))

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("the regression crashed")

    monkeypatch.setattr(pipeline, "fit_regression", broken)
    with pytest.raises(ValueError, match="the regression crashed"):
        pipeline.train(settings)
    assert champion_version(client, "churn-xgb") == before
    assert len(client.search_model_versions("name = 'churn-xgb'")) == versions
