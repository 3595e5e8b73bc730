"""A Feast offline store: Feast's DuckDB store with the point-in-time join as DuckDB `ASOF LEFT JOIN`s.

Feast's DuckDB offline store (through ibis) joins every feature view separately: all its source rows
of a customer at or before each entity row, within the view's TTL, ranked by a window function to
keep the newest, then a left join back onto the entity rows by a string row id built from the keys.
For a training set of a million entity rows over the snapshots that is most of the training job's
time. The same answer is one `ASOF LEFT JOIN` per source: for each entity row the newest source row
of its customer at or before its timestamp, then its features kept only when that row is within
the view's TTL (the newest row at or before the timestamp is within the TTL exactly when any is).
DuckDB's ASOF join sorts every column it carries, so it carries only the source's keys and
timestamp, to find that newest row's time, and an equality join on the time brings the features
(`asof_sql`).

This is the one module that reaches below Feast's public API for retrievals; configured as
`offline_store: {type: features.feast_offline.ChurnDuckDBOfflineStore}` (`features.feast_repo`),
Feast's documented way of plugging in an offline store. It relies on:

* `DuckDBOfflineStore` and its config, subclassed: every other operation (materialization, pulls,
  logging, requests this join does not cover) stays Feast's.
* The offline store contract of `get_historical_features`: the feature views and references Feast
  resolved, returning a `RetrievalJob` whose `to_arrow` runs the on-demand views after
  `_to_arrow_internal` (so the rhythm ratio is still computed by Feast, from the registry).
* What a feature view exposes of its source and projection (`batch_source.path`, `timestamp_field`,
  `created_timestamp_column`, `field_mapping`, `projection.join_key_map`, `name_to_use`, `ttl`),
  and `OnDemandFeatureView.get_requested_odfvs`, which Feast's own stores call.
* `RetrievalJob.to_arrow` calling `transform_arrow(table, full_feature_names)` of each view in
  `on_demand_feature_views` and appending the columns it returns: the job hands Feast each
  on-demand view behind `ReadingOnly`, which passes the view only the columns it reads (its source
  features and request fields; a pandas view converts its whole input to pandas).

Whenever a request is outside what the join covers (an entity SQL query, a source that is not a
local Parquet file, field mappings, created timestamps, a substrait on-demand view, a time zone
naive entity timestamp), the request goes to Feast's store unchanged. tests/integration/test_feast_offline.py
compares both stores' results on the same repo, so a Feast upgrade that changes either side fails it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
from feast import FeatureView, FileSource, OnDemandFeatureView, RepoConfig
from feast.infra.offline_stores.duckdb import DuckDBOfflineStore, DuckDBOfflineStoreConfig
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.infra.registry.base_registry import BaseRegistry
from pydantic import StrictStr

ENTITY_TIMESTAMP = "event_timestamp"
"""The entity rows' timestamp column (Feast's default name; other names go to Feast's store)."""
ROW = "__churn_row"
"""The entity row's position, carried through the joins to keep the entity rows' order."""
STAMP = "__churn_ts"
"""The entity timestamp as DuckDB's `TIMESTAMPTZ` (microseconds), compared with the sources' timestamps."""


class ChurnDuckDBOfflineStoreConfig(DuckDBOfflineStoreConfig):
    """The config of `ChurnDuckDBOfflineStore` (Feast finds it by the class name plus "Config")."""

    type: StrictStr = "features.feast_offline.ChurnDuckDBOfflineStore"


@dataclass(frozen=True)
class SourceJoin:
    """The feature views read from one Parquet source with the same keys, timestamp and TTL: one ASOF join."""

    path: str
    timestamp_field: str
    keys: tuple[tuple[str, str], ...]
    """(source column, entity column) pairs."""
    ttl: dt.timedelta | None
    columns: tuple[tuple[str, str], ...]
    """(source column, output column) pairs, in Feast's output order."""


