"""The Dask engine of training (`training.engine: dask`): the training set in partitions on a cluster.

The labelled rows are joined through Feast a chunk of observation dates at a time (each row's
point-in-time join is its own, so chunks join exactly as the whole does) and each chunk is written
as one Parquet part under `training.dask.data_dir`; this process never holds more than
`training.dask.chunk_rows` of them. The cluster reads the parts with `dask.dataframe`, and the
split (the same cut dates and test customers as `training.dataset.out_of_time_split`), the
typing and the training part stay there: every booster, of each Optuna trial and the final one,
trains on it with `xgboost.dask` (`training.dask_train`).

What comes back to this process is small: the validation and test parts (the latest observation
dates), the rows of the newest dates for the monitoring reference, and a seeded sample of the
training part (`training.dask.local_rows`) for what runs on one machine (the logistic regression
of the baselines and the blend, BG/NBD, the class ratio). From there the run is the local one:
the same blend, calibration, evaluation, MLflow logging, model bundle, registry and gate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import xgboost as xgb
from dask.dataframe.utils import make_meta
from distributed import Client

from core import names
from core.settings import Settings
from features.pipeline import open_store
from model.matrix import is_categorical, model_frame
from training.dask_train import dask_frames, local_cluster, n_workers, train_dask_frames
from training.dataset import PARTS, Split, check_part, holdout_mask, split_dates
from training.pipeline import EngineError

log = logging.getLogger(__name__)


@contextmanager
def cluster(settings: Settings) -> Iterator[Client]:
    """A client of the profile's cluster: `training.dask.scheduler`, or a local cluster of
    `training.dask.workers` processes when it is null. Closed on exit (the local cluster too).

    Raises:
        EngineError: No scheduler answers at the address.
    """
    cfg = settings.training.dask
    if cfg.scheduler is None:
        with local_cluster(n_workers=cfg.workers, threads_per_worker=cfg.threads_per_worker) as client:
            yield client
        return
    try:
        client = Client(cfg.scheduler, timeout="20s")
    except OSError as exc:
        raise EngineError(
            f"training.dask.scheduler: no Dask scheduler answers at {cfg.scheduler} ({exc}); start one "
            "(`dask scheduler`, then `dask worker <address>` on each machine) or set it to null for a local cluster"
        ) from None
    with client:
        yield client


def write_training_set(settings: Settings, labels: pd.DataFrame, folder: Path) -> list[Path]:
    """Join `labels` through Feast a chunk of observation dates at a time and write each chunk as a Parquet part.

    Args:
        settings: The profile (Feast store, `training.feature_service`, `training.dask.chunk_rows`).
        labels: Columns customer_id, event_timestamp, churned.
        folder: Where the parts go (created).

    Returns:
        The parts, in time order; each sorted by time then customer, as `historical_frame` sorts.
    """
    store = open_store(settings)
    service = store.get_feature_service(settings.training.feature_service)
    folder.mkdir(parents=True, exist_ok=True)
    per_date = labels.groupby(names.EVENT_TIMESTAMP).size().sort_index()
    chunks: list[list[pd.Timestamp]] = [[]]
    rows = 0
    for date, count in per_date.items():
        if chunks[-1] and rows + count > settings.training.dask.chunk_rows:
            chunks.append([])
            rows = 0
        chunks[-1].append(pd.Timestamp(date))
        rows += int(count)
    parts = []
    for i, dates in enumerate(chunks):
        entity = labels[labels[names.EVENT_TIMESTAMP].isin(dates)]
        table = store.get_historical_features(entity_df=entity, features=service).to_arrow()
        table = table.sort_by([(names.EVENT_TIMESTAMP, "ascending"), (names.CUSTOMER_ID, "ascending")])
        part = folder / f"part-{i:05d}.parquet"
        pq.write_table(table, part)
        parts.append(part)
        del table
    return parts


def _digest(part: pd.DataFrame) -> pd.Series:
    hashed = pd.util.hash_pandas_object(part, index=False).to_numpy()
    return pd.Series([hashlib.sha256(hashed.tobytes()).hexdigest()])


def fingerprint(frame: dd.DataFrame) -> str:
    """A short content hash of a partitioned training set (each partition hashed where it lives)."""
    digests = frame.map_partitions(_digest, meta=(None, "object")).compute()
    return hashlib.sha256("".join(digests).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DaskSplit:
    """An out-of-time split whose training part stays on the cluster."""

    split: Split
    """Valid and test as in `out_of_time_split`; `train` is a seeded sample of the training part."""
    train: tuple[dd.DataFrame, dd.Series]
    """The whole training part on the cluster: model-typed features (persisted) and labels."""
    train_rows: int
    train_customers: int
    newest: pd.DataFrame
    """Every row of the newest observation dates holding at least the monitoring reference's rows."""
    first_date: pd.Timestamp
    last_date: pd.Timestamp
    partitions: int
    """Partitions of the training set (its Parquet parts)."""

    def describe(self) -> dict[str, str | int]:
        """`Split.describe` with the whole training part's size."""
        out = self.split.describe()
        out["train_rows"] = self.train_rows
        out["train_customers"] = self.train_customers
        out["train_rows_local"] = len(self.split.train)
        out["partitions"] = self.partitions
        return out


