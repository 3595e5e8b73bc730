"""Churn labels on Spark: `features.labels.compute_labels` for the keys of a snapshots file.

Activity labels need, for each (customer, observation date), whether any activity day falls in
[date, date + horizon): the first activity day on or after the date, found like the snapshots'
lookups by stacking the keys among the activity days of their customer (a key before a day of its
own date) and carrying the next activity day back with `first(..., true)`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pandas as pd
from pyspark.sql import SparkSession

from core import names
from features.labels import label_cutoff
from features.snapshots.sql import literals
from features.spark.snapshots import register_inputs


def compute_labels(
    spark: SparkSession,
    snapshots: Path,
    customers: Path,
    events: Path,
    *,
    kind: Literal["contractual", "activity"],
    horizon_days: int,
    last_event_day: dt.date,
    activity_event_types: Sequence[str] = ("purchase",),
) -> pd.DataFrame:
    """Label each (customer, observation date) of a snapshots file whose horizon has passed.

    Args:
        spark: The session.
        snapshots: The snapshots Parquet file (its keys are labelled).
        customers: The clean customers (churn_date, for contractual labels).
        events: The clean event log (for activity labels).
        kind: Label definition.
        horizon_days: H: churn within H days after the observation date.
        last_event_day: Last day the data covers; later horizons are incomplete.
        activity_event_types: Event types that count as activity for the activity label.

    Returns:
        Columns customer_id, event_timestamp (UTC), churned (int 0/1), only for labelled rows, as
        `features.labels.compute_labels` returns them.
    """
    cutoff = label_cutoff(last_event_day, horizon_days).isoformat()
    spark.read.parquet(str(snapshots)).select(names.CUSTOMER_ID, names.EVENT_TIMESTAMP).where(
        f"{names.EVENT_TIMESTAMP} <= TIMESTAMP'{cutoff} 00:00:00'"
    ).createOrReplaceTempView("label_keys")
    register_inputs(spark, events, customers)
    end = f"timestampadd(DAY, {horizon_days}, k.{names.EVENT_TIMESTAMP})"
    if kind == "contractual":
        if names.CHURN_DATE not in spark.read.parquet(str(customers)).columns:
            raise ValueError("contractual labels need a churn_date column in customers; use labels.kind: activity")
        query = f"""
            SELECT k.{names.CUSTOMER_ID}, k.{names.EVENT_TIMESTAMP},
                   CASE WHEN c.churn_date >= k.{names.EVENT_TIMESTAMP} AND c.churn_date < {end} THEN 1 ELSE 0 END
                   AS {names.LABEL}
            FROM label_keys k LEFT JOIN customers c ON c.customer_id = k.{names.CUSTOMER_ID}"""
    else:
        types = literals(list(activity_event_types))
        query = f"""
            WITH act AS (
                SELECT DISTINCT customer_id, date_trunc('DAY', event_timestamp) AS day
                FROM events WHERE event_type IN ({types})
            ),
            stacked AS (
                SELECT customer_id, day AS t, 1 AS side, day FROM act
                UNION ALL
                SELECT {names.CUSTOMER_ID}, {names.EVENT_TIMESTAMP}, 0, CAST(NULL AS TIMESTAMP) FROM label_keys
            ),
            nxt AS (
                SELECT customer_id, t, side, first(day, true) OVER (PARTITION BY customer_id ORDER BY t, side
                    ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) AS next_day
                FROM stacked
            )
            SELECT customer_id AS {names.CUSTOMER_ID}, t AS {names.EVENT_TIMESTAMP},
                   CASE WHEN next_day IS NULL OR next_day >= timestampadd(DAY, {horizon_days}, t) THEN 1 ELSE 0 END
                   AS {names.LABEL}
            FROM nxt WHERE side = 0"""
    frame: pd.DataFrame = spark.sql(query).toPandas()
    # Microseconds, as the keys read from Parquet by the DuckDB engine.
    frame[names.EVENT_TIMESTAMP] = (
        pd.to_datetime(frame[names.EVENT_TIMESTAMP]).dt.tz_localize("UTC").astype("datetime64[us, UTC]")
    )
    frame[names.LABEL] = frame[names.LABEL].astype("int64")
    return frame.sort_values([names.EVENT_TIMESTAMP, names.CUSTOMER_ID]).reset_index(drop=True)
