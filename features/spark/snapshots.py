"""Snapshots on Spark: the snapshot query of `features.snapshots.sql` in Spark SQL, written to Parquet.

The daily aggregates, running totals, feature expressions and RFM scores are the DuckDB engine's
own (`features.snapshots.sql`, over the `SPARK` dialect); only the lookups differ. DuckDB finds
the running totals before each window edge with an ASOF join; here the edge probes are stacked
among the running-total rows of their customer, ordered by day (a probe before a row of its own
day: only days strictly before the edge count), and `last(totals, true)` carries the latest
row forward to each probe. Categories are looked up the same way per customer and category.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from core import names
from features.btyd import SCORES, SUMMARY, btyd_scores
from features.snapshots.inputs import appended_parts
from features.snapshots.spec import SnapshotSpec
from features.snapshots.sql import (
    Dialect,
    btyd_names,
    category_counts,
    category_days,
    cum_columns,
    daily_columns,
    edges,
    feature_exprs,
    gap_column,
    needed_at,
    rfm_exprs,
)


def _days(start: str, end: str) -> str:
    return f"datediff(CAST({end} AS DATE), CAST({start} AS DATE))"


def _change_ratio(now: str, before: str) -> str:
    # The `change_ratio` macro of `features.snapshots.inputs.connect`, inlined (Spark SQL has no macros).
    return (
        f"CASE WHEN coalesce({before}, 0) = 0 THEN (CASE WHEN coalesce({now}, 0) = 0 THEN CAST(0 AS DOUBLE)"
        f" ELSE CAST(1 AS DOUBLE) END) ELSE (coalesce({now}, 0) - {before}) / {before} END"
    )


SPARK = Dialect(days=_days, change_ratio=_change_ratio)


def _quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


def _timestamp(day: dt.date) -> str:
    return f"TIMESTAMP'{day.isoformat()} 00:00:00'"


def register_inputs(spark: SparkSession, events: Path, customers: Path | None = None) -> None:
    """Temp views `events` and `customers` with the columns and types of the DuckDB engine's views.

    Args:
        spark: The session.
        events: The clean event log; the parts the real-time path appended beside it are read too,
            and an event delivered twice (same `event_id`) counts once.
        customers: The clean customers, if the caller needs them.
    """
    sources = [events]
    parts = appended_parts(events)
    if parts.is_dir() and any(parts.glob("*.parquet")):
        sources.append(parts)
    frames = [spark.read.parquet(str(p)) for p in sources]
    raw = frames[0]
    for more in frames[1:]:
        raw = raw.unionByName(more, allowMissingColumns=True)
    if names.EVENT_ID in raw.columns:
        keyed = raw.where(F.col(names.EVENT_ID).isNotNull()).dropDuplicates([names.EVENT_ID])
        raw = raw.where(F.col(names.EVENT_ID).isNull()).unionByName(keyed)
    optional = {names.AMOUNT: "double", names.CATEGORY: "string"}
    raw.select(
        F.col(names.CUSTOMER_ID).cast("string").alias(names.CUSTOMER_ID),
        F.col(names.EVENT_TIMESTAMP).cast("timestamp").alias(names.EVENT_TIMESTAMP),
        F.col(names.EVENT_TYPE).cast("string").alias(names.EVENT_TYPE),
        *[(F.col(c) if c in raw.columns else F.lit(None)).cast(kind).alias(c) for c, kind in optional.items()],
    ).createOrReplaceTempView("events")
    if customers is None:
        return
    table = spark.read.parquet(str(customers))
    churn = F.col(names.CHURN_DATE) if names.CHURN_DATE in table.columns else F.lit(None)
    keys = (names.CUSTOMER_ID, names.SIGNUP_DATE, names.CHURN_DATE)
    table.select(
        *[F.col(_quote(c)) for c in table.columns if c not in keys],
        F.col(names.CUSTOMER_ID).cast("string").alias(names.CUSTOMER_ID),
        F.col(names.SIGNUP_DATE).cast("timestamp").alias(names.SIGNUP_DATE),
        churn.cast("timestamp").alias(names.CHURN_DATE),
    ).createOrReplaceTempView("customers")


def feature_sql(spec: SnapshotSpec) -> str:
    """The Spark SQL query computing the snapshots for `spec` (columns and values as DuckDB's
    `features.snapshots.sql.feature_sql`, BG/NBD scores aside).

    It expects views `events` and `customers` (`register_inputs`); the observation dates are literals.
    """
    daily_cols = daily_columns(spec)
    cum_cols = cum_columns(spec, daily_cols)
    looked_up = [c.rsplit(" AS ", 1)[1] for c in cum_cols]
    edge_days = edges(spec)
    picks = [(c, k) for k in edge_days for c in looked_up if needed_at(spec, c, k)]
    gap = f", {gap_column(SPARK)}" if spec.purchases else ""
    dates = ", ".join(_timestamp(d) for d in spec.observation_dates)
    attrs = "".join(f", CAST(c.{_quote(a)} AS STRING) AS attr_{i}" for i, a in enumerate(spec.attributes))
    categories = ""
    category_join = ""
    if spec.purchases and spec.has_category:
        counts = category_counts(spec, "last_day", "obs_ts")
        categories = f""",
{category_days(spec)},
cat_stack AS (
    SELECT cid, category, day AS t, 1 AS side, CAST(NULL AS TIMESTAMP) AS obs_ts FROM cat_days
    UNION ALL
    SELECT p.cid, c.category, p.obs_ts AS t, 0 AS side, p.obs_ts
    FROM population p JOIN (SELECT DISTINCT cid, category FROM cat_days) c ON c.cid = p.cid
),
cat_last AS (
    SELECT cid, obs_ts, side, last(CASE WHEN side = 1 THEN t END, true) OVER (
        PARTITION BY cid, category ORDER BY t, side ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS last_day
    FROM cat_stack
),
cat AS (SELECT cid, obs_ts, {counts} FROM cat_last WHERE side = 0 GROUP BY cid, obs_ts)"""
        category_join = "LEFT JOIN cat ON cat.cid = wide.cid AND cat.obs_ts = wide.obs_ts"
    select = ",\n    ".join(f"{expr} AS {alias}" for expr, alias in feature_exprs(spec, SPARK))
    names_out = [alias for _, alias in feature_exprs(spec, SPARK)]
    rfm = "".join(f",\n    {expr} AS {alias}" for expr, alias in rfm_exprs(spec))
    return f"""
WITH ev AS (
    SELECT e.customer_id AS cid, date_trunc('DAY', e.event_timestamp) AS day, e.event_type, e.amount, e.category
    FROM events e LEFT SEMI JOIN customers c ON c.customer_id = e.customer_id
),
daily AS (
    SELECT cid, day, {", ".join(daily_cols)}
    FROM ev GROUP BY cid, day
),
daily_gap AS (SELECT *{gap} FROM daily),
cum AS (
    SELECT cid, day, {", ".join(cum_cols)}
    FROM daily_gap
    WINDOW w AS (PARTITION BY cid ORDER BY day)
),
population AS (
    SELECT c.customer_id AS cid, c.customer_id, o.observation_ts AS obs_ts,
           CAST({_days("c.signup_date", "o.observation_ts")} AS DOUBLE) AS tenure_days{attrs}
    FROM customers c CROSS JOIN (SELECT explode(array({dates})) AS observation_ts) o
    WHERE c.signup_date < o.observation_ts
      AND (c.churn_date IS NULL OR c.churn_date >= o.observation_ts)
),
probes AS (
    SELECT cid, obs_ts, k, timestampadd(DAY, -k, obs_ts) AS edge
    FROM population LATERAL VIEW explode(array({", ".join(map(str, edge_days))})) e AS k
),
stacked AS (
    SELECT cid, day AS t, 1 AS side, CAST(NULL AS TIMESTAMP) AS obs_ts, CAST(NULL AS INT) AS k,
           struct({", ".join(looked_up)}) AS s
    FROM cum
    UNION ALL
    SELECT cid, edge AS t, 0 AS side, obs_ts, k, NULL AS s FROM probes
),
at_edges AS (
    SELECT cid, obs_ts, k, side, last(s, true) OVER (
        PARTITION BY cid ORDER BY t, side ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS s
    FROM stacked
),
edge_totals AS (
    SELECT cid, obs_ts, {", ".join(f"max(CASE WHEN k = {k} THEN s.{c} END) AS {c}_{k}" for c, k in picks)}
    FROM at_edges WHERE side = 0 GROUP BY cid, obs_ts
),
wide AS (
    SELECT p.*, {", ".join(f"t.{c}_{k}" for c, k in picks)}
    FROM population p JOIN edge_totals t ON t.cid = p.cid AND t.obs_ts = p.obs_ts
){categories},
features AS (
    SELECT wide.customer_id, wide.obs_ts,
    {select}
    FROM wide {category_join}
)
SELECT customer_id, obs_ts AS {names.EVENT_TIMESTAMP}, {", ".join(names_out)}{rfm}
FROM features
"""


def snapshots_frame(spark: SparkSession, events: Path, customers: Path, spec: SnapshotSpec) -> DataFrame:
    """The snapshots of `spec` as a Spark DataFrame, BG/NBD scores included (when `spec` has them)."""
    if not spec.observation_dates:
        raise ValueError("no observation dates to compute snapshots for")
    register_inputs(spark, events, customers)
    frame = spark.sql(feature_sql(spec))
    if not btyd_names(spec):
        return frame
    # Read twice (the fit's summary columns, then the join): computed once, kept until the write.
    return with_btyd_scores(frame.persist(StorageLevel.MEMORY_AND_DISK), int(spec.btyd_horizon or 0))


def with_btyd_scores(frame: DataFrame, horizon_days: int) -> DataFrame:
    """`frame` with the BG/NBD score columns, fitted per observation date on the driver.

    The fit is the DuckDB engine's (`features.btyd.btyd_scores`) on the same summary columns: the
    driver collects keys and the three summary columns (five numbers a row), fits four parameters
    per date and sends the scores back as a frame joined on the keys.
    """
    keys = [names.CUSTOMER_ID, names.EVENT_TIMESTAMP]
    rows: pd.DataFrame = frame.select(*keys, *SUMMARY).toPandas()
    scores = btyd_scores(rows[[names.EVENT_TIMESTAMP, *SUMMARY]], horizon_days)
    schema = ", ".join(
        [f"{names.CUSTOMER_ID} string", f"{names.EVENT_TIMESTAMP} timestamp"] + [f"{c} double" for c in SCORES]
    )
    scored = frame.sparkSession.createDataFrame(pd.concat([rows[keys], scores], axis=1), schema)
    return frame.join(scored, keys, "left")


def write_snapshots(
    spark: SparkSession,
    events: Path,
    customers: Path,
    spec: SnapshotSpec,
    out: Path,
    *,
    keep_from: Path | None = None,
    keep_dates: Sequence[dt.date] = (),
) -> int:
    """Compute snapshots on Spark into one Parquet file, like `features.snapshots.build.write_snapshots`.

    Spark writes a folder of parts beside `out` (on a cluster, every executor writes its own); the
    driver then streams them, row group by row group, into the single file Feast and training read.

    Args:
        spark: The session.
        events: The clean event log.
        customers: The clean customers.
        spec: What to compute.
        out: The Parquet file to write (the caller makes it atomic).
        keep_from: An earlier snapshots file whose rows for `keep_dates` are copied unchanged.
        keep_dates: Observation dates to copy from `keep_from`.

    Returns:
        Rows written.
    """
    frame = snapshots_frame(spark, events, customers, spec)
    if keep_from is not None and keep_dates:
        kept = ", ".join(_timestamp(d) for d in keep_dates)
        old = spark.read.parquet(str(keep_from)).where(f"{names.EVENT_TIMESTAMP} IN ({kept})")
        frame = frame.unionByName(old.select(*frame.columns))
    parts = out.parent / f".{out.name}.spark"
    shutil.rmtree(parts, ignore_errors=True)
    try:
        frame.write.mode("overwrite").parquet(str(parts))
        return _concatenate(sorted(parts.glob("part-*.parquet")), out)
    finally:
        spark.catalog.clearCache()
        shutil.rmtree(parts, ignore_errors=True)


def _row_groups(files: Sequence[Path]) -> Iterator[tuple[pq.ParquetFile, int]]:
    for path in files:
        handle = pq.ParquetFile(path)
        for i in range(handle.num_row_groups):
            yield handle, i


def _concatenate(files: Sequence[Path], out: Path) -> int:
    """Stream Parquet parts of one schema into one file; the rows written."""
    if not files:
        raise ValueError("Spark wrote no Parquet parts")
    schema = pq.read_schema(files[0])
    rows = 0
    with pq.ParquetWriter(out, schema) as writer:
        for handle, i in _row_groups(files):
            group = handle.read_row_group(i)
            rows += group.num_rows
            writer.write_table(group)
    return rows
