"""The ASOF-join offline store (`features.feast_offline`) against Feast's stock DuckDB store on the same repo.

Both stores answer the same `get_historical_features` request; the results must be equal, column for
column and type for type. A Feast upgrade that changes either side (the stock join's rules or types,
or the contract the ASOF store relies on) fails here.
"""

from __future__ import annotations

import datetime as dt
import inspect
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from feast import FeatureStore
from feast.infra.offline_stores.duckdb import DuckDBOfflineStore

from core import names
from core.io import write_atomic_parquet
from core.settings import Settings, parse_settings
from features import feast_repo
from features.feast_offline import (
    AsofRetrievalJob,
    ChurnDuckDBOfflineStore,
    ReadingOnly,
    SourceJoin,
    asof_join,
)
from features.paths import FeaturePaths
from features.pipeline import apply_features, historical_features, open_store

TTL_DAYS = 10
DAY_1, DAY_2 = pd.Timestamp("2025-03-01", tz="UTC"), pd.Timestamp("2025-03-08", tz="UTC")


def _snapshots() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for day in (DAY_1, DAY_2):
        for i in range(12):
            if i == 7 and day == DAY_2:
                continue  # C007: only the first snapshot
            rows.append(
                {
                    names.CUSTOMER_ID: f"C{i:03d}",
                    names.EVENT_TIMESTAMP: day,
                    "purchases_count_30d": float(rng.integers(0, 9)),
                    "purchases_days_since_last": float(rng.integers(0, 60)) if i != 4 else math.nan,
                    "purchases_gap_mean_90d": float(i % 5) * 3.5,
                    "engagement_visits_30d": float(rng.integers(0, 30)) if i != 5 else math.nan,
                    "profile_tenure_days": float(100 + i),
                    "profile_plan": ["basic", "plus", None][i % 3],
                }
            )
    return pd.DataFrame(rows)


