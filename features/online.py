"""Online features for the request path: one feature service's features by customer id.

Feast stays the source of the definitions and of materialization, and its public API resolves the
service's feature views and on-demand views in the registry, once, when a reader is built. Each
read then goes to the configured online store itself, one read per feature view, through
`features.feast_adapter` (the one module that uses Feast below its public API, and why), and runs
the service's on-demand views on the rows it read: the values `FeatureStore.get_online_features`
gives, without its per-call registry lookups and response building.

An on-demand view whose registered function is one of `features.feast_repo.ONLINE_KERNELS`,
unchanged, runs as that function's NumPy twin on the columns read, without pandas; any other
runs as Feast runs it.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureService, FeatureStore, FeatureView

from core import names
from features.feast_adapter import OnlineStoreReader, ViewRows, WrittenRows, on_demand_function
from features.feast_repo import ONLINE_KERNELS

Kernel = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]
"""An on-demand view's function on float columns (NaN missing), returning its features' columns."""
Transform = Callable[[pd.DataFrame], Mapping[str, Any]]
"""An on-demand view's function as Feast runs it: a frame of its source features in, its features out."""


@dataclass(frozen=True)
class OnlineRows:
    """The online features of requested customers, in the order they were asked for."""

    customer_ids: list[str]
    columns: dict[str, list[Any]]
    """Feature -> one value per customer (None where the store has none)."""
    snapshot_at: list[dt.datetime | None]
    """Per customer, when its newest feature snapshot was taken (UTC); None when it has none."""

    @property
    def found(self) -> list[bool]:
        """Per customer, whether the store has any of its features."""
        return [t is not None for t in self.snapshot_at]

    def rows(self, features: Sequence[str], where: Sequence[int]) -> dict[str, list[Any]]:
        """customer_id and `features` of the customers at positions `where`, as columns.

        A feature the service does not have is all None.
        """
        out: dict[str, list[Any]] = {names.CUSTOMER_ID: [self.customer_ids[i] for i in where]}
        for feature in features:
            values = self.columns.get(feature)
            out[feature] = [None] * len(where) if values is None else [values[i] for i in where]
        return out


@dataclass(frozen=True)
class _View:
    view: FeatureView
    features: list[str]


class OnlineReader:
    """Reads one feature service's online features by customer id, straight from the online store."""

    def __init__(self, store: FeatureStore, service: FeatureService | str) -> None:
        """Resolve the service's feature views and on-demand views in the registry (once).

        Args:
            store: The Feast store (its config names the online store).
            service: The feature service, or its name.

        Raises:
            ValueError: The service uses a view this reader does not know how to compute.
        """
        if isinstance(service, str):
            service = store.get_feature_service(service)
        self.online_store = OnlineStoreReader(store)
        views: dict[str, _View] = {}
        self.on_demand: list[tuple[Transform, list[str], list[str], Kernel | None]] = []
        """Per on-demand view: its function as Feast runs it, its source features, the features it
        gives, and its NumPy twin when the registry holds a function of `ONLINE_KERNELS` unchanged."""
        self.features: list[str] = []
        on_demand = {v.name: v for v in store.list_on_demand_feature_views()}
        for projection in service.feature_view_projections:
            wanted = [f.name for f in projection.features]
            self.features.extend(wanted)
            if projection.name in on_demand:
                odfv = on_demand[projection.name]
                function = on_demand_function(odfv)
                sources = [f.name for p in odfv.source_feature_view_projections.values() for f in p.features]
                self.on_demand.append((function.transform, sources, wanted, _kernel(odfv.name, function.source)))
                for source in odfv.source_feature_view_projections.values():
                    self._want(store, views, source.name, [f.name for f in source.features])
            else:
                self._want(store, views, projection.name, wanted)
        self.views = list(views.values())

    @staticmethod
    def _want(store: FeatureStore, views: dict[str, _View], name: str, features: list[str]) -> None:
        entry = views.get(name)
        if entry is None:
            views[name] = _View(store.get_feature_view(name), list(features))
        else:
            entry.features.extend(f for f in features if f not in entry.features)

    def read(self, customer_ids: Sequence[str]) -> OnlineRows:
        """The service's features of `customer_ids` (one store read per feature view).

        Raises:
            Exception: Whatever the online store raises when it is unreachable or broken.
        """
        ids = [str(c) for c in customer_ids]
        return self._assemble(ids, self.online_store.read([(entry.view, entry.features) for entry in self.views], ids))

    def rows_of(self, written: WrittenRows, customer_ids: Sequence[str]) -> OnlineRows | None:
        """What `read` would give for `customer_ids` right after `written` was written, without reading.

        The written `Value` messages, turned into Python as a read turns them, then the on-demand
        views as `read` runs them. None when `written` does not cover every view this reader reads
        or every customer asked for (the store holds older rows for those: `read` them).

        Args:
            written: What `features.feast_adapter.OnlineStoreWriter.write` returned.
            customer_ids: The customers, each with a row in `written`.
        """
        ids = [str(c) for c in customer_ids]
        position = {c: i for i, c in enumerate(written.customer_ids)}
        if any(entry.view.name not in written.views for entry in self.views) or any(c not in position for c in ids):
            return None
        where = [position[c] for c in ids]
        views = []
        for entry in self.views:
            rows = written.views[entry.view.name]
            columns = {f: [rows.columns[f][i] for i in where] for f in entry.features}
            views.append(ViewRows(columns, [rows.stamps[i] for i in where]))
        return self._assemble(ids, views)

    def _assemble(self, ids: list[str], views: Sequence[ViewRows]) -> OnlineRows:
        """The service's rows from its views' rows: the newest stamp per customer, then the on-demand views."""
        columns: dict[str, list[Any]] = {}
        newest: list[dt.datetime | None] = [None] * len(ids)
        for rows in views:
            columns.update(rows.columns)
            for i, stamp in enumerate(rows.stamps):
                current = newest[i]
                if stamp is not None and (current is None or stamp > current):
                    newest[i] = stamp
        for transform, sources, outputs, kernel in self.on_demand:
            inputs = {f: _column(columns[f]) for f in sources}
            computed: Mapping[str, Any]
            if kernel is not None and all(v.dtype == np.float64 for v in inputs.values()):
                computed = kernel(inputs)
            else:
                computed = transform(pd.DataFrame(inputs))
            for feature in outputs:
                out = np.asarray(computed[feature], dtype=object)
                columns[feature] = [None if newest[i] is None else plain_value(v) for i, v in enumerate(out)]
        return OnlineRows(ids, columns, newest)


def _kernel(view: str, source: str | None) -> Kernel | None:
    """The NumPy twin of an on-demand view's function, if the registry holds that function unchanged.

    A registry applied from older code (before `churn features apply`) keeps its own function,
    which then runs as Feast runs it.

    Args:
        view: The on-demand view's name.
        source: The source text of the function the registry holds for it.
    """
    known = ONLINE_KERNELS.get(view)
    if known is None:
        return None
    function, kernel = known
    return kernel if source == inspect.getsource(function) else None


def _column(values: list[Any]) -> np.ndarray:
    """Values as an on-demand view's pandas input holds them: float with NaN, or objects for strings."""
    try:
        return np.array(values, dtype=float)
    except (TypeError, ValueError):
        return np.array(values, dtype=object)


def plain_value(value: Any) -> Any:  # noqa: ANN401
    """A value as plain Python: NaN and missing (None, pd.NA) become None, NumPy scalars plain ones."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return value.item() if isinstance(value, np.generic) else value
