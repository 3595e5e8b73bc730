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
from feast import FeatureStore, FeatureView, OnDemandFeatureView
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import feast_value_type_to_python_type

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
