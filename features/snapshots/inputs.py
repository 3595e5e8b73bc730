"""DuckDB over the clean data: the connection the feature SQL runs on, its input views, and what the data holds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from core import names


@dataclass(frozen=True)
class DataShape:
    """What an event log and customer table contain, which decides the feature list."""

    event_types: tuple[str, ...]
    has_amount: bool = True
    """Whether purchases carry amounts."""
    has_category: bool = True
    attributes: tuple[str, ...] = ()
    amount_types: tuple[str, ...] = ()
    """Event types other than `purchase` whose events carry amounts (with a purchase family of several
    types, the spec decides which of them are purchases)."""


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


def appended_parts(path: Path) -> Path:
    """The folder of Parquet parts appended to the Parquet file `path` (`events.parquet` ->
    `events.parts/`): the real-time path adds the events it accepts there, and every read of
    the event log through `relation` reads them with the file."""
    return path.with_suffix(".parts")


def _literal(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def relation(con: duckdb.DuckDBPyConnection, data: Path | pd.DataFrame | str, name: str) -> str:
    """SQL text reading `data`: a Parquet scan for a path (with its appended parts, if any), a
    registered view for a frame, the name itself for a table the connection holds (a string)."""
    if isinstance(data, str):
        return data
    if isinstance(data, Path):
        parts = appended_parts(data)
        if parts.is_dir() and any(parts.glob("*.parquet")):
            return f"read_parquet([{_literal(data)}, {_literal(parts / '*.parquet')}], union_by_name = true)"
        return f"read_parquet({_literal(data)})"
    con.register(name, data)
    return name


def _columns(con: duckdb.DuckDBPyConnection, source: str) -> list[str]:
    return [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]


def register_inputs(
    con: duckdb.DuckDBPyConnection,
    events: Path | pd.DataFrame | str,
    customers: Path | pd.DataFrame | str | None = None,
) -> None:
    """Create the views `events` and `customers` the feature SQL reads, with contract column types.

    Each input is a Parquet path, a frame, or the name of a table the connection holds (see `relation`).
    """
    source = relation(con, events, "_events_df")
    columns = _columns(con, source)
    amount = f"{names.AMOUNT}::DOUBLE" if names.AMOUNT in columns else "NULL::DOUBLE"
    category = f"{names.CATEGORY}::VARCHAR" if names.CATEGORY in columns else "NULL::VARCHAR"
    # Events pushed in real time carry an id; one delivered twice (at-least-once) counts once.
    once = (
        f" QUALIFY {names.EVENT_ID} IS NULL OR row_number() OVER (PARTITION BY {names.EVENT_ID}) = 1"
        if names.EVENT_ID in columns
        else ""
    )
    con.execute(
        "CREATE VIEW events AS SELECT customer_id::VARCHAR AS customer_id,"
        " timezone('UTC', event_timestamp::TIMESTAMPTZ) AS event_timestamp,"
        f" event_type::VARCHAR AS event_type, {amount} AS amount, {category} AS category FROM {source}{once}"
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
    events: Path | pd.DataFrame,
    customers: Path | pd.DataFrame,
    attributes: Sequence[str] = (),
    purchase_types: Sequence[str] = ("purchase",),
) -> DataShape:
    """What the data holds: event types present, whether purchases carry amounts and categories,
    which other types carry amounts, and which of the wanted static `attributes` the customer table has.

    Args:
        events: The clean event log.
        customers: The clean customers.
        attributes: Static attributes wanted (`data.customers.attributes`).
        purchase_types: The event types that are purchases (`data.events.families`).
    """
    con = connect()
    register_inputs(con, events, customers)
    rows = con.execute(
        "SELECT event_type, count(amount) > 0, count(category) > 0 FROM events GROUP BY event_type ORDER BY event_type"
    ).fetchall()
    types = tuple(r[0] for r in rows)
    buying = [r for r in rows if r[0] in set(purchase_types)]
    present = set(_columns(con, "customers"))
    return DataShape(
        types,
        any(r[1] for r in buying),
        any(r[2] for r in buying),
        tuple(a for a in attributes if a in present),
        tuple(r[0] for r in rows if r[1] and r[0] not in set(purchase_types)),
    )


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


def compact_parts(path: Path) -> tuple[int, int]:
    """Merge the parts appended to the Parquet file `path` into one part, each event id once.

    The real-time path writes a part per batch; without compaction the folder grows by a file per
    batch and every read opens them all. The merged part is written (atomically) before the parts
    it replaces are deleted, so a reader in between sees an event in both, which every read counts
    once (by event id: `register_inputs`, `stream.log.EventLog`). Parts appended while this runs are
    left for the next compaction.

    Args:
        path: The clean events file.

    Returns:
        (parts merged, events in the merged part); (0, 0) when there were fewer than two parts.
    """
    from core.io import write_atomic_parquet

    folder = appended_parts(path)
    parts = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if len(parts) < 2:
        return 0, 0
    con = connect()
    files = ", ".join(_literal(p) for p in parts)
    # The first copy of each id (by part name, which starts with its write time) is the one kept.
    merged = con.execute(
        f"SELECT * EXCLUDE (filename) FROM (SELECT * FROM read_parquet([{files}], union_by_name = true,"
        f" filename = true) QUALIFY {names.EVENT_ID} IS NULL"
        f" OR row_number() OVER (PARTITION BY {names.EVENT_ID} ORDER BY filename) = 1)"
        f" ORDER BY filename, {names.EVENT_TIMESTAMP}"
    ).to_arrow_table()
    con.close()
    assert merged is not None, "a SELECT always has a result"
    stamp = parts[-1].stem.removeprefix("part-")
    write_atomic_parquet(merged, folder / f"part-{stamp}-compacted.parquet")
    for part in parts:
        part.unlink()
    return len(parts), merged.num_rows
