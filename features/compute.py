"""Behaviour feature snapshots from the event log, computed with DuckDB over Parquet.

One row per customer per observation date. Every value uses only events strictly before the
observation date (midnight UTC), so nothing from the future leaks into training.

How it stays fast: events are reduced to one row per customer and active day, turned into running
totals per customer, and every window is a difference of two running totals looked up with an
ASOF join (`total before the observation date - total before the window's start`). The cost grows
with customers x observation dates x window edges, not with the events each window covers.

Feature names start with their Feast view (`purchases_`, `engagement_`, `service_`, `profile_`);
event types, amounts and categories a dataset does not have produce no columns at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from core import names

TREND_DAYS = 30
"""The trend features compare the last TREND_DAYS days with the TREND_DAYS days before them."""

RFM_BINS = 5
"""RFM scores run from 1 (worst) to RFM_BINS (best) within each observation date."""

# event type -> (feature view, word used in feature names)
COUNTED_EVENTS: dict[str, tuple[str, str]] = {
    "purchase": (names.VIEW_PURCHASES, "count"),
    "visit": (names.VIEW_ENGAGEMENT, "visits"),
    "click": (names.VIEW_ENGAGEMENT, "clicks"),
    "message": (names.VIEW_ENGAGEMENT, "messages"),
    "complaint": (names.VIEW_SERVICE, "complaints"),
    "support_ticket": (names.VIEW_SERVICE, "tickets"),
}
ENGAGEMENT_EVENTS = ("visit", "click", "message")


@dataclass(frozen=True)
class DataShape:
    """What an event log and customer table contain, which decides the feature list."""

    event_types: tuple[str, ...]
    has_amount: bool = True
    has_category: bool = True
    attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SnapshotSpec:
    """What to compute: observation dates, windows and the shape of the data."""

    observation_dates: tuple[dt.date, ...]
    windows_days: tuple[int, ...]
    event_types: tuple[str, ...]
    has_amount: bool = True
    has_category: bool = True
    attributes: tuple[str, ...] = ()

    @property
    def purchases(self) -> bool:
        """Whether the data has purchase events."""
        return "purchase" in self.event_types

    @property
    def counted(self) -> list[str]:
        """The event types with count features, in a fixed order."""
        return [t for t in COUNTED_EVENTS if t in self.event_types]

    @property
    def long_window(self) -> int:
        """The longest window: RFM and purchase-gap statistics use it."""
        return max(self.windows_days)


def observation_grid(
    first_event: dt.date,
    last_event: dt.date,
    every_days: int,
    warmup_days: int,
    origin: dt.date = dt.date(2000, 1, 3),
    include_latest: bool = True,
) -> list[dt.date]:
    """Observation dates: a fixed grid `origin + k * every_days`, plus the day after the data.

    The grid is anchored on `origin`, not on the data, so new days of events add dates instead
    of moving all of them; this is what lets an incremental rebuild keep old snapshots.

    Args:
        first_event: Day of the earliest event.
        last_event: Day of the latest event.
        every_days: Spacing of the grid.
        warmup_days: History a customer needs before the first observation date.
        origin: Any date on the grid (default a Monday, so a weekly grid falls on Mondays).
        include_latest: Also observe at `last_event + 1 day`, the freshest snapshot possible,
            which serving and batch scoring use.

    Returns:
        The dates, oldest first, none before `first_event + warmup_days` or after `last_event + 1 day`.
    """
    start = first_event + dt.timedelta(days=warmup_days)
    end = last_event + dt.timedelta(days=1)
    if start > end:
        return []
    offset = (start - origin).days % every_days
    first = start if offset == 0 else start + dt.timedelta(days=every_days - offset)
    dates = [first + dt.timedelta(days=every_days * k) for k in range((end - first).days // every_days + 1)]
    if include_latest and (not dates or dates[-1] != end):
        dates.append(end)
    return [d for d in dates if d <= end]


def feature_names(spec: SnapshotSpec) -> list[str]:
    """The feature columns `feature_sql(spec)` produces, in order."""
    return [alias for _, alias in _feature_exprs(spec)]


def _feature_exprs(spec: SnapshotSpec) -> list[tuple[str, str]]:
    """(SQL expression over the `wide` relation, feature name) for every feature of `spec`."""

    def window(column: str, days: int) -> str:
        # Exact: counts are whole numbers and spend is DECIMAL, so an empty window is exactly 0.
        return f"(coalesce({column}_0, 0) - coalesce({column}_{days}, 0))::DOUBLE"

    out: list[tuple[str, str]] = []
    spend = spec.purchases and spec.has_amount
    for w in spec.windows_days:
        for etype in spec.counted:
            view, word = COUNTED_EVENTS[etype]
            out.append((window(f"n_{etype}", w), f"{view}_{word}_{w}d"))
        if spend:
            out.append((window("spend", w), f"purchases_spend_{w}d"))
            count = window("n_purchase", w)
            out.append(
                (f"CASE WHEN {count} > 0 THEN {window('spend', w)} / {count} END", f"purchases_avg_order_value_{w}d")
            )
        if spec.purchases and spec.has_category:
            out.append((f"coalesce(cat.categories_{w}, 0)::DOUBLE", f"purchases_categories_{w}d"))
    if spec.purchases:
        long = spec.long_window
        n_gaps = window("gap_n", long)
        mean = f"({window('gap_sum', long)} / nullif({n_gaps}, 0))"
        out.append((mean, f"purchases_gap_mean_{long}d"))
        variance = f"greatest(0, {window('gap_sq', long)} / {n_gaps} - {mean} * {mean})"
        out.append((f"CASE WHEN {n_gaps} >= 2 THEN sqrt({variance}) END", f"purchases_gap_std_{long}d"))
        out.append(("date_diff('day', last_purchase_0, wide.obs_ts)::DOUBLE", "purchases_days_since_last"))
    # Trends: the last TREND_DAYS days against the TREND_DAYS before them.
    t, t2 = TREND_DAYS, 2 * TREND_DAYS

    def trend(column: str) -> str:
        return f"change_ratio({window(column, t)}, (coalesce({column}_{t}, 0) - coalesce({column}_{t2}, 0))::DOUBLE)"

    if spec.purchases:
        out.append((trend("n_purchase"), "purchases_frequency_change"))
        if spend:
            out.append((trend("spend"), "purchases_spend_change"))
    if any(e in spec.event_types for e in ENGAGEMENT_EVENTS):
        out.append((trend("n_engagement"), "engagement_change"))
    out.append(("date_diff('day', last_activity_0, wide.obs_ts)::DOUBLE", "engagement_days_since_last_activity"))
    out.append(("tenure_days", "profile_tenure_days"))
    out += [(f"attr_{i}", f"profile_{a}") for i, a in enumerate(spec.attributes)]
    return out


def _edges(spec: SnapshotSpec) -> list[int]:
    """Days before the observation date at which running totals are looked up."""
    edges = {0, *spec.windows_days}
    if spec.purchases or any(e in spec.event_types for e in ENGAGEMENT_EVENTS):
        edges |= {TREND_DAYS, 2 * TREND_DAYS}
    return sorted(edges)


def feature_sql(spec: SnapshotSpec) -> str:
    """The DuckDB query computing the snapshots for `spec`.

    It expects views `events` (customer_id, event_timestamp, event_type, amount, category),
    `customers` (customer_id, signup_date, churn_date, attributes...) and `obs` (observation_ts).
    """
    counted = spec.counted
    engagement = [e for e in ENGAGEMENT_EVENTS if e in spec.event_types]
    daily_cols = [f"count(*) FILTER (WHERE event_type = '{e}')::DOUBLE AS n_{e}" for e in counted]
    if engagement:
        types = ", ".join(f"'{e}'" for e in engagement)
        daily_cols.append(f"count(*) FILTER (WHERE event_type IN ({types}))::DOUBLE AS n_engagement")
    if spec.purchases and spec.has_amount:
        # DECIMAL, not DOUBLE: running totals and their differences stay exact, so a window without
        # purchases has spend exactly 0 and the result does not depend on summation order.
        daily_cols.append("coalesce(sum(amount::DECIMAL(18, 4)) FILTER (WHERE event_type = 'purchase'), 0) AS spend")
    running = [c.rsplit(" AS ", 1)[1] for c in daily_cols]
    gap = ""
    if spec.purchases:
        # The gap (days) from the previous purchase day, on each purchase day.
        gap = """, CASE WHEN n_purchase > 0 THEN date_diff('day',
                  lag(day) OVER (PARTITION BY cid, n_purchase > 0 ORDER BY day), day)::DOUBLE END AS gap"""
    cum_cols = [f"sum({c}) OVER w AS {c}" for c in running]
    if spec.purchases:
        cum_cols += [
            "sum(gap) OVER w AS gap_sum",
            "sum(gap * gap) OVER w AS gap_sq",
            "count(gap) OVER w AS gap_n",
            "max(CASE WHEN n_purchase > 0 THEN day END) OVER w AS last_purchase",
        ]
    cum_cols.append("day AS last_activity")
    looked_up = [c.rsplit(" AS ", 1)[1] for c in cum_cols]
    edges = _edges(spec)
    # One ASOF join looks up the running totals at every window edge of every (customer, date),
    # then one GROUP BY on the integer row id `pid` lays the edges out side by side.
    trend_edges = {TREND_DAYS, 2 * TREND_DAYS}

    def needed_at(column: str, k: int) -> bool:
        if k == 0:
            return True
        if column in ("last_purchase", "last_activity"):
            return False
        if column.startswith("gap_"):
            return k == spec.long_window
        if column == "n_engagement":
            return k in trend_edges
        return k in spec.windows_days or (k in trend_edges and column in ("n_purchase", "spend"))

    picks = ", ".join(
        f"any_value({c}) FILTER (WHERE k = {k}) AS {c}_{k}" for k in edges for c in looked_up if needed_at(c, k)
    )
    lookup_sql = f"""probes AS (
    SELECT pid, cid, e.k, obs_ts - to_days(e.k::INTEGER) AS edge
    FROM population CROSS JOIN (SELECT unnest({edges}) AS k) e
),
at_edges AS (
    SELECT pr.pid, pr.k, {", ".join(f"cum.{c}" for c in looked_up)}
    FROM probes pr ASOF LEFT JOIN cum ON cum.cid = pr.cid AND pr.edge > cum.day
),
edge_totals AS (SELECT pid, {picks} FROM at_edges GROUP BY pid)"""
    attrs = "".join(f", c.{_quote(a)}::VARCHAR AS attr_{i}" for i, a in enumerate(spec.attributes))
    categories = ""
    category_join = ""
    if spec.purchases and spec.has_category:
        counts = ", ".join(
            f"count(*) FILTER (WHERE cd.day >= cp.obs_ts - INTERVAL {w} DAY) AS categories_{w}"
            for w in spec.windows_days
        )
        categories = f""",
