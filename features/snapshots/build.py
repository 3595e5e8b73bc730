"""Snapshots built: the snapshot query run over the inputs, into a frame or straight into Parquet."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd

from core import names
from features.btyd import SCORES, SUMMARY, btyd_scores
from features.snapshots.inputs import connect, register_inputs, relation
from features.snapshots.spec import SnapshotSpec
from features.snapshots.sql import btyd_names, feature_sql


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
    if btyd_names(spec):
        frame[list(SCORES)] = btyd_scores(frame[[names.EVENT_TIMESTAMP, *SUMMARY]], int(spec.btyd_horizon or 0))
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
    if btyd_names(spec):
        _add_btyd_scores(con, spec)
    con.execute(f"COPY snapshots TO '{target}' (FORMAT parquet, ROW_GROUP_SIZE 250000)")
    row = con.execute("SELECT count(*) FROM snapshots").fetchone()
    return int(row[0]) if row else 0


def _add_btyd_scores(con: duckdb.DuckDBPyConnection, spec: SnapshotSpec) -> None:
    """Fill the BG/NBD feature columns of the dates `spec` computes (kept dates keep theirs)."""
    keys = [names.CUSTOMER_ID, names.EVENT_TIMESTAMP]
    for column in SCORES:
        con.execute(f"ALTER TABLE snapshots ADD COLUMN IF NOT EXISTS {column} DOUBLE")
    dates = pd.DataFrame({"ts": pd.to_datetime(list(spec.observation_dates)).tz_localize("UTC")})
    con.register("_computed_dates", dates)
    rows = con.execute(
        f"SELECT {', '.join([*keys, *SUMMARY])} FROM snapshots"
        f" WHERE {names.EVENT_TIMESTAMP} IN (SELECT ts FROM _computed_dates)"
    ).df()
    scores = pd.concat(
        [rows[keys], btyd_scores(rows[[names.EVENT_TIMESTAMP, *SUMMARY]], int(spec.btyd_horizon or 0))], axis=1
    )
    con.register("_btyd", scores)
    assignments = ", ".join(f"{c} = _btyd.{c}" for c in SCORES)
    matched = " AND ".join(f"snapshots.{k} = _btyd.{k}" for k in keys)
    con.execute(f"UPDATE snapshots SET {assignments} FROM _btyd WHERE {matched}")
