"""Feature jobs: build snapshots and labels from ingested data, apply them to Feast, materialize.

These functions are the I/O edge of `features/`: they read the clean data, call the pure
computations and write Parquet atomically, or talk to the Feast store.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast import FeatureStore

from core import names
from core.io import atomic_path, write_atomic_parquet, write_atomic_text
from core.settings import Settings
from features.feast_repo import build_definitions, repo_config
from features.incremental import Manifest, recipe, summarise, touched_from
from features.labels import compute_labels, time_ordered
from features.paths import BuildResult, FeaturePaths
from features.snapshots.build import write_snapshots
from features.snapshots.inputs import compact_parts, data_shape, event_day_range
from features.snapshots.spec import SnapshotSpec, family_of, observation_grid, snapshot_spec


def _plan(settings: Settings, paths: FeaturePaths) -> tuple[SnapshotSpec, Manifest, dt.date]:
    """The spec for a full build and a manifest of the data it reads."""
    first, last = event_day_range(paths.clean_events)
    cfg = settings.features
    dates = observation_grid(
        first, last, cfg.observation_every_days, cfg.first_observation_after_days, cfg.grid_origin, cfg.include_latest
    )
    if not dates:
        raise ValueError(
            f"the events span {first}..{last}, shorter than features.first_observation_after_days="
            f"{cfg.first_observation_after_days}: no observation date fits"
        )
    events = settings.data.events
    purchase_types = [t for t in events.event_types if family_of(t, events.families) == "purchase"]
    shape = data_shape(paths.clean_events, paths.clean_customers, settings.data.customers.attributes, purchase_types)
    spec = snapshot_spec(
        dates, cfg.windows_days, shape, tuple(events.families.items()), btyd_horizon=settings.labels.horizon_days
    )
    manifest = summarise(
        paths.clean_events,
        paths.clean_customers,
        spec.attributes,
        recipe(spec, cfg.observation_every_days, cfg.grid_origin, cfg.first_observation_after_days),
    )
    return spec, manifest, last


def build_features(settings: Settings, incremental: bool = True) -> BuildResult:
    """Compute behaviour snapshots and labels from the ingested (clean) data, on the engine
    `features.engine` names (DuckDB in this process, or Spark: the same columns and values).

    Reads `clean/events.parquet` and `clean/customers.parquet`; writes
    `features/snapshots.parquet` (customer_id, event_timestamp, features),
    `features/labels.parquet` (customer_id, event_timestamp, churned) and `features/manifest.json`.

    Args:
        settings: The profile.
        incremental: Recompute only the observation dates that changed data can touch (those
            after the earliest changed day) and copy the rest from the previous build. The result
            equals a full rebuild; False forces one.
    """
    if settings.data.table is not None:
        from features.table import build_table_features

        return build_table_features(settings)
    paths = FeaturePaths.of(settings)
    for p in (paths.clean_events, paths.clean_customers):
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist: run `churn data ingest` first")
    compact_parts(paths.clean_events)  # the real-time path's parts, one file per batch, merged into one
    spec, manifest, last = _plan(settings, paths)
    previous = Manifest.read(paths.manifest) if incremental and paths.snapshots.exists() else None
    keep: tuple[dt.date, ...] = ()
    if previous is not None:
        since = touched_from(previous, manifest)
        old_dates = set(
            pd.read_parquet(paths.snapshots, columns=[names.EVENT_TIMESTAMP])[names.EVENT_TIMESTAMP].dt.date
        )
        keep = tuple(d for d in spec.observation_dates if d in old_dates and (since is None or d <= since))
    todo = tuple(d for d in spec.observation_dates if d not in keep)
    if todo:
        with atomic_path(paths.snapshots) as tmp:
            if settings.features.engine == "spark":
                _spark_snapshots(settings, paths, replace(spec, observation_dates=todo), tmp, keep)
            else:
                write_snapshots(
                    paths.clean_events,
                    paths.clean_customers,
                    replace(spec, observation_dates=todo),
                    tmp,
                    keep_from=paths.snapshots if keep else None,
                    keep_dates=keep,
                    memory_limit=settings.features.duckdb_memory_limit,
                )
    keys = pd.read_parquet(paths.snapshots, columns=[names.CUSTOMER_ID, names.EVENT_TIMESTAMP])
    if settings.features.engine == "spark":
        labels = _spark_labels(settings, paths, last)
    else:
        labels = compute_labels(
            keys,
            pd.read_parquet(paths.clean_customers),
            paths.clean_events,
            kind=settings.labels.kind,
            horizon_days=settings.labels.horizon_days,
            last_event_day=last,
            activity_event_types=settings.labels.activity_event_types,
        )
    write_atomic_parquet(time_ordered(labels), paths.labels)
    write_atomic_text(manifest.to_json(), paths.manifest)
    return BuildResult(
        snapshots=paths.snapshots,
        labels=paths.labels,
        rows=len(keys),
        labelled_rows=len(labels),
        churn_rate=float(labels[names.LABEL].mean()) if len(labels) else float("nan"),
        features=tuple(snapshot_features(paths.snapshots)),
        observation_dates=spec.observation_dates,
        recomputed_dates=todo,
        last_event_day=last,
    )


def _spark_snapshots(
    settings: Settings, paths: FeaturePaths, spec: SnapshotSpec, out: Path, keep: tuple[dt.date, ...]
) -> None:
    """The snapshots of `spec` on the Spark engine (imported here: the default install has no pyspark)."""
    from features.spark.session import spark_session
    from features.spark.snapshots import write_snapshots as spark_write_snapshots

    spark_write_snapshots(
        spark_session(settings.features.spark),
        paths.clean_events,
        paths.clean_customers,
        spec,
        out,
        keep_from=paths.snapshots if keep else None,
        keep_dates=keep,
    )


def _spark_labels(settings: Settings, paths: FeaturePaths, last: dt.date) -> pd.DataFrame:
    """The labels of the snapshots' keys on the Spark engine."""
    from features.spark.labels import compute_labels as spark_labels
    from features.spark.session import spark_session

    return spark_labels(
        spark_session(settings.features.spark),
        paths.snapshots,
        paths.clean_customers,
        paths.clean_events,
        kind=settings.labels.kind,
        horizon_days=settings.labels.horizon_days,
        last_event_day=last,
        activity_event_types=settings.labels.activity_event_types,
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


def historical_features(
    store: FeatureStore, entity_df: pd.DataFrame, service: str = names.FEATURE_SERVICE
) -> pd.DataFrame:
    """Point-in-time correct feature rows through Feast: one row per entity row.

    Args:
        store: The Feast store with the churn definitions applied.
        entity_df: Columns customer_id and event_timestamp (UTC), plus any others (e.g. the
            label), which are passed through.
        service: The feature service naming the features (and on-demand features) to join.

    Returns:
        `entity_df`'s rows, sorted by time then customer, with the service's features; a
        customer without a snapshot within the TTL before its timestamp gets missing values.
    """
    keys = [names.EVENT_TIMESTAMP, names.CUSTOMER_ID]
    # Sorted first (the labels are written sorted): the DuckDB engine's offline store
    # (`features.feast_offline`) keeps the entity rows' order, so its result needs no sort of all
    # the feature columns afterwards; another store's may.
    ordered = time_ordered(entity_df)
    job = store.get_historical_features(entity_df=ordered, features=store.get_feature_service(service))
    # to_arrow, not to_df: to_df adds a copy of every column (its reset_index) to the Arrow conversion.
    # One block per column (split_blocks): pandas would otherwise copy the float columns into one
    # 2-D block, and every row selection afterwards (the split) copies a column at a time faster.
    # The conversion allocates from the system allocator: with Arrow's default (mimalloc) it was
    # much slower on the training bench's rows (README, "Training at scale").
    frame = job.to_arrow().to_pandas(split_blocks=True, memory_pool=pa.system_memory_pool())
    if not _same_keys(frame, ordered, keys):
        frame = frame.sort_values(keys, kind="stable", ignore_index=True)
    return frame


def _same_keys(frame: pd.DataFrame, other: pd.DataFrame, keys: list[str]) -> bool:
    """Whether `frame` and `other` have the same `keys` values, row by row (timestamps in any unit)."""
    if len(frame) != len(other):
        return False
    for key in keys:
        a, b = frame[key].reset_index(drop=True), other[key].reset_index(drop=True)
        if isinstance(a.dtype, pd.DatetimeTZDtype) and isinstance(b.dtype, pd.DatetimeTZDtype):
            # As int64 nanoseconds (NaT is one value there): `equals` compares Timestamp objects.
            same = np.array_equal(pd.DatetimeIndex(a).as_unit("ns").asi8, pd.DatetimeIndex(b).as_unit("ns").asi8)
        else:
            same = a.equals(b)
        if not same:
            return False
    return True


def training_set(settings: Settings, service: str = names.FEATURE_SERVICE) -> pd.DataFrame:
    """The labelled training set through Feast: every labelled (customer, observation date) with
    the service's features as they were at that date.

    Raises:
        FileNotFoundError: The labels do not exist yet (`churn features build`).
    """
    paths = FeaturePaths.of(settings)
    if not paths.labels.exists():
        raise FileNotFoundError(f"{paths.labels} does not exist: run `churn features build` and `apply` first")
    return historical_features(open_store(settings), pd.read_parquet(paths.labels), service)


def latest_features(settings: Settings, service: str = names.FEATURE_SERVICE) -> pd.DataFrame:
    """Every customer of the newest snapshot with the feature service's features (through Feast),
    e.g. batch monitoring's current data."""
    keys = latest_snapshot(settings, columns=[names.CUSTOMER_ID])
    return historical_features(open_store(settings), keys, service)


def open_store(settings: Settings) -> FeatureStore:
    """A Feast store for the settings profile (registry and online store from the config)."""
    settings.path("feast").mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=repo_config(settings))


