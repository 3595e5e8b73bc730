"""Features on arrival: the touched customers' snapshot at the time of the update, into the online store.

The same DuckDB snapshot query as the batch build (`features.snapshots`) runs on those customers'
events with the observation time set to the update's time, so a window, trend, recency or rhythm
feature computed here equals the batch build's for that customer and time. Two kinds of feature
compare a customer with everyone else at the observation time: the RFM scores (quantiles) and the
BG/NBD scores (a model fitted on all buyers). Recomputing the whole population for every event
would cost a full snapshot per update, so these rank the customer against a population snapshot
recomputed every `stream.population_refresh_s` (with the touched customers' own rows replaced),
and score it with the BG/NBD model fitted on that population once per refresh: they equal the
batch build's when that population is as of the same time.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from core import names
from core.settings import Settings
from features.btyd import SCORES, SUMMARY, BgNbd, fit_day, score_rows
from features.feast_adapter import OnlineStoreWriter, WrittenRows
from features.paths import FeaturePaths
from features.snapshots.build import SnapshotQuery, compute_snapshots
from features.snapshots.inputs import data_shape
from features.snapshots.spec import RFM_BINS, SnapshotSpec, family_of, snapshot_spec, view_of
from features.snapshots.sql import btyd_names, rfm_names
from stream.log import EventLog

QUERY_THREADS = 1
"""DuckDB threads of the per-update query: its few customers' rows gain little from a second
thread, which would compete with the service's event loop for the cores."""


def stream_spec(settings: Settings) -> SnapshotSpec:
    """The batch build's spec (windows, event types, families, attributes) without observation dates."""
    paths = FeaturePaths.of(settings)
    events = settings.data.events
    purchase_types = [t for t in events.event_types if family_of(t, events.families) == "purchase"]
    shape = data_shape(paths.clean_events, paths.clean_customers, settings.data.customers.attributes, purchase_types)
    return snapshot_spec(
        (),
        settings.features.windows_days,
        shape,
        tuple(events.families.items()),
        btyd_horizon=settings.labels.horizon_days,
    )


def as_naive_utc(at: dt.datetime) -> dt.datetime:
    """`at` as a naive UTC datetime (what the snapshot query's observation times are)."""
    return at.astimezone(dt.UTC).replace(tzinfo=None) if at.tzinfo else at


def rfm_scores(population: pd.DataFrame, spec: SnapshotSpec) -> pd.DataFrame:
    """RFM scores as the snapshot query gives them (`cume_dist` within one observation time).

    Args:
        population: One row per customer at one observation time, with purchases_days_since_last
            and the long window's purchase count (and spend).
        spec: The spec (long window, amounts).

    Returns:
        The `rfm_names(spec)` columns, on `population`'s index.
    """
    n = len(population)
    long = spec.long_window

    def score(cume: pd.Series) -> pd.Series:
        return cume.map(lambda c: float(max(1, math.ceil(RFM_BINS * c))))

    # cume_dist over `days DESC NULLS FIRST`: the rows ordered before it or tied with it.
    recency = population["purchases_days_since_last"].rank(method="max", ascending=False, na_option="top") / n
    out = {
        "purchases_rfm_recency": score(recency),
        "purchases_rfm_frequency": score(population[f"purchases_count_{long}d"].rank(method="max") / n),
    }
    if spec.has_amount:
        out["purchases_rfm_monetary"] = score(population[f"purchases_spend_{long}d"].rank(method="max") / n)
    return pd.DataFrame(out, index=population.index)[rfm_names(spec)]


