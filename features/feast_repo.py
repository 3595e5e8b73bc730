"""Feast declarations for the behaviour snapshots, and the repo config built from settings.

The objects are built by functions because the feature list follows from the data: a dataset
without complaints has no `service_complaints_*` features. `feature_repo/churn_repo.py` calls
`build_definitions` so that `feast apply` inside `feature_repo/` declares the same objects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FunctionType
from typing import Any

import numpy as np
import pandas as pd
from feast import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    OnDemandFeatureView,
    RepoConfig,
    ValueType,
)
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, String

from core import names
from core.settings import Settings
from features.feast_adapter import spark_source
from features.snapshots.spec import view_of

OFFLINE_STORE = "features.feast_offline.ChurnDuckDBOfflineStore"
"""The DuckDB engine's offline store: Feast's DuckDB store with ASOF joins for training sets
(`features.feast_offline`)."""
RHYTHM_FEATURE = "purchases_overdue_ratio"
RHYTHM_SINCE = "purchases_days_since_last"
RHYTHM_GAP_PREFIX = "purchases_gap_mean_"


def purchases_rhythm(inputs: pd.DataFrame) -> pd.DataFrame:
    """Days since the last purchase divided by the customer's mean gap between purchases.

    Above 1 the customer is overdue by their own rhythm (3 = three usual gaps without buying);
    missing when the customer has no gap history. Feast stores this function (with dill) in the
    registry and runs it for training sets and online lookups alike.
    """
    gap_column = next(c for c in inputs.columns if c.startswith("purchases_gap_mean_"))
    # NumPy on the columns, not pandas operations: the same numbers, and a quarter of the time for
    # the one row of an online lookup (pandas' per-operation overhead was a third of the online read).
    gap = inputs[gap_column].to_numpy(dtype=np.float64, na_value=np.nan)
    since = inputs["purchases_days_since_last"].to_numpy(dtype=np.float64, na_value=np.nan)
    ratio = np.divide(since, gap, out=np.full(len(gap), np.nan), where=gap > 0)
    return pd.DataFrame({"purchases_overdue_ratio": ratio}, index=inputs.index)


def purchases_rhythm_columns(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`purchases_rhythm` on float columns (NaN missing), without pandas: what online reads run.

    A lookup of one customer builds no DataFrame for this ratio: two DataFrames and their column
    access were a large share of a /score request's online read. The same numbers as
    `purchases_rhythm` (tests/integration/test_features_pipeline.py compares them); `features.online` calls
    this only while the registry holds `purchases_rhythm` as this module defines it.
    """
    gap = next(v for k, v in columns.items() if k.startswith(RHYTHM_GAP_PREFIX))
    since = columns[RHYTHM_SINCE]
    return {RHYTHM_FEATURE: np.divide(since, gap, out=np.full(len(gap), np.nan), where=gap > 0)}


ONLINE_KERNELS: dict[str, tuple[Callable[..., Any], Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]]] = {
    names.RHYTHM_VIEW: (purchases_rhythm, purchases_rhythm_columns),
}
"""On-demand view -> (the pandas function Feast registers, the same on float columns).
`features.online.OnlineReader` runs the second when the registry holds the first unchanged."""


def build_definitions(
    snapshots_path: Path | str, schema: Mapping[str, str], ttl_days: int, engine: str = "duckdb"
) -> list[Any]:
    """Entity, source, one feature view per theme, an on-demand view and the feature services.

    Args:
        snapshots_path: The Parquet file of behaviour snapshots.
        schema: Feature column name -> "string" or "double"; each feature goes in the view its
            name prefix names.
        ttl_days: How far back from an entity timestamp a snapshot may be used.
        engine: `features.engine`: "duckdb" declares a `FileSource` (DuckDB offline store), "spark"
            a `SparkSource` over the same file (Feast's Spark offline store, `repo_config`).

    Returns:
        Feast objects ready for `FeatureStore.apply`.
    """
    customer = Entity(
        name=names.ENTITY,
        join_keys=[names.CUSTOMER_ID],
        value_type=ValueType.STRING,
        description="A CRM customer; one snapshot row per customer per observation date.",
    )
    source = _snapshot_source(str(snapshots_path), engine)
    grouped: dict[str, list[str]] = {}
    for feature in schema:
        grouped.setdefault(view_of(feature), []).append(feature)
    views = {
        view: FeatureView(
            name=view,
            entities=[customer],
            ttl=dt.timedelta(days=ttl_days),
            schema=[Field(name=names.CUSTOMER_ID, dtype=String)]
            + [Field(name=f, dtype=String if schema[f] == "string" else Float64) for f in grouped[view]],
            source=source,
            online=True,
            description=f"Customer {view} behaviour at the observation date.",
        )
        for view in names.FEATURE_VIEWS
        if view in grouped
    }
    extra: list[Any] = []
    gaps = sorted(
        (f for f in schema if f.startswith(RHYTHM_GAP_PREFIX)), key=lambda f: int(f[len(RHYTHM_GAP_PREFIX) : -1])
    )
    if RHYTHM_SINCE in schema and gaps:
        extra.append(_rhythm_view(views[names.VIEW_PURCHASES], gaps[-1]))
    static = {f for f, kind in schema.items() if kind == "string"}
    behaviour_views: list[Any] = [
        view if not static & set(grouped[name]) else view[[f for f in grouped[name] if f not in static]]
        for name, view in views.items()
        if set(grouped[name]) - static
    ]
    services = [
        FeatureService(
            name=names.FEATURE_SERVICE,
            features=[*views.values(), *extra],
            description="Every behaviour feature, RFM scores, tenure and static attributes: the default churn model.",
        ),
        FeatureService(
            name=names.FEATURE_SERVICE_BEHAVIOUR,
            features=[*behaviour_views, *extra],
            description="Behaviour only, without static customer attributes (plan, region, ...).",
        ),
    ]
    return [customer, source, *views.values(), *extra, *services]


