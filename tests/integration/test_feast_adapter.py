"""Contract tests of `features.feast_adapter`: what it relies on below Feast's public API still holds.

Each test names one assumption. A Feast upgrade that breaks one fails here, on a tiny real Feast
repo (the project's own definitions plus a view of every value kind, applied and materialized),
rather than on the serving path.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import math
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import require_service
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig
from feast.infra.online_stores.online_store import OnlineStore
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import feast_value_type_to_python_type
from feast.types import Array, Bool, Float32, Float64, Int32, Int64, String

from core import names
from core.io import write_atomic_parquet
from features.feast_adapter import (
    SCALAR_KINDS,
    OnlineStoreReader,
    OnlineStoreWriter,
    on_demand_function,
    python_value,
)
from features.feast_repo import build_definitions, purchases_rhythm

REPO = Path(__file__).resolve().parents[2]
OLD, NEW = (pd.Timestamp(d, tz="UTC") for d in ("2025-03-01", "2025-03-08"))
IDS = ["C001", "C002", "C003"]
TYPES = "types"
"""A feature view holding one feature of each value kind (not one of the project's views)."""
TYPED_FIELDS = {
    "types_double": Float64,
    "types_float": Float32,
    "types_int64": Int64,
    "types_int32": Int32,
    "types_string": String,
    "types_bool": Bool,
    "types_doubles": Array(Float64),
    "types_strings": Array(String),
}


def _snapshots() -> pd.DataFrame:
    """Two snapshot dates of three customers, with the sources of the on-demand view."""
    rows = []
    for stamp in (OLD, NEW):
        for i, cid in enumerate(IDS):
            rows.append(
                {
                    names.CUSTOMER_ID: cid,
                    names.EVENT_TIMESTAMP: stamp,
                    "purchases_count_30d": float(i + (stamp == NEW)),
                    "purchases_days_since_last": [12.0, math.nan, 3.0][i],
                    "purchases_gap_mean_90d": [4.0, 2.0, 0.0][i],
                    "profile_plan": ["basic", None, "premium"][i],
                }
            )
    return pd.DataFrame(rows)


def _typed() -> pd.DataFrame:
    """The newest snapshot of each customer in every value kind; C002's scalars are missing."""
    return pd.DataFrame(
        {
            names.CUSTOMER_ID: IDS,
            names.EVENT_TIMESTAMP: [NEW] * 3,
            "types_double": [1.5, None, -2.25],
            "types_float": pd.array([0.5, None, 8.0], dtype="Float32"),
            "types_int64": pd.array([2**40, None, -3], dtype="Int64"),
            "types_int32": pd.array([7, None, -1], dtype="Int32"),
            "types_string": ["a", None, "é"],
            "types_bool": pd.array([True, None, False], dtype="boolean"),
            "types_doubles": [[1.0, 2.5], [], [3.0]],
            "types_strings": [["x", "y"], [], ["z"]],
        }
    )


def _store(tmp: Path, online: dict[str, Any], project: str) -> FeatureStore:
    """A Feast repo in `tmp`: the project's definitions and the typed view, applied and materialized."""
    snapshots = write_atomic_parquet(_snapshots(), tmp / "snapshots.parquet")
    typed = write_atomic_parquet(_typed(), tmp / "typed.parquet")
    schema = {c: "string" if c == "profile_plan" else "double" for c in _snapshots().columns[2:]}
    definitions = build_definitions(snapshots, schema, ttl_days=30)
    customer = next(d for d in definitions if isinstance(d, Entity))
    typed_view = FeatureView(
        name=TYPES,
        entities=[customer],
        ttl=dt.timedelta(days=30),
        schema=[Field(name=n, dtype=t) for n, t in TYPED_FIELDS.items()],
        source=FileSource(name="typed", path=str(typed), timestamp_field=names.EVENT_TIMESTAMP),
        online=True,
    )
    config = RepoConfig(
        project=project,
        provider="local",
        registry={"registry_type": "file", "path": str(tmp / "registry.db")},
        online_store=online,
        offline_store={"type": "duckdb"},
        entity_key_serialization_version=3,
        repo_path=tmp,
    )
    store = FeatureStore(config=config)
    store.apply([*definitions, typed_view])
    second = dt.timedelta(seconds=1)
    store.materialize(OLD.to_pydatetime() - second, NEW.to_pydatetime() + second)
    return store


@pytest.fixture(scope="module", params=["sqlite", pytest.param("redis", marks=pytest.mark.services)])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeatureStore]:
    """The tiny repo on SQLite, and on the machine's Redis (a throwaway project, torn down after)."""
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "sqlite":
        yield _store(tmp, {"type": "sqlite", "path": str(tmp / "online.db")}, "adapter_contract")
        return
    require_service("Redis", "127.0.0.1", 6379)
    store = _store(tmp, {"type": "redis", "connection_string": "127.0.0.1:6379"}, f"adapter_{uuid.uuid4().hex[:8]}")
    try:
        yield store
    finally:
        store.teardown()  # its own registry file: no other project is in it


