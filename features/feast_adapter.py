"""Feast below its public API, for the request path's online reads: the one module that goes there.

`FeatureStore.get_online_features(...).to_dict()` gives the same values as `features.online`, but
on every call it resolves the feature service in the registry, turns the entity rows into
protobufs, runs on-demand views through Arrow and pandas and builds a generic response: many
times the cost of reading one customer's rows, which is what a /score request needs. So the
request path reads the configured online store itself, and that takes three things Feast offers
only below its public API. They are all here, each with why; tests/integration/test_feast_adapter.py fails
when a Feast upgrade changes what this module relies on.

* The online store's `online_read`: the interface every Feast online store implements (SQLite,
  Redis, ...) and `get_online_features` itself reads through, reached via the store's provider.
  It takes protobuf entity keys and returns protobuf `Value` messages.
* Those `Value` messages as Python: the common scalar kinds are read straight off the message,
  anything else through Feast's own converter (`feast.type_map`).
* An on-demand view's registered function (`OnDemandFeatureView.feature_transformation`) and the
  source text the registry holds for it (`udf_string`): `features.online` runs the function on
  the rows it read, or its NumPy twin while the source shows the function is unchanged.
* The online store's `online_write_batch`, for the real-time path's writes (`stream.online`):
  `FeatureStore.write_to_online_store` lists every feature view in the registry, copies and checks
  the frame and converts it through Arrow on every call, once per view; `OnlineStoreWriter` keeps
  the views, converts the rows once and hands each view's protobuf rows to the same method, with
  the values `write_to_online_store` would write (Feast's own converter, `feast.type_map`).
* `SparkSource`, the data source of Feast's Spark offline store (`features.engine: spark`): Feast
  ships it under `feast.infra...contrib`, not at its top level (`spark_source`).

The registry, feature services, feature views and materialization go through Feast's public API.
Training-set retrieval has its own module below it, the offline store `features.feast_offline`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
from feast import FeatureStore, FeatureView, OnDemandFeatureView
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values

from core import names

SCALAR_KINDS = frozenset({"double_val", "float_val", "int64_val", "int32_val", "string_val", "bool_val"})
"""`Value` fields read straight off the message: the attribute is already the Python value."""


def python_value(value: Value) -> Any:  # noqa: ANN401
    """A stored Feast value as Python: a number, a string, a bool, or None when it is unset.

    Why not `feast_value_type_to_python_type` for every value: it costs several times the two
    attribute reads below for the scalar kinds every feature of this project has.
    """
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    if kind in SCALAR_KINDS:
        return getattr(value, kind)
    return feast_value_type_to_python_type(value)


@dataclass(frozen=True)
class ViewRows:
    """What the online store holds of one feature view for the requested customers, in their order."""

    columns: dict[str, list[Any]]
    """Feature -> one value per customer (None where the store has none)."""
    stamps: list[dt.datetime | None]
    """Per customer, the time of the view's row (its snapshot, UTC); None when the store has no value."""


class OnlineStoreReader:
    """The online store a Feast store is configured with, read one feature view at a time."""

    def __init__(self, store: FeatureStore) -> None:
        """Take the online store object from the store's provider.

        Why: `get_online_features` offers no read without its per-call registry lookups and
        response building; the online store object is what it reads through.

        Args:
            store: The Feast store (its config names the online store).
        """
        self.config = store.config
        self.online_store = store.provider.online_store

    def read(self, views: Sequence[tuple[FeatureView, Sequence[str]]], customer_ids: Sequence[str]) -> list[ViewRows]:
        """The given features of each view for `customer_ids`: one `online_read` per view.

        Args:
            views: Feature views and the features to read from each.
            customer_ids: The customers, as strings.

        Returns:
            One `ViewRows` per view, in the order of `views`.

        Raises:
            Exception: Whatever the online store raises when it is unreachable or broken.
        """
        keys = [EntityKey(join_keys=[names.CUSTOMER_ID], entity_values=[Value(string_val=c)]) for c in customer_ids]
        return [
            _view_rows(self.online_store.online_read(self.config, view, keys, list(features)), features)
            for view, features in views
        ]


def _view_rows(found: list[tuple[dt.datetime | None, dict[str, Value] | None]], features: Sequence[str]) -> ViewRows:
    columns = {
        feature: [None if values is None else _get(values, feature) for _, values in found] for feature in features
    }
    stamps: list[dt.datetime | None] = []
    for stamp, values in found:
        # Redis answers an unknown key with empty values stamped 1970-01-01: not a snapshot.
        if stamp is None or not values or not any(v.WhichOneof("val") for v in values.values()):
            stamps.append(None)
        else:
            stamps.append(stamp.astimezone(dt.UTC) if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC))
    return ViewRows(columns, stamps)


def _get(values: dict[str, Value], feature: str) -> Any:  # noqa: ANN401
    stored = values.get(feature)
    return None if stored is None else python_value(stored)


@dataclass(frozen=True)
class WrittenRows:
    """What one `OnlineStoreWriter.write` put in the online store, as a read of it would give it back."""

    customer_ids: list[str]
    """The rows' customers, in the order written."""
    views: dict[str, ViewRows]
    """View name -> its rows as `OnlineStoreReader.read` reads them (every feature of the view);
    only the views written. Their times are as written: a store may keep them coarser."""


