"""The snapshot query: one DuckDB statement computing every feature of a spec from running totals.

The daily aggregates, running totals, feature expressions and RFM scores are written once, over a
`Dialect` (the few functions DuckDB and Spark SQL spell differently), so the Spark engine
(`features.spark.snapshots`) computes the same features from the same expressions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core import names
from features.btyd import SCORES
from features.snapshots.spec import RFM_BINS, TREND_DAYS, SnapshotSpec


@dataclass(frozen=True)
class Dialect:
    """The functions the feature expressions need that SQL engines spell differently."""

    days: Callable[[str, str], str]
    """SQL for the whole days from the first timestamp (midnight) to the second."""
    change_ratio: Callable[[str, str], str]
    """SQL for the relative change of `now` against `before` (the `change_ratio` macro of `inputs.connect`)."""


DUCKDB = Dialect(
    days=lambda start, end: f"date_diff('day', {start}, {end})",
    change_ratio=lambda now, before: f"change_ratio({now}, {before})",
)


def feature_names(spec: SnapshotSpec) -> list[str]:
    """The feature columns `feature_sql(spec)` produces, in order."""
    return [alias for _, alias in feature_exprs(spec)]


def feature_exprs(spec: SnapshotSpec, dialect: Dialect = DUCKDB) -> list[tuple[str, str]]:
    """(SQL expression over the `wide` relation, feature name) for every feature of `spec`.

    `wide` holds `obs_ts`, `tenure_days`, `attr_<i>` and each running total `<column>_<k>` looked up
    `k` days before the observation date (`edges`, `needed_at`); `cat` holds `categories_<w>`.
    """

    def window(column: str, days: int) -> str:
        # Exact: counts are whole numbers and sums are DECIMAL, so an empty window is exactly 0.
        return f"(coalesce({column}_0, 0) - coalesce({column}_{days}, 0))::DOUBLE"

    def since(day: str) -> str:
        return f"{dialect.days(day, 'wide.obs_ts')}::DOUBLE"

    t, t2 = TREND_DAYS, 2 * TREND_DAYS

    def trend(column: str) -> str:
        """The last TREND_DAYS days against the TREND_DAYS before them."""
        return dialect.change_ratio(
            window(column, t), f"(coalesce({column}_{t}, 0) - coalesce({column}_{t2}, 0))::DOUBLE"
        )

    out: list[tuple[str, str]] = []
    spend = spec.purchases and spec.has_amount
    summed = {k.type for k in spec.counted if k.type in spec.amount_types}
    for w in spec.windows_days:
        if spec.purchases:
            out.append((window("n_purchase", w), f"purchases_count_{w}d"))
        for kind in spec.counted:
            out.append((window(kind.column, w), f"{kind.view}_{kind.word}_{w}d"))
            if kind.type in summed:
                out.append((window(f"amount_{kind.column}", w), f"{kind.view}_{kind.word}_amount_{w}d"))
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
        out.append((since("last_purchase_0"), "purchases_days_since_last"))
        out.append((trend("n_purchase"), "purchases_frequency_change"))
        if spend:
            out.append((trend("spend"), "purchases_spend_change"))
        # Lifetime: everything before the observation date, and the buy-till-you-die summary.
        out.append(("coalesce(n_purchase_0, 0)::DOUBLE", "purchases_count_lifetime"))
        if spend:
            out.append(("coalesce(spend_0, 0)::DOUBLE", "purchases_spend_lifetime"))
        out.append(("CASE WHEN p_days_0 > 0 THEN p_days_0 - 1 END::DOUBLE", names.BTYD_FREQUENCY))
        out.append((f"{dialect.days('first_purchase_0', 'last_purchase_0')}::DOUBLE", names.BTYD_RECENCY))
        out.append((since("first_purchase_0"), names.BTYD_AGE))
        out.append((f"n_purchase_0 * 30.0 / greatest({since('first_purchase_0')}, 1)", "purchases_rate_30d"))
    for kind in spec.counted:
        # Within the longest window, null beyond it: the share of customers with a type's last event
        # that recent is stationary, while days since a rare type's last event grow with the history
        # the log holds (left-censored), which monitoring would flag as drift on undrifted data.
        last = since(f"last_{kind.column}_0")
        recent = f"CASE WHEN {last} <= {spec.long_window} THEN {last} END"
        out.append((recent, f"{kind.view}_{kind.word}_days_since_last"))
        out.append((trend(kind.column), f"{kind.view}_{kind.word}_change"))
    if spec.engagement_types:
        out.append((trend("n_engagement"), "engagement_change"))
    out.append((since("last_activity_0"), "engagement_days_since_last_activity"))
    out.append(("coalesce(n_all_0, 0)::DOUBLE", "engagement_events_lifetime"))
    out.append(("tenure_days", "profile_tenure_days"))
    out.append((since("first_activity_0"), "profile_age_days"))
    out += [(f"attr_{i}", f"profile_{a}") for i, a in enumerate(spec.attributes)]
    return out


def edges(spec: SnapshotSpec) -> list[int]:
    """Days before the observation date at which running totals are looked up."""
    edges = {0, *spec.windows_days}
    if spec.kinds:
        edges |= {TREND_DAYS, 2 * TREND_DAYS}
    return sorted(edges)


def literals(types: list[str]) -> str:
    """Event types as a SQL list of string literals (they are data: quotes are escaped)."""
    return ", ".join("'" + t.replace("'", "''") + "'" for t in types)


def daily_columns(spec: SnapshotSpec) -> list[str]:
    """`<aggregate> AS <column>` of the daily aggregates per customer and day, over `ev` (event_type, amount)."""
    daily_cols = ["count(*)::DOUBLE AS n_all"]
    daily_cols += [
        f"count(*) FILTER (WHERE event_type = {literals([k.type])})::DOUBLE AS {k.column}" for k in spec.counted
    ]
    # DECIMAL, not DOUBLE: running totals and their differences stay exact, so a window without
    # such events sums to exactly 0 and the result does not depend on summation order.
    daily_cols += [
        f"coalesce(sum(amount::DECIMAL(18, 4)) FILTER (WHERE event_type = {literals([k.type])}), 0)"
        f" AS amount_{k.column}"
        for k in spec.counted
        if k.type in spec.amount_types
    ]
    if spec.engagement_types:
        daily_cols.append(
            f"count(*) FILTER (WHERE event_type IN ({literals(spec.engagement_types)}))::DOUBLE AS n_engagement"
        )
    buying = literals(spec.purchase_types)
    if spec.purchases:
        daily_cols.append(f"count(*) FILTER (WHERE event_type IN ({buying}))::DOUBLE AS n_purchase")
    if spec.purchases and spec.has_amount:
        daily_cols.append(f"coalesce(sum(amount::DECIMAL(18, 4)) FILTER (WHERE event_type IN ({buying})), 0) AS spend")
    return daily_cols


def gap_column(dialect: Dialect) -> str:
    """The gap (days) from the previous purchase day, on each purchase day (needs `n_purchase`)."""
    previous = "lag(day) OVER (PARTITION BY cid, n_purchase > 0 ORDER BY day)"
    return f"CASE WHEN n_purchase > 0 THEN {dialect.days(previous, 'day')}::DOUBLE END AS gap"


def cum_columns(spec: SnapshotSpec, daily_cols: list[str]) -> list[str]:
    """`<expression> AS <column>` of the running totals per customer, over window `w` (by day)."""
    running = [c.rsplit(" AS ", 1)[1] for c in daily_cols]
    cum_cols = [f"sum({c}) OVER w AS {c}" for c in running]
    if spec.purchases:
        cum_cols += [
            "sum(gap) OVER w AS gap_sum",
            "sum(gap * gap) OVER w AS gap_sq",
            "count(gap) OVER w AS gap_n",
            "max(CASE WHEN n_purchase > 0 THEN day END) OVER w AS last_purchase",
            "min(CASE WHEN n_purchase > 0 THEN day END) OVER w AS first_purchase",
            "count(CASE WHEN n_purchase > 0 THEN day END) OVER w AS p_days",
        ]
    cum_cols += [f"max(CASE WHEN {k.column} > 0 THEN day END) OVER w AS last_{k.column}" for k in spec.counted]
    cum_cols += ["day AS last_activity", "min(day) OVER w AS first_activity"]
    return cum_cols


_AT_EDGE_ZERO_ONLY = {"n_all", "first_purchase", "last_purchase", "p_days", "last_activity", "first_activity"}


def needed_at(spec: SnapshotSpec, column: str, k: int) -> bool:
    """Whether the features read running total `column` at `k` days before the observation date."""
    trend_edges = {TREND_DAYS, 2 * TREND_DAYS}
    if k == 0:
        return True
    if column in _AT_EDGE_ZERO_ONLY or column.startswith("last_"):
        return False
    if column.startswith("gap_"):
        return k == spec.long_window
    if column == "n_engagement":
        return k in trend_edges
    if column.startswith("amount_"):
        return k in spec.windows_days
    return k in spec.windows_days or k in trend_edges


def category_days(spec: SnapshotSpec) -> str:
    """The CTE `cat_days`: each (customer, category, day) with a purchase in that category, over `ev`.

    Both engines count a window's distinct categories from it (`category_counts`).
    """
    buying = literals(spec.purchase_types)
    return f"""cat_days AS (
    SELECT DISTINCT cid, category, day FROM ev WHERE event_type IN ({buying}) AND category IS NOT NULL
)"""


def category_counts(spec: SnapshotSpec, day: str, obs: str) -> str:
    """`count(*) FILTER (...) AS categories_<w>` for every window: the categories whose last purchase
    day (`day`, before the observation time `obs`) lies within the window, one row per category."""
    return ", ".join(
        f"count(*) FILTER (WHERE {day} >= {obs} - INTERVAL {w} DAY) AS categories_{w}" for w in spec.windows_days
    )


def feature_sql(spec: SnapshotSpec) -> str:
    """The DuckDB query computing the snapshots for `spec`.

    It expects views `events` (customer_id, event_timestamp, event_type, amount, category),
    `customers` (customer_id, signup_date, churn_date, attributes...) and `obs` (observation_ts).
    """
    daily_cols = daily_columns(spec)
    gap = f", {gap_column(DUCKDB)}" if spec.purchases else ""
    cum_cols = cum_columns(spec, daily_cols)
    looked_up = [c.rsplit(" AS ", 1)[1] for c in cum_cols]
    edge_days = edges(spec)
    # One ASOF join looks up the running totals at every window edge of every (customer, date),
    # then one GROUP BY on the integer row id `pid` lays the edges out side by side.
    picks = ", ".join(
        f"any_value({c}) FILTER (WHERE k = {k}) AS {c}_{k}"
        for k in edge_days
        for c in looked_up
        if needed_at(spec, c, k)
    )
    lookup_sql = f"""probes AS (
    SELECT pid, cid, e.k, obs_ts - to_days(e.k::INTEGER) AS edge
    FROM population CROSS JOIN (SELECT unnest({edge_days}) AS k) e
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
        counts = category_counts(spec, "cd.day", "cp.obs_ts")
        categories = f""",
{category_days(spec)},
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
    select = ",\n    ".join(f"{expr} AS {alias}" for expr, alias in feature_exprs(spec))
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
    parts = [f"{expr} AS {alias}" for expr, alias in rfm_exprs(spec)]
    long = spec.long_window
    inputs = ["pid", "obs_ts", "purchases_days_since_last", f"purchases_count_{long}d"]
    if spec.has_amount:
        inputs.append(f"purchases_spend_{long}d")
    cte = f""",
rfm AS (SELECT pid, {", ".join(parts)} FROM (SELECT {", ".join(inputs)} FROM features))"""
    return cte, ", r.* EXCLUDE (pid) FROM features f JOIN rfm r ON r.pid = f.pid"


def rfm_exprs(spec: SnapshotSpec) -> list[tuple[str, str]]:
    """(window expression over the features and `obs_ts`, name) of each RFM score; none without purchases."""
    if not spec.purchases:
        return []
    long = spec.long_window

    def score(order: str) -> str:
        return f"greatest(1, ceil({RFM_BINS} * cume_dist() OVER (PARTITION BY obs_ts ORDER BY {order})))::DOUBLE"

    out = [
        (score("purchases_days_since_last DESC NULLS FIRST"), "purchases_rfm_recency"),
        (score(f"purchases_count_{long}d"), "purchases_rfm_frequency"),
    ]
    if spec.has_amount:
        out.append((score(f"purchases_spend_{long}d"), "purchases_rfm_monetary"))
    return out


def btyd_names(spec: SnapshotSpec) -> list[str]:
    """The BG/NBD feature columns the build appends after the query's (`features.btyd.btyd_scores`)."""
    return list(SCORES) if spec.purchases and spec.btyd_horizon is not None else []


def rfm_names(spec: SnapshotSpec) -> list[str]:
    """The RFM score columns `feature_sql(spec)` appends."""
    if not spec.purchases:
        return []
    return ["purchases_rfm_recency", "purchases_rfm_frequency"] + (
        ["purchases_rfm_monetary"] if spec.has_amount else []
    )


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