cat_days AS (
    SELECT DISTINCT cid, category, day FROM ev WHERE event_type = 'purchase' AND category IS NOT NULL
),
cat_probe AS (
    SELECT p.pid, p.cid, p.obs_ts, c.category
    FROM population p JOIN (SELECT DISTINCT cid, category FROM cat_days) c ON c.cid = p.cid
),
cat AS (
    SELECT cp.pid, {counts}
    FROM cat_probe cp ASOF JOIN cat_days cd
      ON cd.cid = cp.cid AND cd.category = cp.category AND cp.obs_ts > cd.day
    GROUP BY cp.pid
)"""
        category_join = "LEFT JOIN cat ON cat.pid = wide.pid"
    select = ",\n    ".join(f"{expr} AS {alias}" for expr, alias in _feature_exprs(spec))
    rfm_cte, rfm_join = _rfm_sql(spec)
    return f"""
WITH cust AS (SELECT row_number() OVER () AS cid, * FROM customers),
ev AS (
    SELECT c.cid, date_trunc('day', e.event_timestamp) AS day, e.event_type, e.amount, e.category
    FROM events e JOIN cust c ON c.customer_id = e.customer_id
),
daily AS (
    SELECT cid, day, {", ".join(daily_cols) or "0 AS _none"}
    FROM ev GROUP BY cid, day
),
daily_gap AS (SELECT *{gap} FROM daily),
cum AS (
    SELECT cid, day, {", ".join(cum_cols)}
    FROM daily_gap
    WINDOW w AS (PARTITION BY cid ORDER BY day)
),
population AS (
    SELECT row_number() OVER () AS pid, c.cid, c.customer_id, o.observation_ts AS obs_ts,
           date_diff('day', c.signup_date, o.observation_ts)::DOUBLE AS tenure_days{attrs}
    FROM cust c JOIN obs o
      ON c.signup_date < o.observation_ts
     AND (c.churn_date IS NULL OR c.churn_date >= o.observation_ts)
),
{lookup_sql},
wide AS (SELECT p.*, t.* EXCLUDE (pid) FROM population p JOIN edge_totals t ON t.pid = p.pid){categories},
features AS (
    SELECT wide.pid, wide.customer_id, wide.obs_ts,
    {select}
    FROM wide {category_join}
){rfm_cte}
SELECT f.customer_id, f.obs_ts::TIMESTAMPTZ AS {names.EVENT_TIMESTAMP}, f.* EXCLUDE (pid, customer_id, obs_ts){rfm_join}
"""


def _rfm_sql(spec: SnapshotSpec) -> tuple[str, str]:
    """RFM scores (1..RFM_BINS, higher is better) by quantile within each observation date.

    `cume_dist` gives tied values the same score, so scores do not depend on row order.

    Returns:
        A CTE `rfm` over `features` (empty without purchases) and the FROM clause of the final select.
    """
    if not spec.purchases:
        return "", " FROM features f"
    long = spec.long_window

    def score(order: str) -> str:
        return f"greatest(1, ceil({RFM_BINS} * cume_dist() OVER (PARTITION BY obs_ts ORDER BY {order})))::DOUBLE"

    parts = [
        f"{score('purchases_days_since_last DESC NULLS FIRST')} AS purchases_rfm_recency",
        f"{score(f'purchases_count_{long}d')} AS purchases_rfm_frequency",
    ]
    inputs = ["pid", "obs_ts", "purchases_days_since_last", f"purchases_count_{long}d"]
    if spec.has_amount:
        parts.append(f"{score(f'purchases_spend_{long}d')} AS purchases_rfm_monetary")
        inputs.append(f"purchases_spend_{long}d")
    cte = f""",