def dask_split(settings: Settings, frame: dd.DataFrame, client: Client) -> DaskSplit:
    """Split the partitioned training set as `training.dataset.out_of_time_split` splits a frame.

    Raises:
        EngineError: Every label is at one observation date (cross-validation runs locally only).
        ValueError: Too few dates, or a part without churners and stayers; the message names the settings.
    """
    cfg = settings.training
    stamps = frame[names.EVENT_TIMESTAMP]
    per_date = stamps.value_counts().compute().sort_index()
    if len(per_date) == 1:
        raise EngineError(
            "training.engine: dask trains on an out-of-time split, and every label here is at one observation "
            "date (a customer table, tuned by cross-validation): set training.engine: local"
        )
    embargo = cfg.split.embargo_days if cfg.split.embargo_days is not None else settings.labels.horizon_days
    bounds = split_dates(
        per_date.index, test_dates=cfg.split.test_dates, valid_dates=cfg.split.valid_dates, embargo_days=embargo
    )
    share, seed = cfg.split.test_customers, cfg.seed
    is_test = frame[names.CUSTOMER_ID].map_partitions(
        lambda ids: pd.Series(holdout_mask(ids, share, seed), index=ids.index), meta=(names.CUSTOMER_ID, bool)
    )
    train = frame[bounds.rows("train", stamps, is_test)]
    valid_dd, test_dd = (frame[bounds.rows(p, stamps, is_test)] for p in PARTS[1:])
    features = [c for c in frame.columns if c not in (names.CUSTOMER_ID, names.EVENT_TIMESTAMP, names.LABEL)]
    meta = make_meta(frame)
    categorical = [c for c in features if is_categorical(meta[c])]
    ranked = per_date.sort_index(ascending=False)
    reference = settings.monitoring.reference_sample
    newest_dates = ranked.index[: int(np.searchsorted(ranked.cumsum().to_numpy(), reference)) + 1]
    train_rows, churners, valid, test, newest, *values = dask.compute(
        train[names.LABEL].count(),
        train[names.LABEL].sum(),
        valid_dd,
        test_dd,
        frame[stamps.isin(list(newest_dates))],
        *(train[c].dropna().astype(str).unique() for c in categorical),
    )
    train_rows, churners = int(train_rows), int(churners)
    check_part("train", train_rows, churners, bounds, share)
    ordered = [names.EVENT_TIMESTAMP, names.CUSTOMER_ID]
    valid, test = (p.sort_values(ordered).reset_index(drop=True) for p in (valid, test))
    for part, rows in (("valid", valid), ("test", test)):
        check_part(part, len(rows), int(rows[names.LABEL].sum()), bounds, share)
    categories = {c: sorted(str(v) for v in found) for c, found in zip(categorical, values, strict=True)}
    x = train.map_partitions(model_frame, features, categories, meta=model_frame(meta, features, categories))
    y = train[names.LABEL]
    x, y = client.persist([x, y])  # every trial trains on them: read and typed once
    share_local = min(1.0, cfg.dask.local_rows / max(1, train_rows))
    local = train.sample(frac=share_local, random_state=seed).compute() if share_local < 1.0 else train.compute()
    local = local.sort_values(ordered).reset_index(drop=True)
    check_part("train (local sample)", len(local), int(local[names.LABEL].sum()), bounds, share)
    customers = int(train[names.CUSTOMER_ID].nunique().compute())
    return DaskSplit(
        Split(local, valid, test, tuple(features), categories),
        (x, y),
        train_rows,
        customers,
        newest.reset_index(drop=True),
        pd.Timestamp(per_date.index.min()),
        pd.Timestamp(per_date.index.max()),
        frame.npartitions,
    )


@dataclass(frozen=True)
class DaskFitter:
    """`training.tune.fit` on the cluster: the whole training part, early stopping on the valid part."""

    client: Client
    train: tuple[dd.DataFrame, dd.Series]

    def __call__(
        self, params: dict[str, Any], split: Split, *, max_rounds: int, early_stopping_rounds: int, seed: int
    ) -> xgb.Booster:
        """Train one booster with `params`; see `training.dask_train.train_dask_frames`."""
        valid = dask_frames(split, "valid", max(1, n_workers(self.client)))
        return train_dask_frames(
            self.client,
            self.train,
            valid,
            params,
            max_rounds=max_rounds,
            early_stopping_rounds=early_stopping_rounds,
            seed=seed,
        )


@contextmanager
def dask_training_set(settings: Settings, labels: pd.DataFrame) -> Iterator[tuple[DaskSplit, DaskFitter, str]]:
    """The partitioned training set on the profile's cluster: its split, a fitter and its fingerprint.

    The Parquet parts are written to a folder of their own under `training.dask.data_dir` and
    removed on exit, with the client (and a local cluster).
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    folder = settings.path(settings.training.dask.data_dir) / f"{stamp}-{os.getpid()}"
    try:
        parts = write_training_set(settings, labels, folder)
        log.info("training set: %d Parquet parts in %s", len(parts), folder)
        with cluster(settings) as client:
            workers = n_workers(client)
            if len(parts) < workers:
                # xgboost.dask gives every worker a share of the data; a worker without training rows
                # stops it when there are categorical features ("cannot have empty input").
                rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
                raise EngineError(
                    f"training.dask.chunk_rows: the training set is {len(parts)} Parquet part(s) for {workers} "
                    f"Dask workers; set training.dask.chunk_rows to at most {max(1, rows // (2 * workers)):,} "
                    "(two parts per worker) or use fewer workers"
                )
            # Strings as Python objects, as Feast's `to_df` gives them to the local engine.
            with dask.config.set({"dataframe.convert-string": False}):
                frame = dd.read_parquet([str(p) for p in parts])
            split = dask_split(settings, frame, client)
            yield split, DaskFitter(client, split.train), fingerprint(frame)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