def plan(
    feature_views: Sequence[FeatureView], feature_refs: Sequence[str], full_feature_names: bool
) -> list[SourceJoin] | None:
    """The ASOF joins answering a retrieval of `feature_refs`, or None when a view is outside what they cover."""
    joins: dict[tuple[Any, ...], list[tuple[str, str]]] = {}
    for view in feature_views:
        source = view.batch_source
        if (
            not isinstance(source, FileSource)
            or source.field_mapping
            or source.created_timestamp_column
            or "://" in source.path
            or not source.path.endswith(".parquet")
        ):
            return None
        prefix = view.projection.name_to_use()
        base = view.projection.name_alias or view.name
        wanted = [ref.split(":", 1)[1] for ref in feature_refs if ref.startswith(f"{prefix}:")]
        keys = view.projection.join_key_map or {e.name: e.name for e in view.entity_columns}
        group = (source.path, source.timestamp_field, tuple(keys.items()), view.ttl or None)
        joins.setdefault(group, []).extend((f, f"{base}__{f}" if full_feature_names else f) for f in wanted)
    return [SourceJoin(path, ts, keys, ttl, tuple(cols)) for (path, ts, keys, ttl), cols in joins.items()]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _on(join: SourceJoin, i: int, source: str, time: str) -> str:
    """The condition joining the entity rows to `source`, the `i`th join's source: the keys equal, and `time`."""
    same = [f"e.{_quote(ent)} = {source}.__k{i}_{j}" for j, (_, ent) in enumerate(join.keys)]
    return " AND ".join([*same, time])


def asof_sql(joins: Sequence[SourceJoin], entity_columns: Sequence[str], *, narrow: bool = True) -> str:
    """The query over the registered table `entity` (its columns plus ROW) and the sources' Parquet files.

    `narrow`: the ASOF joins carry only the sources' keys and timestamps, to find each entity row's
    newest source time; an equality join on that time then brings the features. DuckDB's ASOF join
    sorts every column it carries, so this is the faster plan for wide sources, and it gives the same
    rows as the direct one (`narrow=False`) unless a source has two rows at one key and time, which
    the equality join would both keep (`asof_join` then runs the direct query).
    """
    # The entity timestamp as Feast's store returns it: microseconds, UTC.
    selects = [f"e.{STAMP} AS {_quote(c)}" if c == ENTITY_TIMESTAMP else f"e.{_quote(c)}" for c in entity_columns]
    entity = f"(SELECT *, CAST({_quote(ENTITY_TIMESTAMP)} AS TIMESTAMPTZ) AS {STAMP} FROM entity) AS e"
    newest, froms = [entity], [entity]
    for i, join in enumerate(joins):
        alias, stamp, path = f"s{i}", f"__ts{i}", join.path.replace("'", "''")
        keyed = [f"{_quote(src)} AS __k{i}_{j}" for j, (src, _) in enumerate(join.keys)]
        keyed.append(f"CAST({_quote(join.timestamp_field)} AS TIMESTAMPTZ) AS {stamp}")
        inner = ", ".join(keyed + [f"{_quote(src)} AS __f{i}_{j}" for j, (src, _) in enumerate(join.columns)])
        if narrow:
            source = f"(SELECT {', '.join(keyed)} FROM read_parquet('{path}')) AS m{i}"
            newest.append(f"ASOF LEFT JOIN {source} ON {_on(join, i, f'm{i}', f'e.{STAMP} >= m{i}.{stamp}')}")
            exact = _on(join, i, alias, f"e.__churn_m{i} = {alias}.{stamp}")
            froms.append(f"LEFT JOIN (SELECT {inner} FROM read_parquet('{path}')) AS {alias} ON {exact}")
        else:
            asof = _on(join, i, alias, f"e.{STAMP} >= {alias}.{stamp}")
            froms.append(f"ASOF LEFT JOIN (SELECT {inner} FROM read_parquet('{path}')) AS {alias} ON {asof}")
        if join.ttl:
            micros = join.ttl // dt.timedelta(microseconds=1)
            fresh = f"{alias}.{stamp} + to_microseconds({micros}) >= e.{STAMP}"
            selects += [
                f"CASE WHEN {fresh} THEN {alias}.__f{i}_{j} END AS {_quote(out)}"
                for j, (_, out) in enumerate(join.columns)
            ]
        else:
            selects += [f"{alias}.__f{i}_{j} AS {_quote(out)}" for j, (_, out) in enumerate(join.columns)]
    if narrow:
        times = ", ".join(f"m{i}.__ts{i} AS __churn_m{i}" for i in range(len(joins)))
        froms[0] = f"(SELECT e.*{', ' if times else ''}{times} FROM {' '.join(newest)}) AS e"
    return f"SELECT {', '.join(selects)} FROM {' '.join(froms)} ORDER BY e.{ROW}"


