"""Feature jobs: build snapshots and labels from ingested data, apply them to Feast, materialize.

These functions are the I/O edge of `features/`: they read the clean data, call the pure
computations and write Parquet atomically, or talk to the Feast store.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from feast import FeatureStore

from churn import names
from churn.settings import Settings
from features.compute import (
    compute_snapshots,
    event_day_range,
    event_types_in,
    feature_columns,
    observation_grid,
    snapshot_spec,
)
from features.feast_repo import build_definitions, repo_config
from features.io import write_atomic_parquet
from features.labels import compute_labels


@dataclass(frozen=True)
class FeaturePaths:
    """Where the feature jobs read and write, resolved against the workspace."""

    clean_events: Path
    clean_customers: Path
    snapshots: Path
    labels: Path

    @classmethod
    def of(cls, settings: Settings) -> FeaturePaths:
        """The paths a settings profile uses."""
        clean = settings.path(settings.data.clean_dir)
        out = settings.path(settings.features.snapshots_dir)
        return cls(
            clean / "events.parquet", clean / "customers.parquet", out / "snapshots.parquet", out / "labels.parquet"
        )


@dataclass(frozen=True)
class BuildResult:
    """What `build_features` wrote."""

    snapshots: Path
    labels: Path
    rows: int
    labelled_rows: int
    churn_rate: float
    features: tuple[str, ...]
    observation_dates: tuple[dt.date, ...]
    last_event_day: dt.date


def build_features(settings: Settings) -> BuildResult:
    """Compute behaviour snapshots and labels from the ingested (clean) data.

    Reads `clean/events.parquet` and `clean/customers.parquet`; writes
    `features/snapshots.parquet` (customer_id, event_timestamp, features) and
    `features/labels.parquet` (customer_id, event_timestamp, churned).
    """
    paths = FeaturePaths.of(settings)
    for p in (paths.clean_events, paths.clean_customers):
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist: run `churn data ingest` first")
    first, last = event_day_range(paths.clean_events)
    dates = observation_grid(
        first, last, settings.features.observation_every_days, settings.features.first_observation_after_days
    )
    if not dates:
        raise ValueError(
            f"the events span {first}..{last}, shorter than features.first_observation_after_days="
            f"{settings.features.first_observation_after_days}: no observation date fits"
        )
    spec = snapshot_spec(dates, settings.features.windows_days, event_types_in(paths.clean_events))
    snapshots = compute_snapshots(paths.clean_events, paths.clean_customers, spec)
    customers = pd.read_parquet(paths.clean_customers)
    labels = compute_labels(
        snapshots[[names.CUSTOMER_ID, names.EVENT_TIMESTAMP]],
        customers,
        paths.clean_events,
        kind=settings.labels.kind,
        horizon_days=settings.labels.horizon_days,
        last_event_day=last,
        activity_event_types=settings.labels.activity_event_types,
    )
    write_atomic_parquet(snapshots, paths.snapshots)
    write_atomic_parquet(labels, paths.labels)
    return BuildResult(
        snapshots=paths.snapshots,
        labels=paths.labels,
        rows=len(snapshots),
        labelled_rows=len(labels),
        churn_rate=float(labels[names.LABEL].mean()) if len(labels) else float("nan"),
        features=tuple(feature_columns(snapshots)),
        observation_dates=spec.observation_dates,
        last_event_day=last,
    )


def latest_snapshot(settings: Settings, columns: list[str] | None = None) -> pd.DataFrame:
    """Snapshot rows of the newest observation date (e.g. batch monitoring's current data).

    Args:
        settings: The profile.
        columns: Columns to read (all when None); event_timestamp is always read.
    """
    read = None if columns is None else list(dict.fromkeys([*columns, names.EVENT_TIMESTAMP]))
    frame = pd.read_parquet(FeaturePaths.of(settings).snapshots, columns=read)
    return frame[frame[names.EVENT_TIMESTAMP] == frame[names.EVENT_TIMESTAMP].max()].reset_index(drop=True)


def open_store(settings: Settings) -> FeatureStore:
    """A Feast store for the settings profile (registry and online store from the config)."""
    settings.path("feast").mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=repo_config(settings))


def snapshot_features(snapshots: Path) -> list[str]:
    """Feature names of a snapshots Parquet file, read from its schema only."""
    return [n for n in pq.read_schema(snapshots).names if n not in (names.CUSTOMER_ID, names.EVENT_TIMESTAMP)]


def apply_features(settings: Settings) -> list[str]:
    """Register entity, source, views and feature service in the Feast registry.

    Returns:
        The names of the objects applied.
    """
    paths = FeaturePaths.of(settings)
    if not paths.snapshots.exists():
        raise FileNotFoundError(f"{paths.snapshots} does not exist: run `churn features build` first")
    definitions = build_definitions(paths.snapshots, snapshot_features(paths.snapshots), settings.feast.ttl_days)
    store = open_store(settings)
    store.apply(definitions)
    return [obj.name for obj in definitions]


def materialize(
    settings: Settings, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """Load snapshots from the offline store into the online store for [start, end].

    Defaults cover the whole history of the snapshots file: Feast's first incremental run would
    start at now minus TTL and miss historical data.
    """
    paths = FeaturePaths.of(settings)
    if start is None or end is None:
        stamps = pd.read_parquet(paths.snapshots, columns=[names.EVENT_TIMESTAMP])[names.EVENT_TIMESTAMP]
        start = start or stamps.min().to_pydatetime() - dt.timedelta(seconds=1)
        end = end or stamps.max().to_pydatetime() + dt.timedelta(seconds=1)
    open_store(settings).materialize(start_date=start, end_date=end)
    return start, end