rfm AS (SELECT pid, {", ".join(parts)} FROM (SELECT {", ".join(inputs)} FROM features))"""
    return cte, ", r.* EXCLUDE (pid) FROM features f JOIN rfm r ON r.pid = f.pid"


def rfm_names(spec: SnapshotSpec) -> list[str]:
    """The RFM score columns `feature_sql(spec)` appends."""
    if not spec.purchases:
        return []
    return ["purchases_rfm_recency", "purchases_rfm_frequency"] + (
        ["purchases_rfm_monetary"] if spec.has_amount else []
    )


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def connect() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection in UTC with the `change_ratio` macro the feature SQL uses."""
    con = duckdb.connect()
    # Naive timestamps in the queries mean UTC, whatever the machine's zone.
    con.execute("SET TimeZone = 'UTC'")
    # The relative change, well defined when the earlier window is empty: 0 when both are empty,
    # +1 (capped) when activity appears from nothing.
    con.execute(
        """CREATE MACRO change_ratio(now, before) AS
           CASE WHEN coalesce(before, 0) = 0 THEN (CASE WHEN coalesce(now, 0) = 0 THEN 0.0 ELSE 1.0 END)
                ELSE (coalesce(now, 0) - before) / before END"""
    )
    return con


def relation(con: duckdb.DuckDBPyConnection, data: Path | pd.DataFrame, name: str) -> str:
    """SQL text reading `data`: a Parquet scan for a path, a registered view for a frame."""
    if isinstance(data, Path):
        return "read_parquet('" + str(data).replace("'", "''") + "')"
    con.register(name, data)
    return name


