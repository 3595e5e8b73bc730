"""What to compute: observation dates, windows and the shape of the data; feature names and their views."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from core import names
from features.snapshots.inputs import DataShape

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

    Returns:
        The spec.

    Raises:
        ValueError: No window, or a window that is not a positive number of days.
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


def feature_columns(snapshots: pd.DataFrame) -> list[str]:
    """The feature columns of a snapshot frame (everything but the entity and timestamp)."""
    return [c for c in snapshots.columns if c not in (names.CUSTOMER_ID, names.EVENT_TIMESTAMP)]


def view_of(feature: str) -> str:
    """The Feast feature view a feature belongs to, from its name prefix."""
    prefix = feature.split("_", 1)[0]
    if prefix not in names.FEATURE_VIEWS:
        raise ValueError(f"feature '{feature}' does not start with a view name ({', '.join(names.FEATURE_VIEWS)})")
    return prefix
