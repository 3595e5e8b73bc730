"""Behaviour feature snapshots from the event log, computed with DuckDB over Parquet.

One row per customer per observation date. Every value uses only events strictly before the
observation date (midnight UTC), so nothing from the future leaks into training.

Feature names start with their Feast view (`purchases_`, `engagement_`, `service_`, `profile_`);
event types a dataset does not have produce no columns at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from churn import names

TREND_DAYS = 30
"""The trend features compare the last TREND_DAYS days with the TREND_DAYS days before them."""

# event type -> (feature prefix, plural used in feature names)
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
class SnapshotSpec:
    """What to compute: observation dates, windows and the event types the data has."""

    observation_dates: tuple[dt.date, ...]
    windows_days: tuple[int, ...]
    event_types: tuple[str, ...]


def observation_grid(first_event: dt.date, last_event: dt.date, every_days: int, warmup_days: int) -> list[dt.date]:
    """Observation dates from `first_event + warmup_days` up to the day after the last event.

    Args:
        first_event: Day of the earliest event.
        last_event: Day of the latest event.
        every_days: Spacing of the grid.
        warmup_days: History a customer needs before the first observation date.

    Returns:
        The dates, oldest first; the last one is never after the day following `last_event`, so
        every snapshot describes data that exists.
    """
    start = first_event + dt.timedelta(days=warmup_days)
    end = last_event + dt.timedelta(days=1)
    if start > end:
        return []
    n = (end - start).days // every_days
    # Anchor the grid on the end so the newest snapshot is as fresh as the data.
    return [end - dt.timedelta(days=every_days * k) for k in range(n, -1, -1)]


def feature_sql(spec: SnapshotSpec) -> str:
    """The DuckDB query computing the snapshots for `spec`.

    It expects views `events` (customer_id, event_timestamp, event_type, amount, category),
    `customers` (customer_id, signup_date, churn_date) and `obs` (observation_ts) on the connection.
    """
    windows = sorted(set(spec.windows_days))
    lookback = max(max(windows), 2 * TREND_DAYS)
    present = [t for t in COUNTED_EVENTS if t in spec.event_types]
    aggregates: list[str] = []
    for w in windows:
        in_w = f"d.day >= p.obs_ts - INTERVAL {w} DAY"
        for etype in present:
            prefix, label = COUNTED_EVENTS[etype]
            aggregates.append(
                f"coalesce(sum(d.n) FILTER (WHERE d.event_type = '{etype}' AND {in_w}), 0)::DOUBLE"
                f" AS {prefix}_{label}_{w}d"
            )
        if "purchase" in present:
            aggregates.append(
                f"coalesce(sum(d.spend) FILTER (WHERE d.event_type = 'purchase' AND {in_w}), 0)::DOUBLE"
                f" AS purchases_spend_{w}d"
            )
    recent = f"d.day >= p.obs_ts - INTERVAL {TREND_DAYS} DAY"
    before = f"d.day < p.obs_ts - INTERVAL {TREND_DAYS} DAY"
    trend_inputs: list[str] = []
    trends: list[str] = []
    if "purchase" in present:
        trend_inputs += [
            f"sum(d.n) FILTER (WHERE d.event_type = 'purchase' AND {recent}) AS _p_now",
            f"sum(d.n) FILTER (WHERE d.event_type = 'purchase' AND {before}) AS _p_before",
            f"sum(d.spend) FILTER (WHERE d.event_type = 'purchase' AND {recent}) AS _s_now",
            f"sum(d.spend) FILTER (WHERE d.event_type = 'purchase' AND {before}) AS _s_before",
        ]
        trends += [
            "change_ratio(_p_now, _p_before) AS purchases_frequency_change",
            "change_ratio(_s_now, _s_before) AS purchases_spend_change",
        ]
    engagement = [t for t in ENGAGEMENT_EVENTS if t in present]
    if engagement:
        types = ", ".join(f"'{t}'" for t in engagement)
        trend_inputs += [
            f"sum(d.n) FILTER (WHERE d.event_type IN ({types}) AND {recent}) AS _e_now",
            f"sum(d.n) FILTER (WHERE d.event_type IN ({types}) AND {before}) AS _e_before",
        ]
        trends.append("change_ratio(_e_now, _e_before) AS engagement_change")
    recency: list[str] = []
    if "purchase" in present:
        recency.append("date_diff('day', lp.day, a.obs_ts)::DOUBLE AS purchases_days_since_last")
    recency.append("date_diff('day', la.day, a.obs_ts)::DOUBLE AS engagement_days_since_last_activity")
    select_aggs = ",\n        ".join(aggregates + trend_inputs) or "NULL AS _none"
    hidden = ["obs_ts", "customer_id"] + [c.split(" AS ")[1] for c in trend_inputs]
    if not (aggregates or trend_inputs):
        hidden.append("_none")
    purchase_join = "ASOF LEFT JOIN last_purchase lp ON lp.customer_id = a.customer_id AND a.obs_ts > lp.day"
    return f"""
