"""The ops report's reads of the workspace: the clean customers, the labels and the event log's span.

DuckDB reduces the event log to one row per customer and active month (for activity retention);
missing files become notes for the page, not errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from core import names
from core.settings import Settings
from features.paths import FeaturePaths
from features.snapshots.inputs import event_day_range


@dataclass(frozen=True)
class History:
    """What the workspace's clean data says about the past: customers, labels and the data's end."""

    customers: pd.DataFrame | None
    """The clean customers table (None when it is missing)."""
    labels: pd.DataFrame | None
    """Labels (event_timestamp, churned); None when not built yet."""
    activity: pd.DataFrame | None
    """One row per (customer, month with an event), event_timestamp = the month's first day; read only
    for activity retention (no churn dates)."""
    first_day: pd.Timestamp | None
    """First day with an event: the data starts here (months before it are not shown)."""
    last_day: pd.Timestamp | None
    """Last day with an event."""
    notes: tuple[str, ...] = ()
    """What was missing, for the page."""

    @property
    def contractual(self) -> bool:
        """Whether customers have churn dates (contractual churn)."""
        return has_churn_dates(self.customers)


def has_churn_dates(customers: pd.DataFrame | None) -> bool:
    """Whether a customers table has at least one churn date."""
    return (
        customers is not None
        and names.CHURN_DATE in customers.columns
        and bool(customers[names.CHURN_DATE].notna().any())
    )


def load_history(settings: Settings) -> History:
    """Read what the trend and retention sections need from the workspace's clean data and labels.

    Events are reduced (in DuckDB) to one row per customer and active month, and read only when
    customers have no churn dates. Missing files become notes, not errors.
    """
    paths = FeaturePaths.of(settings)
    if settings.data.table is not None:  # a customer table: labels per snapshot, no event history
        labels = (
            pd.read_parquet(paths.labels, columns=[names.EVENT_TIMESTAMP, names.LABEL])
            if paths.labels.exists()
            else None
        )
        note = "The data is a customer table (one row per customer and snapshot): no event history for cohorts."
        return History(None, labels, None, None, None, (note,))
    notes: list[str] = []
    customers = pd.read_parquet(paths.clean_customers) if paths.clean_customers.exists() else None
    if customers is None:
        notes.append(f"{paths.clean_customers} does not exist: run `churn data ingest` first.")
    first_day = last_day = None
    if paths.clean_events.exists():
        try:
            first, last = event_day_range(paths.clean_events)
            first_day, last_day = pd.Timestamp(first), pd.Timestamp(last)
        except ValueError:
            notes.append("The event log is empty.")
    else:
        notes.append(f"{paths.clean_events} does not exist: run `churn data ingest` first.")
    labels = activity = None
    if paths.labels.exists():  # the trend without churn dates, or with too short a history for a month
        labels = pd.read_parquet(paths.labels, columns=[names.EVENT_TIMESTAMP, names.LABEL])
    elif not has_churn_dates(customers):
        notes.append(f"{paths.labels} does not exist: run `churn features build` first.")
    if not has_churn_dates(customers) and last_day is not None:
        activity = active_months(paths.clean_events)
    return History(customers, labels, activity, first_day, last_day, tuple(notes))


def active_months(events_path: Path) -> pd.DataFrame:
    """One row per customer and calendar month (UTC) with any event: customer_id, event_timestamp (month start)."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(
            f"""
            SELECT DISTINCT CAST({names.CUSTOMER_ID} AS VARCHAR) AS {names.CUSTOMER_ID},
                   CAST(date_trunc('month', {names.EVENT_TIMESTAMP}) AS TIMESTAMP) AS {names.EVENT_TIMESTAMP}
            FROM read_parquet(?)
            """,
            [str(events_path)],
        ).df()
    finally:
        con.close()


def first_month(history: History) -> pd.Timestamp | None:
    """The first calendar month the event data reaches into (its first day)."""
    return history.first_day.to_period("M").to_timestamp() if history.first_day is not None else None