def snapshot_schema(snapshots: Path) -> dict[str, str]:
    """Feature name -> "string" or "double" for a snapshots Parquet file, read from its schema only."""
    schema = pq.read_schema(snapshots)
    return {
        f.name: "string" if pa.types.is_string(f.type) or pa.types.is_large_string(f.type) else "double"
        for f in schema
        if f.name not in (names.CUSTOMER_ID, names.EVENT_TIMESTAMP)
    }


def snapshot_features(snapshots: Path) -> list[str]:
    """Feature names of a snapshots Parquet file, read from its schema only."""
    return list(snapshot_schema(snapshots))


def apply_features(settings: Settings) -> list[str]:
    """Register entity, source, views and feature service in the Feast registry.

    Returns:
        The names of the objects applied.
    """
    paths = FeaturePaths.of(settings)
    if not paths.snapshots.exists():
        raise FileNotFoundError(f"{paths.snapshots} does not exist: run `churn features build` first")
    definitions = build_definitions(
        paths.snapshots, snapshot_schema(paths.snapshots), settings.feast.ttl_days, settings.features.engine
    )
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
    start_default, end_default = _snapshot_span(settings)
    start = start or start_default
    end = end or end_default
    open_store(settings).materialize(start_date=start, end_date=end)
    return start, end


def materialize_incremental(settings: Settings, end: dt.datetime | None = None) -> dt.datetime:
    """Load what is new since the last materialization (Feast remembers it per view) up to `end`.

    Run `materialize` once first: a first incremental run would start at now minus the TTL.
    Default `end`: just after the newest snapshot.
    """
    end = end or _snapshot_span(settings)[1]
    open_store(settings).materialize_incremental(end_date=end)
    return end


def _snapshot_span(settings: Settings) -> tuple[dt.datetime, dt.datetime]:
    """Just before the oldest and just after the newest snapshot timestamp."""
    paths = FeaturePaths.of(settings)
    if not paths.snapshots.exists():
        raise FileNotFoundError(f"{paths.snapshots} does not exist: run `churn features build` first")
    stamps = pd.read_parquet(paths.snapshots, columns=[names.EVENT_TIMESTAMP])[names.EVENT_TIMESTAMP]
    second = dt.timedelta(seconds=1)
    return stamps.min().to_pydatetime() - second, stamps.max().to_pydatetime() + second
