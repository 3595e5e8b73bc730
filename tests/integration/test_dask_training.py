"""The Dask training path: `xgboost.dask` on a local cluster of two worker processes matches `fit`, and
`churn train` on the Dask engine registers a model bundle like the local engine's."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from training_fixtures import build_workspace, churn_command, churn_env, settings_for, unique_name, write_config

from core import names
from core.settings import Settings
from model.bundle import ModelBundle
from model.champion import load_version
from training.dask_train import dask_frames, local_cluster, train_dask
from training.dataset import Split
from training.pipeline import prepare
from training.tune import fit, negatives_per_positive, predict, score, suggest_params

PARAMS = {
    "eta": 0.1,
    "max_depth": 4,
    "min_child_weight": 2.0,
    "subsample": 1.0,
    "colsample_bytree": 1.0,
    "lambda": 1.0,
}
"""Without row or column sampling: each Dask worker draws its own random rows, so sampled models
differ from the single-process one as two seeds do, and on this small validation set (about 30
churners) two seeds' ROC AUC differ by up to 0.05. Unsampled, the models differ only by the
distributed histogram sketch."""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The small real workspace, built once for this module."""
    return build_workspace(tmp_path_factory.mktemp("ws"))


@pytest.fixture(scope="module")
def split(workspace: Settings) -> Split:
    """The workspace's training split, as `churn train` builds it."""
    return prepare(workspace).split


def test_dask_frames_keep_types_and_rows(split: Split) -> None:
    x, y = dask_frames(split, "train", 3)
    assert x.npartitions == y.npartitions == 3
    local, labels = split.xy("train")
    assert list(x.columns) == list(split.features)
    assert dict(x.dtypes) == dict(local.dtypes)  # categories known, with the training values
    assert len(x) == len(y) == len(split.train)
    assert y.sum().compute() == labels.sum()


def test_dask_training_matches_single_process(workspace: Settings, split: Split) -> None:
    cfg = workspace.training
    _, y_train = split.xy("train")
    trial = optuna.trial.FixedTrial({**PARAMS, "scale_pos_weight": 2.0})
    params = suggest_params(trial, cfg.search, negatives_per_positive(y_train), cfg.metric)
    rounds, patience, seed = cfg.max_rounds, cfg.early_stopping_rounds, cfg.seed
    y_valid = split.valid[names.LABEL].to_numpy()

    local = fit(params, split, max_rounds=rounds, early_stopping_rounds=patience, seed=seed)
    started = time.perf_counter()
    # Worker processes, as on a real cluster (spawned: they import xgboost afresh, a few seconds).
    with local_cluster(n_workers=2, threads_per_worker=1, processes=True) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        distributed = train_dask(client, split, params, max_rounds=rounds, early_stopping_rounds=patience, seed=seed)
    elapsed = time.perf_counter() - started

    local_auc = score("roc_auc", y_valid, predict(local, split.valid))
    dask_auc = score("roc_auc", y_valid, predict(distributed, split.valid))
    assert local_auc > 0.6 and dask_auc > 0.6, (local_auc, dask_auc)
    assert abs(dask_auc - local_auc) < 0.02, (local_auc, dask_auc, elapsed)
    # The same kind of model: same features in the same order, same categories, cut at its best iteration.
    assert distributed.feature_names == local.feature_names == list(split.features)
    assert distributed.feature_types == local.feature_types
    assert distributed.num_boosted_rounds() == int(distributed.attr("best_iteration") or -1) + 1


def test_churn_train_on_the_dask_engine_registers_a_servable_challenger(workspace: Settings, tmp_path: Path) -> None:
    model = unique_name("test-dask-xgb")
    settings = settings_for(
        Path(workspace.workspace),
        model_name=model,
        n_trials=3,
        engine="dask",
        # A 2-worker local cluster; the training set in parts of at most 3,000 rows; 1,000 training
        # rows sampled into the driver for the regression, BG/NBD and the class ratio.
        dask={"scheduler": None, "workers": 2, "chunk_rows": 3_000, "local_rows": 1_000},
    )
    config = write_config(settings, tmp_path / "dask.yaml")
    proc = subprocess.run(
        churn_command("train", "--config", str(config)), env=churn_env(), capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"model {model} v1" in proc.stdout.replace("\n", "")

    client = MlflowClient(settings.mlflow_uri)
    challenger = client.get_model_version_by_alias(model, names.CHALLENGER_ALIAS)
    assert str(challenger.version) == "1" and challenger.tags["training.engine"] == "dask"
    run = client.get_run(str(challenger.run_id))
    params = run.data.params
    assert int(params["partitions"]) > 1  # read in partitions, one per Parquet part
    assert int(params["train_rows"]) > int(params["train_rows_local"]) == 1_000
    assert run.data.metrics["n_trials"] == 3
    assert "test_roc_auc" in run.data.metrics and "baseline_logistic_regression_roc_auc" in run.data.metrics
    assert not any(settings.path("training-sets").iterdir())  # the parts are removed after the run

    # The registered bundle is the local engine's kind: it loads as serving loads it and scores rows.
    registered = load_version(settings.mlflow_uri, model, "1")
    assert isinstance(registered.bundle, ModelBundle)
    test = prepare(workspace).split.test
    proba = registered.bundle.probabilities(test)
    assert len(proba) == len(test) and ((proba > 0) & (proba < 1)).all()
    assert score("roc_auc", test[names.LABEL].to_numpy(), proba) > 0.55


def test_a_training_set_of_fewer_parts_than_workers_is_refused_naming_chunk_rows(
    workspace: Settings, tmp_path: Path
) -> None:
    # One Parquet part for two workers: xgboost.dask would fail on the worker without training rows.
    settings = settings_for(
        Path(workspace.workspace),
        model_name=unique_name("test-dask-xgb"),
        n_trials=1,
        engine="dask",
        dask={"scheduler": None, "workers": 2, "chunk_rows": 10_000_000},
    )
    config = write_config(settings, tmp_path / "dask.yaml")
    proc = subprocess.run(
        churn_command("train", "--config", str(config)), env=churn_env(), capture_output=True, text=True, timeout=900
    )
    output = proc.stdout.replace("\n", " ")
    assert proc.returncode == 1, output
    assert "training.dask.chunk_rows: the training set is 1 Parquet part(s) for 2 Dask workers" in output
    assert "Traceback" not in output + proc.stderr
    assert not any(settings.path("training-sets").iterdir())  # the part is removed