WITH daily AS (
    SELECT customer_id, date_trunc('day', event_timestamp) AS day, event_type,
           count(*) AS n, sum(amount) AS spend
    FROM events GROUP BY ALL
),
last_purchase AS (SELECT DISTINCT customer_id, day FROM daily WHERE event_type = 'purchase'),
last_activity AS (SELECT DISTINCT customer_id, day FROM daily),
population AS (
    SELECT c.customer_id, o.observation_ts AS obs_ts,
           date_diff('day', c.signup_date, o.observation_ts)::DOUBLE AS profile_tenure_days
    FROM customers c JOIN obs o
      ON c.signup_date < o.observation_ts
     AND (c.churn_date IS NULL OR c.churn_date >= o.observation_ts)
),
agg AS (
    SELECT p.customer_id, p.obs_ts, any_value(p.profile_tenure_days) AS profile_tenure_days,
        {select_aggs}
    FROM population p
    LEFT JOIN daily d
      ON d.customer_id = p.customer_id
     AND d.day < p.obs_ts
     AND d.day >= p.obs_ts - INTERVAL {lookback} DAY
    GROUP BY p.customer_id, p.obs_ts
),
with_trends AS (
    SELECT *{", " + ", ".join(trends) if trends else ""} FROM agg
)
SELECT a.customer_id, a.obs_ts AS {names.EVENT_TIMESTAMP},
    a.* EXCLUDE ({", ".join(hidden)}),
    {", ".join(recency)}
FROM with_trends a
{purchase_join if "purchase" in present else ""}
ASOF LEFT JOIN last_activity la ON la.customer_id = a.customer_id AND a.obs_ts > la.day
ORDER BY a.obs_ts, a.customer_id
"""


def _connect() -> duckdb.DuckDBPyConnection:
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


def _relation(con: duckdb.DuckDBPyConnection, data: Path | pd.DataFrame, name: str) -> str:
    """SQL text reading `data`: a Parquet scan for a path, a registered view for a frame."""
    if isinstance(data, Path):
        return "read_parquet('" + str(data).replace("'", "''") + "')"
    con.register(name, data)
    return name


def _register_inputs(
    con: duckdb.DuckDBPyConnection, events: Path | pd.DataFrame, customers: Path | pd.DataFrame
) -> None:
    source = _relation(con, events, "_events_df")
    con.execute(
        "CREATE VIEW events AS SELECT customer_id::VARCHAR AS customer_id,"
        " timezone('UTC', event_timestamp::TIMESTAMPTZ) AS event_timestamp,"
        f" event_type::VARCHAR AS event_type, amount::DOUBLE AS amount FROM {source}"
    )
    source = _relation(con, customers, "_customers_df")
    columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
    churn = "churn_date::TIMESTAMP" if names.CHURN_DATE in columns else "NULL::TIMESTAMP"
    con.execute(
        f"CREATE VIEW customers AS SELECT customer_id::VARCHAR AS customer_id,"
        f" signup_date::TIMESTAMP AS signup_date, {churn} AS churn_date FROM {source}"
    )


def event_types_in(events: Path | pd.DataFrame) -> tuple[str, ...]:
    """The distinct event types present in an event log, sorted."""
    con = _connect()
    _register_inputs(con, events, pd.DataFrame({names.CUSTOMER_ID: [], names.SIGNUP_DATE: []}))
    return tuple(sorted(r[0] for r in con.execute("SELECT DISTINCT event_type FROM events").fetchall()))


def event_day_range(events: Path | pd.DataFrame) -> tuple[dt.date, dt.date]:
    """First and last day (UTC) with an event."""
    con = _connect()
    _register_inputs(con, events, pd.DataFrame({names.CUSTOMER_ID: [], names.SIGNUP_DATE: []}))
    row = con.execute("SELECT min(event_timestamp)::DATE, max(event_timestamp)::DATE FROM events").fetchone()
    if row is None or row[0] is None:
        raise ValueError("the event log is empty")
    return row[0], row[1]


def compute_snapshots(events: Path | pd.DataFrame, customers: Path | pd.DataFrame, spec: SnapshotSpec) -> pd.DataFrame:
    """Behaviour feature snapshots for every active customer at every observation date.

    Args:
        events: The clean event log (Parquet path or frame) with columns customer_id,
            event_timestamp, event_type, amount.
        customers: Customers (Parquet path or frame) with customer_id, signup_date and optionally
            churn_date. A customer is in a snapshot if signed up before the date and not churned before it.
        spec: Observation dates, windows and the event types to build features for.

    Returns:
        Columns customer_id, event_timestamp (the observation date, UTC) and one float column per
        feature: counts and spend per window, trend ratios, recency and tenure.
    """
    con = _connect()
    _register_inputs(con, events, customers)
    obs = pd.DataFrame({"observation_ts": pd.to_datetime(list(spec.observation_dates))})
    con.register("obs", obs)
    frame = con.execute(feature_sql(spec)).df()
    frame[names.EVENT_TIMESTAMP] = pd.to_datetime(frame[names.EVENT_TIMESTAMP]).dt.tz_localize("UTC")
    return frame


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
    observation_dates: Sequence[dt.date], windows_days: Sequence[int], event_types: Sequence[str]
) -> SnapshotSpec:
    """Build a `SnapshotSpec` with sorted, de-duplicated dates and windows."""
    return SnapshotSpec(tuple(sorted(set(observation_dates))), tuple(sorted(set(windows_days))), tuple(event_types))
