"""Feast declarations for the behaviour snapshots, and the repo config built from settings.

The objects are built by functions because the feature list follows from the data: a dataset
without complaints has no `service_complaints_*` features. `feature_repo/churn_repo.py` calls
`build_definitions` so that `feast apply` inside `feature_repo/` declares the same objects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from feast import Entity, FeatureService, FeatureView, Field, FileSource, RepoConfig, ValueType
from feast.types import Float64, String

from churn import names
from churn.settings import Settings
from features.compute import view_of


def build_definitions(snapshots_path: Path | str, features: Sequence[str], ttl_days: int) -> list[Any]:
    """Entity, source, one feature view per theme and the model's feature service.

    Args:
        snapshots_path: The Parquet file of behaviour snapshots.
        features: Feature column names; each is put in the view its name prefix names.
        ttl_days: How far back from an entity timestamp a snapshot may be used.

    Returns:
        Feast objects ready for `FeatureStore.apply`.
    """
    customer = Entity(
        name=names.ENTITY,
        join_keys=[names.CUSTOMER_ID],
        value_type=ValueType.STRING,
        description="A CRM customer; one snapshot row per customer per observation date.",
    )
    source = FileSource(
        name=names.SNAPSHOT_SOURCE,
        path=str(snapshots_path),
        timestamp_field=names.EVENT_TIMESTAMP,
        description="Behaviour snapshots computed by features/compute.py from the event log.",
    )
    grouped: dict[str, list[str]] = {}
    for feature in features:
        grouped.setdefault(view_of(feature), []).append(feature)
    views: list[Any] = [
        FeatureView(
            name=view,
            entities=[customer],
            ttl=dt.timedelta(days=ttl_days),
            schema=[Field(name=names.CUSTOMER_ID, dtype=String)]
            + [Field(name=f, dtype=Float64) for f in grouped[view]],
            source=source,
            online=True,
            description=f"Customer {view} behaviour at the observation date.",
        )
        for view in names.FEATURE_VIEWS
        if view in grouped
    ]
    service = FeatureService(
        name=names.FEATURE_SERVICE,
        features=views,
        description="Every behaviour feature the churn model trains on and serving reads.",
    )
    return [customer, source, *views, service]


def repo_config(settings: Settings, repo_path: Path | None = None) -> RepoConfig:
    """The Feast repo config for a profile: file registry + SQLite, or SQL registry + Redis."""
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
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        repo_path=repo_path or settings.path("feast"),
    )
