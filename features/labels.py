"""Churn labels for (customer, observation date) pairs.

Two definitions, chosen in the config:
- contractual: the customer's `churn_date` falls within `horizon` days from the observation date;
- activity (non-contractual): no qualifying event within `horizon` days from the observation date.

An observation date whose horizon has not fully passed by the end of the data gets no label: it is
dropped, never counted as "stayed".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pandas as pd

from core import names
from features.snapshots.inputs import relation


def label_cutoff(last_event_day: dt.date, horizon_days: int) -> dt.date:
    """The latest observation date whose whole horizon lies within the data.

    Data covers days up to and including `last_event_day`; an observation date d needs days
    d .. d + horizon - 1 to be observed.
    """
    return last_event_day + dt.timedelta(days=1) - dt.timedelta(days=horizon_days)


def compute_labels(
    keys: pd.DataFrame,
    customers: pd.DataFrame,
    events: Path | pd.DataFrame,
    *,
    kind: Literal["contractual", "activity"],
    horizon_days: int,
    last_event_day: dt.date,
    activity_event_types: Sequence[str] = ("purchase",),
) -> pd.DataFrame:
    """Label each (customer, observation date) whose horizon has passed.

    Args:
        keys: Columns customer_id, event_timestamp (the observation date, UTC midnight).
        customers: Columns customer_id and, for contractual labels, churn_date.
        events: Event log (Parquet path or frame) with customer_id, event_timestamp, event_type;
            read only for activity labels.
        kind: Label definition.
        horizon_days: H: churn within H days after the observation date.
        last_event_day: Last day the data covers; later horizons are incomplete.
        activity_event_types: Event types that count as activity for the activity label.

    Returns:
        Columns customer_id, event_timestamp, churned (int 0/1), only for labelled rows.
    """
    cutoff = pd.Timestamp(label_cutoff(last_event_day, horizon_days), tz="UTC")
    frame = keys.loc[keys[names.EVENT_TIMESTAMP] <= cutoff, [names.CUSTOMER_ID, names.EVENT_TIMESTAMP]].copy()
    horizon = pd.Timedelta(days=horizon_days)
    if kind == "contractual":
        if names.CHURN_DATE not in customers.columns:
            raise ValueError("contractual labels need a churn_date column in customers; use labels.kind: activity")
        churn = customers.set_index(names.CUSTOMER_ID)[names.CHURN_DATE]
        churn = pd.to_datetime(churn)
        churn = churn.dt.tz_localize("UTC") if churn.dt.tz is None else churn.dt.tz_convert("UTC")
        when = frame[names.CUSTOMER_ID].map(churn)
        start = frame[names.EVENT_TIMESTAMP]
        frame[names.LABEL] = ((when >= start) & (when < start + horizon)).astype("int64")
        return frame.reset_index(drop=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("keys_df", frame)
    # The event log with the parts the real-time path appended (a redelivered event only repeats a day).
    source = relation(con, events, "events_df")
    params: list[object] = []
    types = list(activity_event_types)
    query = f"""
        WITH act AS (
            SELECT DISTINCT customer_id::VARCHAR AS customer_id,
                   date_trunc('day', timezone('UTC', event_timestamp::TIMESTAMPTZ)) AS day
            FROM {source} WHERE event_type::VARCHAR IN (SELECT unnest(?::VARCHAR[]))
        ), k AS (
            SELECT customer_id, timezone('UTC', event_timestamp) AS obs FROM keys_df
        )
        SELECT k.customer_id, k.obs,
               CASE WHEN count(a.day) = 0 THEN 1 ELSE 0 END AS {names.LABEL}
        FROM k LEFT JOIN act a
          ON a.customer_id = k.customer_id AND a.day >= k.obs AND a.day < k.obs + INTERVAL {horizon_days} DAY
        GROUP BY k.customer_id, k.obs
    """
    labelled = con.execute(query, [*params, types]).df()
    labelled[names.EVENT_TIMESTAMP] = pd.to_datetime(labelled.pop("obs")).dt.tz_localize("UTC")
    merged = frame.merge(labelled, on=[names.CUSTOMER_ID, names.EVENT_TIMESTAMP], how="left")
    merged[names.LABEL] = merged[names.LABEL].astype("int64")
    return merged


def known_at(labels: pd.DataFrame, as_of: dt.date, horizon_days: int) -> pd.DataFrame:
    """The labels someone standing at the start of day `as_of` could know: horizon ended by then.

    A label at observation date t covers days t .. t + horizon - 1, so it is known on day
    t + horizon. Backtests and drift scenarios use this to train "as of" a past date.

    Args:
        labels: Columns customer_id, event_timestamp (observation date, UTC midnight), churned.
        as_of: The simulated today.
        horizon_days: The label horizon.
    """
    cutoff = pd.Timestamp(as_of, tz="UTC") - pd.Timedelta(days=horizon_days)
    return labels.loc[labels[names.EVENT_TIMESTAMP] <= cutoff].reset_index(drop=True)


def in_time_order(frame: pd.DataFrame) -> bool:
    """Whether `frame`'s rows are in (event_timestamp, customer_id) order (as Feast's training rows come)."""
    if len(frame) < 2:
        return True
    # The timestamps as int64 in their unit: `to_numpy` of a time-zone-aware column is an object
    # array of one Timestamp object per row.
    stamps = pd.DatetimeIndex(frame[names.EVENT_TIMESTAMP]).asi8
    customers = frame[names.CUSTOMER_ID].to_numpy(dtype=object)
    later, same = stamps[1:] > stamps[:-1], stamps[1:] == stamps[:-1]
    try:
        return bool(np.all(later | (same & (customers[1:] >= customers[:-1]))))
    except TypeError:  # a missing or non-string id: let a sort decide
        return False


def time_ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` sorted by time then customer (a stable sort) and indexed 0..n-1; not copied when it is already.

    The labels are written in this order, so that a retrieval (whose rows come in it) and a
    split need not sort them again.
    """
    if in_time_order(frame):
        numbered = isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1
        return frame if numbered else frame.reset_index(drop=True)
    return frame.sort_values([names.EVENT_TIMESTAMP, names.CUSTOMER_ID], kind="stable", ignore_index=True)