def _entity_rows() -> pd.DataFrame:
    at = [
        ("C000", DAY_2),  # exactly at a snapshot
        ("C001", DAY_1 + pd.Timedelta(days=3)),  # between the snapshots: the first one's values
        ("C002", DAY_1 - pd.Timedelta(days=1)),  # before any snapshot: missing
        ("C007", DAY_1 + pd.Timedelta(days=TTL_DAYS, hours=1)),  # newest snapshot older than the TTL: missing
        ("C007", DAY_1 + pd.Timedelta(days=TTL_DAYS)),  # exactly at the TTL's edge: still found
        ("C003", DAY_2 + pd.Timedelta(days=TTL_DAYS + 1)),  # every snapshot outside the TTL: missing
        ("C004", DAY_2 + pd.Timedelta(hours=5)),  # a missing source of the on-demand ratio
        ("C005", DAY_2 + pd.Timedelta(days=2)),  # a missing feature
        ("nobody", DAY_2),  # an unknown customer: missing
        ("C006", DAY_2 + pd.Timedelta(days=1)),
        ("C006", DAY_2 + pd.Timedelta(days=1)),  # an exact duplicate: one output row each
        ("C008", DAY_1),
    ]
    rng = np.random.default_rng(4)
    return pd.DataFrame(
        {
            names.CUSTOMER_ID: [c for c, _ in at],
            names.EVENT_TIMESTAMP: pd.to_datetime([t for _, t in at], utc=True),
            names.LABEL: rng.integers(0, 2, len(at)),
        }
    )


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A workspace with the snapshots above applied to Feast (TTL `TTL_DAYS`)."""
    root = tmp_path_factory.mktemp("offline")
    settings = parse_settings({"workspace": str(root), "feast": {"ttl_days": TTL_DAYS}}, "test", env={})
    write_atomic_parquet(_snapshots(), FeaturePaths.of(settings).snapshots)
    apply_features(settings)
    return settings


def _stock_store(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> FeatureStore:
    with monkeypatch.context() as patch:
        patch.setattr(feast_repo, "_offline_store", lambda _: {"type": "duckdb"})
        return open_store(settings)


def _retrieve(store: FeatureStore, entity: pd.DataFrame, service: str, full_names: bool = False) -> pd.DataFrame:
    job = store.get_historical_features(
        entity_df=entity, features=store.get_feature_service(service), full_feature_names=full_names
    )
    keys = [names.EVENT_TIMESTAMP, names.CUSTOMER_ID, names.LABEL]
    return job.to_df().sort_values(keys, kind="stable", ignore_index=True)


@pytest.mark.parametrize("service", [names.FEATURE_SERVICE, names.FEATURE_SERVICE_BEHAVIOUR])
@pytest.mark.parametrize("full_names", [False, True])
def test_asof_store_returns_what_feasts_duckdb_store_returns(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, service: str, full_names: bool
) -> None:
    fast, stock = open_store(settings), _stock_store(settings, monkeypatch)
    assert (fast.config.offline_store.type, stock.config.offline_store.type) == (feast_repo.OFFLINE_STORE, "duckdb")
    entity = _entity_rows()
    job = fast.get_historical_features(entity_df=entity, features=fast.get_feature_service(service))
    assert isinstance(job, AsofRetrievalJob)  # the fast path answered, not the fallback
    got, want = _retrieve(fast, entity, service, full_names), _retrieve(stock, entity, service, full_names)
    pd.testing.assert_frame_equal(got, want)
    assert len(got) == len(entity)


def test_point_in_time_rules(settings: Settings) -> None:
    got = historical_features(open_store(settings), _entity_rows())
    snaps = _snapshots().set_index([names.CUSTOMER_ID, names.EVENT_TIMESTAMP])

    def row(customer: str, at: pd.Timestamp) -> pd.DataFrame:
        return got[(got[names.CUSTOMER_ID] == customer) & (got[names.EVENT_TIMESTAMP] == at)]

    between = row("C001", DAY_1 + pd.Timedelta(days=3))
    assert between["purchases_count_30d"].item() == snaps.loc[("C001", DAY_1), "purchases_count_30d"]
    edge = row("C007", DAY_1 + pd.Timedelta(days=TTL_DAYS))
    assert edge["profile_tenure_days"].item() == snaps.loc[("C007", DAY_1), "profile_tenure_days"]
    for customer, at in [
        ("C002", DAY_1 - pd.Timedelta(days=1)),
        ("C007", DAY_1 + pd.Timedelta(days=TTL_DAYS, hours=1)),
        ("C003", DAY_2 + pd.Timedelta(days=TTL_DAYS + 1)),
        ("nobody", DAY_2),
    ]:
        missing = row(customer, at)
        assert len(missing) == 1 and missing[["purchases_count_30d", "profile_tenure_days"]].isna().all(axis=None)
        assert missing["profile_plan"].isna().item()
    assert len(row("C006", DAY_2 + pd.Timedelta(days=1))) == 2
    stamps = list(zip(got[names.EVENT_TIMESTAMP], got[names.CUSTOMER_ID], strict=True))
    assert stamps == sorted(stamps)  # sorted by time, then customer


def test_requests_outside_the_join_go_to_feasts_store(settings: Settings) -> None:
    store = open_store(settings)
    entity = _entity_rows().rename(columns={names.EVENT_TIMESTAMP: "observed_at"})  # Feast infers the column
    job = store.get_historical_features(entity_df=entity, features=store.get_feature_service(names.FEATURE_SERVICE))
    assert not isinstance(job, AsofRetrievalJob)
    got = job.to_df()
    assert len(got) == len(entity) and "purchases_count_30d" in got.columns


def test_the_stock_store_contract_is_the_one_subclassed() -> None:
    # The ASOF store overrides this static method with the same parameters, and the stock config
    # class still takes `type` (how Feast finds ChurnDuckDBOfflineStoreConfig).
    ours = inspect.signature(ChurnDuckDBOfflineStore.get_historical_features)
    theirs = inspect.signature(DuckDBOfflineStore.get_historical_features)
    assert list(ours.parameters) == list(theirs.parameters)
    assert isinstance(inspect.getattr_static(DuckDBOfflineStore, "get_historical_features"), staticmethod)
    assert f"{ChurnDuckDBOfflineStore.__module__}.{ChurnDuckDBOfflineStore.__name__}" == feast_repo.OFFLINE_STORE


def test_on_demand_views_transform_only_the_columns_they_read(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Feast's to_arrow still calls transform_arrow of each view the job lists, with the joined table;
    # the job's views pass on only their inputs, and the on-demand feature still comes out.
    store = open_store(settings)
    job = store.get_historical_features(
        entity_df=_entity_rows(), features=store.get_feature_service(names.FEATURE_SERVICE)
    )
    assert isinstance(job, AsofRetrievalJob)
    given: list[list[str]] = []
    for view in job._on_demand:
        inner = view.transform_arrow

        def recording(table: pa.Table, full_feature_names: bool = False, inner: Any = inner) -> pa.Table:
            given.append(table.column_names)
            return inner(table, full_feature_names)

        monkeypatch.setattr(view, "transform_arrow", recording)
    table = job.to_arrow()
    assert given and all(set(columns) <= ReadingOnly(job._on_demand[0]).reads for columns in given)
    assert len(given[0]) == 2  # the days since the last purchase and the mean gap
    assert table[feast_repo.RHYTHM_FEATURE].null_count < table.num_rows


def _two_sources(tmp_path: Path, duplicate: bool = False) -> list[SourceJoin]:
    """Two Parquet sources of other dates, one with a TTL; `duplicate`: the first has two rows at one key and time."""
    days = [DAY_1 + pd.Timedelta(days=d) for d in range(0, 40, 3)]
    rng = np.random.default_rng(5)
    weekly = pd.DataFrame(
        {
            "cid": [f"C{i % 7}" for i in range(70)],
            "at": [days[i % len(days)] for i in range(70)],
            "spend": rng.normal(size=70),
            "plan": rng.choice(["a", "b"], 70),
        }
    ).drop_duplicates(["cid", "at"])
    if duplicate:
        weekly = pd.concat([weekly, weekly.head(1)])
    daily = pd.DataFrame(
        {"cid": [f"C{i % 5}" for i in range(50)], "at": [DAY_1 + pd.Timedelta(days=i // 5) for i in range(50)]}
    ).assign(visits=rng.integers(0, 9, 50).astype(float))
    weekly.to_parquet(tmp_path / "weekly.parquet")
    daily.to_parquet(tmp_path / "daily.parquet")
    keys = (("cid", names.CUSTOMER_ID),)
    return [
        SourceJoin(str(tmp_path / "weekly.parquet"), "at", keys, None, (("spend", "spend"), ("plan", "plan"))),
        SourceJoin(str(tmp_path / "daily.parquet"), "at", keys, dt.timedelta(days=2), (("visits", "visits_2d"),)),
    ]


def _entity_of_many_times() -> pd.DataFrame:
    rng = np.random.default_rng(6)
    at = DAY_1 + pd.to_timedelta(rng.integers(-3 * 24, 45 * 24, 300), unit="h")
    return pd.DataFrame({names.CUSTOMER_ID: rng.choice([f"C{i}" for i in range(8)], 300), names.EVENT_TIMESTAMP: at})


def test_the_narrow_join_gives_what_the_direct_asof_join_gives(tmp_path: Path) -> None:
    joins, entity = _two_sources(tmp_path), _entity_of_many_times()
    narrow = asof_join(joins, entity, narrow=True)
    direct = asof_join(joins, entity, narrow=False)
    assert narrow.equals(direct)
    assert narrow.num_rows == len(entity) and narrow.column("visits_2d").null_count not in (0, len(entity))
    assert narrow.column("spend").null_count < len(entity) // 2
    assert asof_join(joins, entity).equals(direct)


def test_a_source_with_two_rows_at_one_key_and_time_is_joined_directly(tmp_path: Path) -> None:
    joins, entity = _two_sources(tmp_path, duplicate=True), _entity_of_many_times()
    assert asof_join(joins, entity, narrow=True).num_rows > len(entity)  # the narrow join doubles rows
    got = asof_join(joins, entity)
    assert got.equals(asof_join(joins, entity, narrow=False))
    assert got.num_rows == len(entity)