def _columns(con: duckdb.DuckDBPyConnection, source: str) -> list[str]:
    return [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]


def register_inputs(
    con: duckdb.DuckDBPyConnection, events: Path | pd.DataFrame, customers: Path | pd.DataFrame | None = None
) -> None:
    """Create the views `events` and `customers` the feature SQL reads, with contract column types."""
    source = relation(con, events, "_events_df")
    columns = _columns(con, source)
    amount = f"{names.AMOUNT}::DOUBLE" if names.AMOUNT in columns else "NULL::DOUBLE"
    category = f"{names.CATEGORY}::VARCHAR" if names.CATEGORY in columns else "NULL::VARCHAR"
    con.execute(
        "CREATE VIEW events AS SELECT customer_id::VARCHAR AS customer_id,"
        " timezone('UTC', event_timestamp::TIMESTAMPTZ) AS event_timestamp,"
        f" event_type::VARCHAR AS event_type, {amount} AS amount, {category} AS category FROM {source}"
    )
    if customers is None:
        return
    source = relation(con, customers, "_customers_df")
    columns = _columns(con, source)
    churn = "churn_date::TIMESTAMP" if names.CHURN_DATE in columns else "NULL::TIMESTAMP"
    con.execute(
        f"CREATE VIEW customers AS SELECT * EXCLUDE (customer_id, signup_date"
        f"{', churn_date' if names.CHURN_DATE in columns else ''}),"
        f" customer_id::VARCHAR AS customer_id, signup_date::TIMESTAMP AS signup_date, {churn} AS churn_date"
        f" FROM {source}"
    )


