"""XGBoost on a Dask cluster: the scale-out path for training sets bigger than one machine.

`training.tune.fit` trains in one process on pandas frames, which is right as long as the
training set fits one machine's memory (millions of rows do). Past that, `xgboost.dask` trains
one booster on a Dask cluster: every worker holds some partitions of the data, builds its part
of the histograms, and the workers combine them each round, so the model is the same kind of
booster (same features, same categories, same prediction code) trained on data no single
machine holds.

Use `train_dask_frames` with Dask collections read where the data lives (e.g.
`dask.dataframe.read_parquet` on shared storage, typed per partition with
`model.matrix.model_frame`), and a `distributed.Client` pointed at a real cluster's scheduler
(`Client("tcp://scheduler:8786")`). `train_dask` does the same from an in-memory `Split`, which
still passes through this process's memory: it is for checking the distributed path against
`training.tune.fit` and for data that fits here but trains faster on several machines.
`local_cluster` starts a cluster on this machine for trying it out. `churn train` does all of it
with `training.engine: dask` (`training.dask_engine`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dask.dataframe as dd
import pandas as pd
import xgboost as xgb
from distributed import Client, LocalCluster
from xgboost import dask as dxgb

from model.matrix import remember_categories
from training.dataset import Split


@contextmanager
def local_cluster(n_workers: int = 2, threads_per_worker: int = 1, *, processes: bool = True) -> Iterator[Client]:
    """A Dask cluster on this machine and a client of it, closed on exit.

    For trying the distributed path and for tests. On real data, connect a client to the
    cluster's scheduler instead: `Client("tcp://scheduler-host:8786")`.

    Args:
        n_workers: Worker processes (or threads, with `processes=False`).
        threads_per_worker: Threads of each worker; XGBoost uses as many per worker.
        processes: Workers in their own processes, as on a real cluster; False keeps them as
            threads of this process (faster to start, shares this process's memory).

    Yields:
        A client of the cluster.
    """
    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=processes,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def n_workers(client: Client) -> int:
    """How many workers the cluster behind `client` has."""
    return len(client.scheduler_info()["workers"])


def dask_frames(split: Split, part: str, npartitions: int) -> tuple[dd.DataFrame, dd.Series]:
    """Model-typed features and label of a part of `split` (train, valid or test), as Dask collections.

    The features are typed as `training.tune.fit` types them (`Split.xy`): numbers as floats,
    attributes as categories with the training set's values, which Dask keeps as known categories.
    """
    x, y = split.xy(part)
    x = x.reset_index(drop=True)
    y = pd.Series(y.to_numpy(), name=y.name)
    # Both have the same range index, so their partitions hold the same rows.
    return dd.from_pandas(x, npartitions=npartitions), dd.from_pandas(y, npartitions=npartitions)


def train_dask_frames(
    client: Client,
    train: tuple[dd.DataFrame, dd.Series],
    valid: tuple[dd.DataFrame, dd.Series],
    params: dict[str, Any],
    *,
    max_rounds: int,
    early_stopping_rounds: int,
    seed: int,
) -> xgb.Booster:
    """Train on Dask collections with early stopping on the valid ones; cut at the best iteration.

    Args:
        client: A client of the cluster that trains (each worker trains on its partitions).
        train: Model-typed features (see `model.matrix.model_frame`) and labels to train on.
        valid: The same for early stopping.
        params: XGBoost parameters (e.g. `training.tune.best_of(...).best_params`).
        max_rounds: Most boosting rounds.
        early_stopping_rounds: Stop after this many rounds without improvement on `valid`.
        seed: XGBoost's seed.

    Returns:
        A plain booster holding the trees up to the best iteration (attribute `best_iteration`),
        like `training.tune.fit`: it predicts in one process with `model.matrix.predict`.
        Without row or column sampling it matches `fit`'s model up to the histogram sketch; with
        sampling each worker draws its own rows, so the two differ as two seeds of `fit` do.
    """
    dtrain = dxgb.DaskQuantileDMatrix(client, train[0], train[1], enable_categorical=True)
    dvalid = dxgb.DaskQuantileDMatrix(client, valid[0], valid[1], enable_categorical=True, ref=dtrain)
    output = dxgb.train(
        client,
        {**params, "seed": seed},
        dtrain,
        num_boost_round=max_rounds,
        evals=[(dvalid, "valid")],
        early_stopping_rounds=early_stopping_rounds,
        verbose_eval=False,
    )
    booster: xgb.Booster = output["booster"]
    best = booster.best_iteration
    trimmed = booster[: best + 1]
    trimmed.set_attr(best_iteration=str(best))
    categories = {
        str(c): [str(v) for v in dtype.categories]
        for c, dtype in train[0].dtypes.items()
        if isinstance(dtype, pd.CategoricalDtype)
    }
    return remember_categories(trimmed, categories)


def train_dask(
    client: Client,
    split: Split,
    params: dict[str, Any],
    *,
    max_rounds: int,
    early_stopping_rounds: int,
    seed: int,
    npartitions: int | None = None,
) -> xgb.Booster:
    """`training.tune.fit` on a Dask cluster: train on the train part, stop early on the valid part.

    The split's frames are partitioned here and shipped to the workers, so the split must fit in
    this process; for data that does not, read it on the cluster and call `train_dask_frames`.

    Args:
        client: A client of the cluster (`local_cluster()`, or `Client("tcp://host:8786")`).
        split: The training split.
        params: XGBoost parameters, as for `training.tune.fit`.
        max_rounds: Most boosting rounds.
        early_stopping_rounds: Stop after this many rounds without improvement on the valid part.
        seed: XGBoost's seed.
        npartitions: Partitions of each part; default one per worker.

    Returns:
        The booster cut at its best iteration, with the split's feature names and categories.
    """
    parts = npartitions or max(1, n_workers(client))
    return train_dask_frames(
        client,
        dask_frames(split, "train", parts),
        dask_frames(split, "valid", parts),
        params,
        max_rounds=max_rounds,
        early_stopping_rounds=early_stopping_rounds,
        seed=seed,
    )