def _reference(store: FeatureStore, view: str, features: list[str], ids: list[str]) -> dict[str, list[Any]]:
    """What Feast's public API gives for the same lookups."""
    refs = [f"{view}:{f}" for f in features]
    rows = [{names.CUSTOMER_ID: c} for c in ids]
    return store.get_online_features(features=refs, entity_rows=rows).to_dict(include_event_timestamps=True)


def test_the_provider_holds_the_configured_online_store(store: FeatureStore) -> None:
    # OnlineStoreReader reads through `FeatureStore.provider.online_store`.
    online_store = store.provider.online_store
    assert isinstance(online_store, OnlineStore)
    assert type(online_store).__name__.lower().startswith(store.config.online_store.type)


def test_online_read_takes_config_view_keys_and_features(store: FeatureStore) -> None:
    # The adapter passes them positionally, in this order.
    for method in (OnlineStore.online_read, type(store.provider.online_store).online_read):
        parameters = list(inspect.signature(method).parameters)
        assert parameters == ["self", "config", "table", "entity_keys", "requested_features"], method


def _missing(value: Any) -> bool:  # noqa: ANN401
    return value is None or (isinstance(value, float) and math.isnan(value))


@pytest.mark.parametrize("view", [TYPES, names.VIEW_PURCHASES, names.VIEW_PROFILE])
def test_the_adapter_reads_what_get_online_features_gives(store: FeatureStore, view: str) -> None:
    """Every value kind, a missing value, an unknown customer, and the snapshot time of each row."""
    feature_view = store.get_feature_view(view)
    features = [f.name for f in feature_view.features]
    ids = [*IDS, "unknown"]
    (rows,) = OnlineStoreReader(store).read([(feature_view, features)], ids)
    expected = _reference(store, view, features, ids)
    assert set(rows.columns) == set(features)
    for feature in features:
        for i, (got, want) in enumerate(zip(rows.columns[feature], expected[feature], strict=True)):
            if _missing(want):
                assert got is None, (feature, ids[i], got)
            else:
                assert got == want and type(got) is type(want), (feature, ids[i], got, want)
    # Feast gives the row's time in seconds since the epoch; the adapter gives it only for a row
    # holding a value (C002's profile row holds none), never for an unknown customer.
    seconds = expected[f"{features[0]}__ts"]
    held = [any(not _missing(expected[f][i]) for f in features) for i in range(len(ids))]
    assert held[-1] is False
    assert rows.stamps == [
        dt.datetime.fromtimestamp(s, dt.UTC) if h else None for s, h in zip(seconds, held, strict=True)
    ]
    assert {s for s in rows.stamps if s is not None} == {NEW.to_pydatetime()}


def test_online_read_answers_each_key_in_order_with_value_messages(store: FeatureStore) -> None:
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey

    view = store.get_feature_view(TYPES)
    keys = [EntityKey(join_keys=[names.CUSTOMER_ID], entity_values=[Value(string_val=c)]) for c in ["C003", "nope"]]
    found = store.provider.online_store.online_read(store.config, view, keys, list(TYPED_FIELDS))
    assert len(found) == 2
    stamp, values = found[0]
    assert isinstance(stamp, dt.datetime) and values is not None
    assert all(isinstance(v, Value) for v in values.values())
    assert values["types_double"].WhichOneof("val") == "double_val" and values["types_double"].double_val == -2.25
    stamp, values = found[1]
    # SQLite answers an unknown key with (None, None); Redis with unset values stamped 1970-01-01.
    assert values is None or not any(v.WhichOneof("val") for v in values.values())


