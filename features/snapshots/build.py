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


EVENT_COLUMNS = {
    names.CUSTOMER_ID: "VARCHAR",
    names.EVENT_TIMESTAMP: "TIMESTAMPTZ",
    names.EVENT_TYPE: "VARCHAR",
    names.AMOUNT: "DOUBLE",
    names.CATEGORY: "VARCHAR",
}
"""`SnapshotQuery`'s events table: the clean log's columns with the types `stream.log.EventLog` holds them in."""


class SnapshotQuery:
    """The snapshot query for one observation time at a time, kept planned on one connection.

    `prepare` + execute costs a connection, the input views and the planning of a long query on
    every call: for the few customers of a real-time update that is most of the time. Here the
    inputs are tables the connection keeps, refilled on each call, and the query is prepared once;
    the views and the query text are the batch build's (`register_inputs`, `feature_sql`), so a
    row equals the one `compute_snapshots` gives for the same inputs and time. One call at a time.
    """

    def __init__(self, spec: SnapshotSpec, customers: pd.DataFrame, threads: int | None = None) -> None:
        """Create the input tables and prepare the query.

        Args:
            spec: Windows, event types, families, attributes (its observation dates are not used).
            customers: Every customer the calls may ask for (their columns give the table's types).
            threads: DuckDB threads (None: DuckDB's default, one per core).
        """
        self.spec = spec
        self.con = connect()
        if threads is not None:
            self.con.execute(f"SET threads = {int(threads)}")
        self.con.execute(f"CREATE TABLE _events ({', '.join(f'{c} {t}' for c, t in EVENT_COLUMNS.items())})")
        self.con.register("_all_customers", customers)
        self.con.execute("CREATE TABLE _customers AS SELECT * FROM _all_customers LIMIT 0")
        self.con.unregister("_all_customers")
        # The same type as `prepare`'s frame of microsecond datetimes.
        self.con.execute("CREATE TABLE obs (observation_ts TIMESTAMP)")
        register_inputs(self.con, "_events", "_customers")
        self.con.execute(f"PREPARE snapshots AS {feature_sql(spec)}")

    def __call__(self, events: pd.DataFrame, customers: pd.DataFrame, at: dt.datetime) -> pd.DataFrame:
        """The query's rows for `customers` at `at` (naive UTC), from `events` (the clean log's columns).

        Returns:
            What `prepare`'s query returns for the same inputs: customer_id, event_timestamp and
            the behaviour features (RFM scores ranked among these customers alone).
        """
        con = self.con
        con.execute("DELETE FROM _events")
        con.execute("DELETE FROM _customers")
        con.execute("DELETE FROM obs")
        if len(events):
            con.append("_events", events.reindex(columns=EVENT_COLUMNS))
        if len(customers):
            con.append("_customers", customers, by_name=True)
        con.execute("INSERT INTO obs VALUES ($1)", [at])
        return con.execute("EXECUTE snapshots").df()

    def close(self) -> None:
        """Close the connection."""
        self.con.close()


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