def data_shape(
    events: Path | pd.DataFrame, customers: Path | pd.DataFrame, attributes: Sequence[str] = ()
) -> DataShape:
    """What the data holds: event types present, whether purchases carry amounts and categories,
    and which of the wanted static `attributes` the customer table has."""
    con = connect()
    register_inputs(con, events, customers)
    types = tuple(sorted(r[0] for r in con.execute("SELECT DISTINCT event_type FROM events").fetchall()))
    row = con.execute("SELECT count(amount), count(category) FROM events WHERE event_type = 'purchase'").fetchone() or (
        0,
        0,
    )
    present = set(_columns(con, "customers"))
    return DataShape(types, row[0] > 0, row[1] > 0, tuple(a for a in attributes if a in present))


def event_types_in(events: Path | pd.DataFrame) -> tuple[str, ...]:
    """The distinct event types present in an event log, sorted."""
    con = connect()
    register_inputs(con, events)
    return tuple(sorted(r[0] for r in con.execute("SELECT DISTINCT event_type FROM events").fetchall()))


def event_day_range(events: Path | pd.DataFrame) -> tuple[dt.date, dt.date]:
    """First and last day (UTC) with an event."""
    con = connect()
    register_inputs(con, events)
    row = con.execute("SELECT min(event_timestamp)::DATE, max(event_timestamp)::DATE FROM events").fetchone()
    if row is None or row[0] is None:
        raise ValueError("the event log is empty")
    return row[0], row[1]


def prepare(
    events: Path | pd.DataFrame, customers: Path | pd.DataFrame, spec: SnapshotSpec
) -> tuple[duckdb.DuckDBPyConnection, str]:
    """A connection with the inputs registered and the snapshot query for `spec`."""
    if not spec.observation_dates:
        raise ValueError("no observation dates to compute snapshots for")
    con = connect()
    register_inputs(con, events, customers)
    # Microseconds, like DuckDB's TIMESTAMP: nanoseconds would make every join cast the event days.
    obs = pd.DataFrame({"observation_ts": pd.to_datetime(list(spec.observation_dates)).astype("datetime64[us]")})
    con.register("obs", obs)
    return con, feature_sql(spec)


def compute_snapshots(events: Path | pd.DataFrame, customers: Path | pd.DataFrame, spec: SnapshotSpec) -> pd.DataFrame:
    """Behaviour feature snapshots for every active customer at every observation date.

    Args:
        events: The clean event log (Parquet path or frame) with columns customer_id,
            event_timestamp, event_type and optionally amount and category.
        customers: Customers (Parquet path or frame) with customer_id, signup_date, optionally
            churn_date and static attributes. A customer is in a snapshot if signed up before the
            date and not churned before it.
        spec: Observation dates, windows and the data's shape.

    Returns:
        Columns customer_id, event_timestamp (the observation date, UTC), one float column per
        behaviour feature and one string column per static attribute.
    """
    con, sql = prepare(events, customers, spec)
    frame = con.execute(sql).df()
    frame[names.EVENT_TIMESTAMP] = pd.to_datetime(frame[names.EVENT_TIMESTAMP], utc=True)
    return frame.sort_values([names.EVENT_TIMESTAMP, names.CUSTOMER_ID]).reset_index(drop=True)


