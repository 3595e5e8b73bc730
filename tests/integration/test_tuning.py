"""Optuna tuning on the small real workspace: pruning stops clearly bad trials."""

from __future__ import annotations

from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from training_fixtures import build_workspace, settings_for

from core.settings import Settings
from training.pipeline import configure_mlflow, prepare
from training.tune import tune


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The small real workspace, built once for this module."""
    return build_workspace(tmp_path_factory.mktemp("ws"))


def test_pruning_stops_trials_that_cannot_learn(workspace: Settings) -> None:
    # min_child_weight up to 10,000 (a hessian sum: about 40,000 rows' worth) lets TPE draw trees
    # that cannot split, whose validation AUC stays at 0.5 while the median trial's is far above.
    settings = settings_for(
        Path(workspace.workspace),
        n_trials=10,
        max_rounds=60,
        pruning=True,
        search={"min_child_weight": [1.0, 10_000.0]},
    )
    cfg = settings.training
    storage = f"sqlite:///{settings.path('optuna/pruning.db')}"
    settings.path("optuna").mkdir(parents=True, exist_ok=True)
    experiment_id = configure_mlflow(settings)
    split = prepare(settings).split
    with mlflow.start_run(experiment_id=experiment_id, run_name="parent") as parent:
        result = tune(split, cfg, storage=storage, study_name="pruning", parent_run_id=parent.info.run_id)

    trials = optuna.load_study(study_name="pruning", storage=storage).get_trials(deepcopy=False)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, [(t.number, t.state.name, t.params.get("min_child_weight"), t.value) for t in trials]
    assert len([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]) == 10
    assert result.n_pruned == len(pruned) and result.n_trials == 10
    # A pruned trial stopped at the pruner's first check (after n_warmup_steps rounds), far below max_rounds.
    assert all(max(t.intermediate_values) < cfg.max_rounds - 1 for t in pruned)
    # Its MLflow run is there, nested, marked pruned and ended as killed.
    client = MlflowClient(settings.mlflow_uri)
    runs = client.search_runs([experiment_id], filter_string="tags.`optuna.state` = 'pruned'")
    assert {r.data.tags["optuna.trial"] for r in runs} == {str(t.number) for t in pruned}
    assert {r.info.status for r in runs} == {"KILLED"}
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