class OnlineStoreWriter:
    """Rows of feature views into the online store a Feast store is configured with, as
    `FeatureStore.write_to_online_store` writes them."""

    def __init__(self, store: FeatureStore, views: Sequence[FeatureView]) -> None:
        """Keep the online store object and the views to write.

        Why: `write_to_online_store` resolves the view in the registry and converts the frame on
        every call; the online store object's `online_write_batch` is what it writes through.

        Args:
            store: The Feast store (its config names the online store).
            views: The feature views, as the registry holds them.

        Raises:
            ValueError: A view renames its source's columns (`field_mapping`), which this does not.
        """
        for view in views:
            if view.batch_source is None or view.batch_source.field_mapping:
                raise ValueError(f"feature view '{view.name}': a batch source without a field mapping is needed")
        self.config = store.config
        self.online_store = store.provider.online_store
        self.views = list(views)

    def write(self, rows: pd.DataFrame) -> WrittenRows:
        """Write each view's features of `rows`: one `online_write_batch` per view.

        As `write_to_online_store`: the values go through Arrow and Feast's converter, the row's
        time is the view's timestamp field (naive UTC), and a view whose features are all null in
        `rows` is not written.

        Args:
            rows: The views' entity columns, timestamp field and every feature of each view.

        Returns:
            The rows written, as reading them back gives them: the same `Value` messages turned
            into Python the way `OnlineStoreReader.read` does, so the caller can use what it has
            just written without reading it (`features.online.OnlineReader.rows_of`).
        """
        if rows.empty:
            return WrittenRows([], {})
        table = pa.Table.from_pandas(rows, preserve_index=False)
        converted: dict[tuple[str, Any], list[Any]] = {}

        def values(name: str, kind: Any) -> list[Any]:  # noqa: ANN401  (a ValueType)
            """A column as Feast converts it (once per column, whichever views share it)."""
            if (name, kind) not in converted:
                array = table.column(name).to_numpy(zero_copy_only=False)
                as_python = _datetimes(array) if kind is None else python_values_to_proto_values(array, kind)
                converted[name, kind] = as_python
            return converted[name, kind]

        written: dict[str, ViewRows] = {}
        for view in self.views:
            features = [f.name for f in view.features]
            if rows[features].isnull().all().all():
                continue
            join_keys = {e.name: e.dtype.to_value_type() for e in view.entity_columns}
            key_values = zip(*(values(k, kind) for k, kind in join_keys.items()), strict=True)
            keys = [EntityKey(join_keys=list(join_keys), entity_values=list(v)) for v in key_values]
            columns = [values(f.name, f.dtype.to_value_type()) for f in view.features]
            source = view.batch_source
            assert source is not None  # checked in __init__
            stamps = values(source.timestamp_field, None)
            created = (
                values(source.created_timestamp_column, None) if source.created_timestamp_column else [None] * len(rows)
            )
            data = [
                (key, dict(zip(features, row, strict=True)), stamp, made)
                for key, row, stamp, made in zip(keys, zip(*columns, strict=True), stamps, created, strict=True)
            ]
            self.online_store.online_write_batch(self.config, view, data, None)
            written[view.name] = _view_rows([(stamp, values) for _, values, stamp, _ in data], features)
        return WrittenRows([str(c) for c in rows[names.CUSTOMER_ID]], written)


def _datetimes(values: Any) -> list[dt.datetime]:  # noqa: ANN401  (a NumPy datetime64 array)
    """Python datetimes of an Arrow timestamp column's values, as Feast's write makes them."""
    return [t.to_pydatetime() for t in pd.to_datetime(values)]


@dataclass(frozen=True)
class OnDemandFunction:
    """An on-demand view's function as the registry holds it."""

    transform: Callable[[pd.DataFrame], Mapping[str, Any]]
    """Runs the function as Feast does: a frame of the source features in, the view's features out."""
    source: str | None
    """The function's source text as registered; None when the registry holds none."""


def on_demand_function(view: OnDemandFeatureView) -> OnDemandFunction:
    """The registered function of a pandas-mode on-demand view, to run outside `get_online_features`.

    Why: Feast runs an on-demand view only inside its own reads; its public
    `OnDemandFeatureView.transform_arrow` round-trips the rows through Arrow and pandas.

    Args:
        view: The on-demand view, as the registry holds it.

    Returns:
        Its function and the function's registered source.

    Raises:
        ValueError: The view is not in pandas mode.
    """
    if view.mode != "pandas":
        raise ValueError(f"on-demand view '{view.name}': mode '{view.mode}' is not supported, only pandas")
    transformation = view.feature_transformation
    assert transformation is not None  # a pandas-mode view always has its function
    return OnDemandFunction(transformation.transform, getattr(transformation, "udf_string", None))


def spark_source(**kwargs: Any) -> Any:
    """A Feast `SparkSource` (the Spark offline store's data source) with `kwargs`.

    Imported when called: it imports pyspark, which only the `spark` extra installs.
    """
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

    return SparkSource(**kwargs)