def _stored(store: FeatureStore, view: FeatureView, ids: list[str]) -> list[tuple[Any, dict[str, bytes] | None]]:
    """What the online store holds of `view` for `ids`: each row's time and its values, serialized."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey

    keys = [EntityKey(join_keys=[names.CUSTOMER_ID], entity_values=[Value(string_val=c)]) for c in ids]
    found = store.provider.online_store.online_read(store.config, view, keys, [f.name for f in view.features])
    return [
        (stamp, None if values is None else {k: v.SerializeToString() for k, v in values.items()})
        for stamp, values in found
    ]


def test_the_writer_writes_what_write_to_online_store_writes(store: FeatureStore) -> None:
    """Every value kind, missing values, and a view whose features are all null (neither writes it)."""
    views = [store.get_feature_view(v) for v in (TYPES, names.VIEW_PURCHASES, names.VIEW_PROFILE)]
    newest = _snapshots().query(f"{names.EVENT_TIMESTAMP} == @NEW").drop(columns=names.EVENT_TIMESTAMP)
    rows = _typed().merge(newest, on=names.CUSTOMER_ID)
    rows[names.EVENT_TIMESTAMP] = NEW + pd.Timedelta(days=1, microseconds=7)
    rows["profile_plan"] = None  # the profile view: nothing to write
    by_feast, by_writer = [f"F{i}" for i in range(len(rows))], [f"W{i}" for i in range(len(rows))]
    for view in views:
        columns = [names.CUSTOMER_ID, names.EVENT_TIMESTAMP, *(f.name for f in view.features)]
        with pytest.warns(UserWarning) if view.name == names.VIEW_PROFILE else contextlib.nullcontext():
            store.write_to_online_store(view.name, rows.assign(**{names.CUSTOMER_ID: by_feast})[columns])
    written = OnlineStoreWriter(store, views).write(rows.assign(**{names.CUSTOMER_ID: by_writer}))
    assert list(written.views) == [TYPES, names.VIEW_PURCHASES]
    assert written.customer_ids == by_writer
    # What the writer returns is what a read gives back (the real-time path scores it unread).
    read_back = OnlineStoreReader(store).read([(v, [f.name for f in v.features]) for v in views[:2]], by_writer)
    for view, rows_read in zip(views[:2], read_back, strict=True):
        mine = written.views[view.name]
        assert mine.columns == rows_read.columns, view.name
        # The time as written: a store may keep it coarser (SQLite, whole seconds).
        assert [s is None for s in mine.stamps] == [s is None for s in rows_read.stamps], view.name
        assert all(
            s is None or r is None or abs(s - r) < dt.timedelta(seconds=1)
            for s, r in zip(mine.stamps, rows_read.stamps, strict=True)
        )
    for view in views:
        feast_rows, writer_rows = _stored(store, view, by_feast), _stored(store, view, by_writer)
        assert writer_rows == feast_rows, view.name
    assert all(stamp is not None for stamp, _ in _stored(store, views[0], by_writer))
    # Never written: SQLite has no row, Redis answers unset values.
    assert all(not any((values or {}).values()) for _, values in _stored(store, views[2], by_writer))


def test_scalar_kinds_read_off_the_message_equal_feasts_conversion() -> None:
    samples = {
        "double_val": 1.25,
        "float_val": 0.5,
        "int64_val": 2**40,
        "int32_val": -7,
        "string_val": "é",
        "bool_val": True,
    }
    assert set(samples) == SCALAR_KINDS
    oneof = {f.name for f in Value.DESCRIPTOR.oneofs_by_name["val"].fields}
    assert SCALAR_KINDS | {"null_val", "double_list_val", "string_list_val"} <= oneof
    for kind, sample in samples.items():
        value = Value(**{kind: sample})
        assert value.WhichOneof("val") == kind
        assert python_value(value) == feast_value_type_to_python_type(value) == sample
        assert type(python_value(value)) is type(feast_value_type_to_python_type(value))
    assert python_value(Value()) is None and feast_value_type_to_python_type(Value()) is None
    assert python_value(Value(null_val=0)) is None


def test_an_on_demand_view_keeps_its_function_and_its_source(store: FeatureStore) -> None:
    function = on_demand_function(store.get_on_demand_feature_view(names.RHYTHM_VIEW))
    # features.online compares the registered source with the module's to pick the NumPy twin.
    assert function.source == inspect.getsource(purchases_rhythm)
    frame = pd.DataFrame(
        {"purchases_days_since_last": [12.0, math.nan, 3.0], "purchases_gap_mean_90d": [4.0, 2.0, 0.0]}
    )
    out = function.transform(frame)
    assert out["purchases_overdue_ratio"][0] == 3.0
    assert pd.isna(out["purchases_overdue_ratio"][1]) and pd.isna(out["purchases_overdue_ratio"][2])


def test_only_the_adapter_goes_below_feasts_public_api() -> None:
    """The project's packages reach Feast's protobufs, converters, transformations and online
    store only through features/feast_adapter.py, and its offline store classes only through
    features/feast_offline.py (tests/integration/test_feast_offline.py checks that one against Feast's)."""
    below = re.compile(
        r"feast\.(protos|type_map|transformation|infra)|_get_provider|\.provider\b|online_read|feature_transformation|udf_string"
    )
    offenders = []
    for package in ("core", "features", "model", "crm", "training", "serving", "monitoring", "churn", "stream"):
        for path in sorted((REPO / package).rglob("*.py")):
            if path in (REPO / "features" / "feast_adapter.py", REPO / "features" / "feast_offline.py"):
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if below.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