def asof_join(joins: Sequence[SourceJoin], entity_df: pd.DataFrame, *, narrow: bool | None = None) -> pa.Table:
    """The entity rows (in their order) with the features of `joins`, as Feast's DuckDB store types them.

    `narrow`: the plan of `asof_sql`; None: the narrow one, then the direct one when a source has two
    rows at one key and time (the narrow one's rows outnumber the entity rows).
    """
    entity = pa.Table.from_pandas(entity_df, preserve_index=False)
    entity = entity.append_column(ROW, pa.array(range(len(entity_df)), pa.int64()))
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("entity", entity)
        joined = con.sql(asof_sql(joins, list(entity_df.columns), narrow=narrow is not False)).to_arrow_table()
        if narrow is None and joined.num_rows != len(entity_df):
            joined = con.sql(asof_sql(joins, list(entity_df.columns), narrow=False)).to_arrow_table()
        return joined
    finally:
        con.close()


class ReadingOnly:
    """An on-demand view that transforms only the columns it reads (everything else is the view's own)."""

    def __init__(self, view: OnDemandFeatureView) -> None:
        """Wrap `view`."""
        self.view = view
        reads: set[str] = set()
        for projection in view.source_feature_view_projections.values():
            for feature in projection.features:
                reads |= {feature.name, f"{projection.name}__{feature.name}"}
                reads.add(f"{projection.name_to_use()}__{feature.name}")
        for request in view.source_request_sources.values():
            reads |= {field.name for field in request.schema}
        self.reads = frozenset(reads)

    def transform_arrow(self, pa_table: pa.Table, full_feature_names: bool = False) -> pa.Table:
        """The view's `transform_arrow` of the columns of `pa_table` it reads."""
        wanted = [c for c in pa_table.column_names if c in self.reads]
        return self.view.transform_arrow(pa_table.select(wanted), full_feature_names)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.view, name)


class AsofRetrievalJob(RetrievalJob):
    """A retrieval answered by `asof_join`; Feast's `to_arrow`/`to_df` add the on-demand views."""

    def __init__(
        self,
        joins: Sequence[SourceJoin],
        entity_df: pd.DataFrame,
        on_demand: list[OnDemandFeatureView],
        full_feature_names: bool,
        metadata: RetrievalMetadata,
    ) -> None:
        """Keep what `_to_arrow_internal` runs."""
        super().__init__()
        self.joins, self.entity_df = list(joins), entity_df
        self._on_demand, self._full_names, self._metadata = on_demand, full_feature_names, metadata

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        return asof_join(self.joins, self.entity_df)

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._to_arrow_internal(timeout).to_pandas()

    @property
    def full_feature_names(self) -> bool:
        """Whether the columns are named `view__feature`."""
        return self._full_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        """The on-demand views Feast runs on the joined rows, each given only the columns it reads."""
        return [ReadingOnly(view) for view in self._on_demand]  # type: ignore[misc]

    @property
    def metadata(self) -> RetrievalMetadata:
        """The requested features, keys and time range."""
        return self._metadata


class ChurnDuckDBOfflineStore(DuckDBOfflineStore):
    """Feast's DuckDB offline store, with `get_historical_features` as ASOF joins where they apply."""

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
    ) -> RetrievalJob:
        """Point-in-time correct features of `entity_df`'s rows (Feast's contract; see the module docstring)."""
        stock = (config, feature_views, feature_refs, entity_df, registry, project, full_feature_names)
        if (
            not isinstance(entity_df, pd.DataFrame)
            or filter_by_created_timestamp
            or ENTITY_TIMESTAMP not in entity_df.columns
            or {ROW, STAMP} & set(entity_df.columns)
            or not isinstance(entity_df[ENTITY_TIMESTAMP].dtype, pd.DatetimeTZDtype)
        ):
            return DuckDBOfflineStore.get_historical_features(*stock, filter_by_created_timestamp)
        joins = plan(feature_views, feature_refs, full_feature_names)
        on_demand = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        if joins is None or any(view.mode == "substrait" for view in on_demand):
            return DuckDBOfflineStore.get_historical_features(*stock, filter_by_created_timestamp)
        stamps = entity_df[ENTITY_TIMESTAMP]
        metadata = RetrievalMetadata(
            features=list(feature_refs),
            keys=list(set(entity_df.columns) - {ENTITY_TIMESTAMP}),
            min_event_timestamp=stamps.min().to_pydatetime() if len(stamps) else None,
            max_event_timestamp=stamps.max().to_pydatetime() if len(stamps) else None,
        )
        return AsofRetrievalJob(joins, entity_df, on_demand, full_feature_names, metadata)
