"""The Dask training path: `xgboost.dask` on a local cluster of two worker processes matches `fit`."""

from __future__ import annotations

import time

import optuna
import pytest
from training_fixtures import build_workspace

from core import names
from core.settings import Settings
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