class OnlineFeatures:
    """Computes the touched customers' features at a time and writes them to the online store."""

    def __init__(self, settings: Settings, log: EventLog, store: Any = None) -> None:  # noqa: ANN401  (a feast.FeatureStore)
        """Read the spec and the customers; `store` is the Feast store to write to (None: compute only)."""
        paths = FeaturePaths.of(settings)
        self.spec = stream_spec(settings)
        self.customers = pd.read_parquet(paths.clean_customers)
        self.known = pd.Index(self.customers[names.CUSTOMER_ID].astype(str))
        self._by_id = self.customers.set_index(self.customers[names.CUSTOMER_ID].astype(str), drop=False)
        self.log = log
        self.store = store
        self.settings = settings
        self.population: pd.DataFrame | None = None
        """Every customer's RFM inputs at `population_at` (the ranks' reference), by customer id."""
        self.population_at: dt.datetime | None = None
        self.bg_nbd: BgNbd | None = None
        """The BG/NBD model fitted on the population (None before the first refresh, or when the fit fails)."""
        self._lock = threading.Lock()
        self._query: SnapshotQuery | None = None
        """The snapshot query kept planned (made on the first `compute`)."""
        self._query_lock = threading.Lock()
        self.views: dict[str, list[str]] = {}
        self._writer: OnlineStoreWriter | None = None
        if store is not None:
            applied = []
            for view in names.FEATURE_VIEWS:
                try:
                    fv = store.get_feature_view(view)
                except Exception:  # a view the data has no features for was never applied
                    continue
                self.views[view] = [f.name for f in fv.features]
                applied.append(fv)
            self._writer = OnlineStoreWriter(store, applied)

    @property
    def ranked(self) -> list[str]:
        """The features that rank a customer against the population."""
        return rfm_names(self.spec) + btyd_names(self.spec)

    def refresh_population(self, at: dt.datetime) -> None:
        """Recompute every customer's snapshot at `at`: the reference of the rank-based features.

        The BG/NBD model is fitted on it here, once, and the touched customers are scored with
        it on each update (a fit per update would cost more than the rest of the update).
        """
        paths = FeaturePaths.of(self.settings)
        frame = compute_snapshots(
            paths.clean_events, paths.clean_customers, replace(self.spec, observation_dates=(as_naive_utc(at),))
        )
        inputs = [c for c in self._rfm_inputs() if c in frame.columns]
        model = fit_day(frame[list(SUMMARY)]) if btyd_names(self.spec) else None
        with self._lock:
            self.population = frame.set_index(frame[names.CUSTOMER_ID].astype(str))[inputs]
            self.population_at = at
            self.bg_nbd = model

    def _rfm_inputs(self) -> list[str]:
        """The columns the RFM scores rank on."""
        if not rfm_names(self.spec):
            return []
        long = self.spec.long_window
        spend = [f"purchases_spend_{long}d"] if self.spec.has_amount else []
        return ["purchases_days_since_last", f"purchases_count_{long}d", *spend]

    def compute(self, customer_ids: Sequence[str], at: dt.datetime) -> pd.DataFrame:
        """The snapshot rows of `customer_ids` at `at`, as the batch build computes them.

        Args:
            customer_ids: Known customers (distinct).
            at: The observation time: events strictly before it count.

        Returns:
            customer_id, event_timestamp (= `at`, UTC) and every feature; a customer not yet signed
            up or already churned at `at` has no row.
        """
        ids = [str(c) for c in customer_ids]
        events = self.log.events_of(ids)
        customers = self._by_id.loc[[c for c in ids if c in self._by_id.index]].reset_index(drop=True)
        with self._query_lock:
            if self._query is None:
                self._query = SnapshotQuery(self.spec, self.customers, threads=QUERY_THREADS)
            rows = self._query(events, customers, as_naive_utc(at))
        rows[names.EVENT_TIMESTAMP] = pd.to_datetime(rows[names.EVENT_TIMESTAMP], utc=True)
        if self.ranked and len(rows):
            rows = self._rank(rows)
        return rows.reset_index(drop=True)

    def _rank(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Overwrite the rank-based features of `rows` with their ranks in the population."""
        with self._lock:
            population, model = self.population, self.bg_nbd
        if population is None:
            rows[self.ranked] = np.nan
            return rows
        mine = rows.set_index(rows[names.CUSTOMER_ID].astype(str))
        if rfm_names(self.spec):
            inputs = list(population.columns)
            # The population with the touched customers' rows in place of theirs (ranks ignore order).
            merged = pd.concat([population[~population.index.isin(mine.index)], mine[inputs]])
            mine[rfm_names(self.spec)] = rfm_scores(merged, self.spec).loc[mine.index].to_numpy()
        if btyd_names(self.spec):
            horizon = int(self.spec.btyd_horizon or 0)
            scores = score_rows(model, mine[list(SUMMARY)], horizon) if model is not None else None
            mine[list(SCORES)] = np.nan if scores is None else scores.to_numpy()
        return mine.reset_index(drop=True)

    def write(self, rows: pd.DataFrame) -> WrittenRows | None:
        """Write snapshot rows (every view's features) to the online store, one write per feature view.

        Returns:
            What was written, as a read would give it back (None without a store).
        """
        return None if self._writer is None else self._writer.write(rows)

    def view_features(self) -> list[str]:
        """Every feature the views written hold."""
        return [f for features in self.views.values() for f in features if view_of(f) in self.views]