def _snapshot_source(path: str, engine: str) -> Any:
    description = "Behaviour snapshots computed by features/snapshots/ from the event log."
    if engine == "spark":
        return spark_source(
            name=names.SNAPSHOT_SOURCE,
            path=path,
            file_format="parquet",
            timestamp_field=names.EVENT_TIMESTAMP,
            description=description,
        )
    return FileSource(
        name=names.SNAPSHOT_SOURCE, path=path, timestamp_field=names.EVENT_TIMESTAMP, description=description
    )


def _rhythm_view(purchases: FeatureView, gap_feature: str) -> OnDemandFeatureView:
    """The on-demand view computing `purchases_overdue_ratio` at request time and in training sets."""
    view: OnDemandFeatureView = on_demand_feature_view(
        name=names.RHYTHM_VIEW,
        sources=[purchases[[RHYTHM_SINCE, gap_feature]]],
        schema=[Field(name=RHYTHM_FEATURE, dtype=Float64)],
        mode="pandas",
        description="Days since the last purchase relative to the customer's mean gap between purchases.",
    )(_fresh_copy(purchases_rhythm))
    return view


def _fresh_copy(function: Callable[..., Any]) -> FunctionType:
    """A copy of a module-level function for Feast's ODFV decorator, which rewrites the
    function's `__module__` to "__main__" (to pickle it by value) and so would break reading its
    source on the next `build_definitions` call in the same process."""
    assert isinstance(function, FunctionType)
    copy = FunctionType(function.__code__, function.__globals__, function.__name__, function.__defaults__)
    copy.__doc__ = function.__doc__
    return copy


def repo_config(settings: Settings, repo_path: Path | None = None) -> RepoConfig:
    """The Feast repo config for a profile: file registry + SQLite, or SQL registry + Redis; the
    DuckDB offline store (`OFFLINE_STORE`), or Spark's with `features.engine: spark` (its session from
    `features.spark`)."""
    feast = settings.feast
    registry: dict[str, Any]
    if "://" in feast.registry:
        registry = {"registry_type": "sql", "path": feast.registry, "cache_ttl_seconds": 60}
    else:
        registry = {"registry_type": "file", "path": str(settings.path(feast.registry)), "cache_ttl_seconds": 60}
    online: dict[str, Any]
    if feast.online_store.type == "redis":
        if not feast.online_store.connection_string:
            raise ValueError(
                "feast.online_store.connection_string is required for a redis online store "
                "(set it in the config or CHURN_FEAST_ONLINE_STORE, e.g. 127.0.0.1:6379)"
            )
        online = {"type": "redis", "connection_string": feast.online_store.connection_string}
    else:
        online = {"type": "sqlite", "path": str(settings.path(feast.online_store.path))}
    return RepoConfig(
        project=feast.project,
        provider="local",
        registry=registry,
        online_store=online,
        offline_store=_offline_store(settings),
        entity_key_serialization_version=3,
        repo_path=repo_path or settings.path("feast"),
    )


def _offline_store(settings: Settings) -> dict[str, Any]:
    if settings.features.engine != "spark":
        return {"type": OFFLINE_STORE}
    spark = settings.features.spark
    # Used when Feast starts the session; a session the feature build started in this process is reused.
    conf = {
        "spark.master": spark.master,
        "spark.driver.memory": spark.driver_memory,
        "spark.sql.shuffle.partitions": str(spark.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false",
        **spark.conf,
    }
    return {"type": "spark", "spark_conf": conf}