def write_snapshots(
    events: Path | pd.DataFrame,
    customers: Path | pd.DataFrame,
    spec: SnapshotSpec,
    out: Path,
    *,
    keep_from: Path | None = None,
    keep_dates: Sequence[dt.date] = (),
    memory_limit: str | None = None,
) -> int:
    """Compute snapshots straight into a Parquet file (no pandas copy of the result).

    Args:
        events: Event log, as for `compute_snapshots`.
        customers: Customers, as for `compute_snapshots`.
        spec: What to compute.
        out: The Parquet file to write (the caller makes it atomic).
        keep_from: An earlier snapshots file; its rows for `keep_dates` are copied unchanged
            (an incremental rebuild recomputes only `spec.observation_dates`).
        keep_dates: Observation dates to copy from `keep_from`.
        memory_limit: DuckDB memory cap, e.g. "6GB"; DuckDB spills to disk beyond it.

    Returns:
        Rows written.
    """
    con, sql = prepare(events, customers, spec)
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    # Spill beside the output (the workspace), not into `.tmp` of whatever directory we run in.
    spill = out.parent / ".duckdb-spill"
    con.execute("SET temp_directory = '" + str(spill).replace("'", "''") + "'")
    query = sql
    if keep_from is not None and keep_dates:
        con.register("_keep_dates", pd.DataFrame({"ts": pd.to_datetime(list(keep_dates)).tz_localize("UTC")}))
        old = relation(con, keep_from, "_keep")
        query = (
            f"SELECT * FROM ({sql}) UNION ALL BY NAME SELECT * FROM {old}"
            f" WHERE {names.EVENT_TIMESTAMP} IN (SELECT ts FROM _keep_dates)"
        )
    target = str(out).replace("'", "''")
    # Materialise first: COPY of the whole query plans its CTEs worse than CREATE TABLE does.
    con.execute(f"CREATE TEMP TABLE snapshots AS {query}")
    con.execute(f"COPY snapshots TO '{target}' (FORMAT parquet, ROW_GROUP_SIZE 250000)")
    row = con.execute("SELECT count(*) FROM snapshots").fetchone()
    return int(row[0]) if row else 0


def feature_columns(snapshots: pd.DataFrame) -> list[str]:
    """The feature columns of a snapshot frame (everything but the entity and timestamp)."""
    return [c for c in snapshots.columns if c not in (names.CUSTOMER_ID, names.EVENT_TIMESTAMP)]


def view_of(feature: str) -> str:
    """The Feast feature view a feature belongs to, from its name prefix."""
    prefix = feature.split("_", 1)[0]
    if prefix not in names.FEATURE_VIEWS:
        raise ValueError(f"feature '{feature}' does not start with a view name ({', '.join(names.FEATURE_VIEWS)})")
    return prefix


def snapshot_spec(
    observation_dates: Sequence[dt.date],
    windows_days: Sequence[int],
    event_types: Sequence[str] | DataShape,
) -> SnapshotSpec:
    """Build a `SnapshotSpec` with sorted, de-duplicated dates and windows.

    Args:
        observation_dates: When to observe.
        windows_days: Window lengths in days.
        event_types: The event types present, or the full `DataShape` of the data.
    """
    shape = event_types if isinstance(event_types, DataShape) else DataShape(tuple(event_types))
    windows = tuple(sorted(set(windows_days)))
    if not windows or min(windows) <= 0:
        raise ValueError(f"features.windows_days must be positive day counts, got {list(windows_days)}")
    return SnapshotSpec(
        tuple(sorted(set(observation_dates))),
        windows,
        shape.event_types,
        shape.has_amount,
        shape.has_category,
        shape.attributes,
    )
