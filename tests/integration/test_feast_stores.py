"""Feast on both profiles: the embedded one (file registry + SQLite) and the scale-out one
(SQL registry on PostgreSQL + Redis online store), each applied, materialized and read back."""

from __future__ import annotations

import inspect
import math
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from feast import FeatureStore
from services_fixtures import drop_feast_project

from core import names
from core.io import write_atomic_parquet
from core.settings import DEFAULT_CONFIG, Settings, load_settings, parse_settings
from features.feast_adapter import OnlineStoreWriter
from features.feast_repo import OFFLINE_STORE, purchases_rhythm, purchases_rhythm_columns
from features.online import OnlineReader, _kernel
from features.paths import FeaturePaths
from features.pipeline import apply_features, historical_features, materialize, open_store

REPO = Path(__file__).resolve().parents[2]


def _snapshots(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.to_datetime(["2025-03-01", "2025-03-08"]).tz_localize("UTC")
    rows = []
    for d in dates:
        for i in range(20):
            rows.append(
                {
                    names.CUSTOMER_ID: f"C{i:03d}",
                    names.EVENT_TIMESTAMP: d,
                    "purchases_count_30d": float(rng.integers(0, 9)),
                    "engagement_visits_30d": float(rng.integers(0, 30)),
                    "service_complaints_30d": float(rng.integers(0, 3)),
                    "profile_tenure_days": float(100 + i),
                    # The sources of the on-demand view purchases_overdue_ratio: a zero gap and a
                    # missing one give a missing ratio.
                    "purchases_days_since_last": float(rng.integers(0, 60)) if i != 4 else math.nan,
                    "purchases_gap_mean_90d": float(i % 5) * 3.5,
                    "profile_plan": ["basic", "plus", None][i % 3],
                }
            )
    return pd.DataFrame(rows)


def _roundtrip(settings: Settings) -> None:
    frame = _snapshots(seed=5)
    write_atomic_parquet(frame, FeaturePaths.of(settings).snapshots)
    applied = apply_features(settings)
    assert set(applied) >= {"customer", "purchases", "engagement", "service", "profile", names.FEATURE_SERVICE}
    materialize(settings)
    store = open_store(settings)
    online = store.get_online_features(
        features=store.get_feature_service(names.FEATURE_SERVICE),
        entity_rows=[{names.CUSTOMER_ID: "C003"}, {names.CUSTOMER_ID: "missing"}],
    ).to_df()
    latest = frame[
        (frame[names.CUSTOMER_ID] == "C003") & (frame[names.EVENT_TIMESTAMP] == frame[names.EVENT_TIMESTAMP].max())
    ]
    # The online store serves the newest snapshot, and nothing for an unknown customer.
    for col in ("purchases_count_30d", "engagement_visits_30d", "service_complaints_30d", "profile_tenure_days"):
        assert online.loc[0, col] == latest[col].iloc[0]
    assert online.iloc[1][["purchases_count_30d", "profile_tenure_days"]].isna().all()
    _reader_matches_feast(store, frame)
    _written_rows_read_as_the_store_gives_them(store, frame)


def _written_rows_read_as_the_store_gives_them(store: FeatureStore, frame: pd.DataFrame) -> None:
    """What the writer returns, through `OnlineReader.rows_of`, is what reading the store gives."""
    newest = frame[frame[names.EVENT_TIMESTAMP] == frame[names.EVENT_TIMESTAMP].max()].copy()
    newest[names.EVENT_TIMESTAMP] = newest[names.EVENT_TIMESTAMP] + pd.Timedelta(days=1)
    newest["purchases_count_30d"] = newest["purchases_count_30d"] + 1.0
    written = OnlineStoreWriter(store, store.list_feature_views()).write(newest)
    reader = OnlineReader(store, names.FEATURE_SERVICE)
    ids = sorted(newest[names.CUSTOMER_ID].astype(str))[::-1]
    mine, read = reader.rows_of(written, ids), reader.read(ids)
    assert mine is not None and mine.columns == read.columns and mine.found == read.found == [True] * len(ids)
    assert reader.rows_of(written, [*ids, "missing"]) is None  # the store's rows for those: read them


def _reader_matches_feast(store: FeatureStore, frame: pd.DataFrame) -> None:
    """The serving path's direct reader gives what `get_online_features` gives, value for value."""
    service = store.get_feature_service(names.FEATURE_SERVICE)
    ids = [*sorted(frame[names.CUSTOMER_ID].unique()), "missing"]
    expected = store.get_online_features(features=service, entity_rows=[{names.CUSTOMER_ID: c} for c in ids]).to_df(
        include_event_timestamps=True
    )
    reader = OnlineReader(store, names.FEATURE_SERVICE)
    assert [kernel for *_, kernel in reader.on_demand] == [purchases_rhythm_columns]  # the registry's function
    _reader_gives_feasts_values(reader, ids, expected, frame)
    # The on-demand view run as Feast runs it (a registry holding other code) gives the same.
    reader.on_demand = [(*view, None) for *view, _ in reader.on_demand]
    _reader_gives_feasts_values(reader, ids, expected, frame)


def _reader_gives_feasts_values(
    reader: OnlineReader, ids: list[str], expected: pd.DataFrame, frame: pd.DataFrame
) -> None:
    got = reader.read(ids)
    assert "purchases_overdue_ratio" in reader.features  # the on-demand view is computed too
    assert got.customer_ids == ids and got.found == [True] * (len(ids) - 1) + [False]
    for feature in reader.features:
        for i, value in enumerate(got.columns[feature]):
            want = expected[feature].iloc[i]
            if want is None or (isinstance(want, float) and math.isnan(want)):
                assert value is None, (feature, ids[i], value)
            else:
                assert value == pytest.approx(want) if isinstance(value, float) else value == want, (feature, ids[i])
    newest = frame[names.EVENT_TIMESTAMP].max().to_pydatetime()
    assert got.snapshot_at == [newest] * (len(ids) - 1) + [None]
    ratio = got.columns["purchases_overdue_ratio"]
    assert ratio[ids.index("C004")] is None and ratio[ids.index("C000")] is None  # missing since, zero gap
    rows = got.rows(["purchases_count_30d", "not_served"], [0, len(ids) - 1])
    assert rows == {
        names.CUSTOMER_ID: [ids[0], "missing"],
        "purchases_count_30d": [got.columns["purchases_count_30d"][0], None],
        "not_served": [None, None],
    }


def test_only_the_registered_function_unchanged_gets_its_numpy_twin() -> None:
    source = inspect.getsource(purchases_rhythm)
    assert _kernel(names.RHYTHM_VIEW, source) is purchases_rhythm_columns
    changed = source.replace("gap > 0", "gap >= 0")  # a registry from other code
    assert _kernel(names.RHYTHM_VIEW, changed) is None
    assert _kernel(names.RHYTHM_VIEW, None) is None
    assert _kernel("another_view", source) is None


def test_embedded_profile_file_registry_and_sqlite(tmp_path: Path) -> None:
    settings = parse_settings({"workspace": str(tmp_path)}, "test", env={})
    _roundtrip(settings)
    assert (tmp_path / "feast/registry.db").exists()
    assert (tmp_path / "feast/online_store.db").exists()


@pytest.mark.services
def test_services_profile_postgres_registry_and_redis(
    tmp_path: Path, postgres_url: str, redis_address: str, spark: Any
) -> None:
    base = load_settings(REPO / "configs/services.yaml", env={})
    assert base.feast.online_store.type == "redis" and base.feast.registry.startswith("postgresql")
    assert base.features.engine == "spark"  # materialized from Feast's Spark offline store
    project = f"churn_test_{uuid.uuid4().hex[:8]}"
    tree = base.model_dump(mode="json")
    tree["workspace"] = str(tmp_path)
    tree["feast"].update(project=project, registry=postgres_url)
    tree["feast"]["online_store"]["connection_string"] = redis_address
    settings = parse_settings(tree, "test", env={})
    try:
        _roundtrip(settings)
        # The registry lives in PostgreSQL, not in a file in the workspace.
        assert not (tmp_path / "feast/registry.db").exists()
        assert open_store(settings).get_feature_service(names.FEATURE_SERVICE).name == names.FEATURE_SERVICE
    finally:
        drop_feast_project(settings)


def test_default_config_is_embedded() -> None:
    settings = load_settings(DEFAULT_CONFIG, env={})
    assert settings.feast.online_store.type == "sqlite" and "://" not in settings.feast.registry


def test_spark_offline_store_retrieves_the_default_stores_training_rows(tmp_path: Path, spark: Any) -> None:
    """`features.engine: spark` declares a SparkSource and Feast's Spark offline store: the same
    point-in-time rows as the embedded DuckDB/file store on the same snapshots."""
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

    frame = _snapshots(seed=5)
    stamps = pd.to_datetime(["2025-03-01", "2025-03-05", "2025-03-09", "2025-04-01"]).tz_localize("UTC")
    entity = pd.DataFrame(
        [
            {names.CUSTOMER_ID: f"C{i:03d}", names.EVENT_TIMESTAMP: t, names.LABEL: i % 2}
            for t in stamps
            for i in (0, 3, 4, 7, 25)
        ]
    )
    got: dict[str, pd.DataFrame] = {}
    for engine in ("duckdb", "spark"):
        settings = parse_settings({"workspace": str(tmp_path / engine), "features": {"engine": engine}}, "test", env={})
        write_atomic_parquet(frame, FeaturePaths.of(settings).snapshots)
        apply_features(settings)
        store = open_store(settings)
        source = store.get_data_source(names.SNAPSHOT_SOURCE)
        assert isinstance(source, SparkSource) == (engine == "spark")
        assert store.config.offline_store.type == ("spark" if engine == "spark" else OFFLINE_STORE)
        got[engine] = historical_features(store, entity)
    expected, spark_rows = got["duckdb"], got["spark"]
    assert len(expected) == len(entity) and expected["purchases_count_30d"].notna().any()
    assert expected["purchases_count_30d"].isna().any()  # before the first snapshot, after the TTL, unknown
    assert sorted(spark_rows.columns) == sorted(expected.columns)
    spark_rows = spark_rows[expected.columns]
    for column in expected.columns:
        a, b = expected[column], spark_rows[column]
        if column == names.EVENT_TIMESTAMP:
            assert (pd.to_datetime(a, utc=True) == pd.to_datetime(b, utc=True)).all()
        elif a.dtype.kind == "f" or b.dtype.kind == "f":
            np.testing.assert_allclose(b.to_numpy(dtype=float), a.to_numpy(dtype=float), err_msg=column)
        else:
            assert (
                a.astype(object).where(a.notna(), None).tolist() == b.astype(object).where(b.notna(), None).tolist()
            ), column
