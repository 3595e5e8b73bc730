"""What to compute: observation dates, windows and the shape of the data; feature names and their views."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from core import names
from features.snapshots.inputs import DataShape

TREND_DAYS = 30
"""The trend features compare the last TREND_DAYS days with the TREND_DAYS days before them."""

RFM_BINS = 5
"""RFM scores run from 1 (worst) to RFM_BINS (best) within each observation date."""

FAMILIES = ("purchase", "engagement", "service")
"""Families of event types: purchases drive spend, gaps, RFM and the lifetime features; engagement
the engagement trend; service is counted like the others."""

FAMILY_VIEW = {"purchase": names.VIEW_PURCHASES, "engagement": names.VIEW_ENGAGEMENT, "service": names.VIEW_SERVICE}
"""The Feast view (and feature name prefix) of each family's features."""

DEFAULT_FAMILY = "engagement"
"""The family of an event type the config does not map: activity of some kind."""

STANDARD_TYPES: dict[str, tuple[str, str]] = {
    "purchase": ("purchase", "count"),
    "visit": ("engagement", "visits"),
    "click": ("engagement", "clicks"),
    "message": ("engagement", "messages"),
    "complaint": ("service", "complaints"),
    "support_ticket": ("service", "tickets"),
}
"""The six event types the platform started with: their family and the word their features use."""


@dataclass(frozen=True)
class EventKind:
    """One event type of the data as the features see it."""

    type: str
    """The `event_type` value."""
    family: str
    word: str
    """The word in its feature names, e.g. `visits` in `engagement_visits_30d`."""
    column: str
    """The SQL identifier of its running count (`n_<position>`): event types are data, not identifiers."""

    @property
    def view(self) -> str:
        """The Feast view its features belong to."""
        return FAMILY_VIEW[self.family]


def family_of(event_type: str, families: Mapping[str, str]) -> str:
    """The family of an event type: as configured, else its standard family, else `DEFAULT_FAMILY`."""
    return families.get(event_type, STANDARD_TYPES.get(event_type, (DEFAULT_FAMILY, ""))[0])


def word_of(event_type: str) -> str:
    """The word a configured event type gets in feature names: lower case, runs of other characters as `_`."""
    return re.sub(r"[^a-z0-9]+", "_", event_type.lower()).strip("_") or "type"


@dataclass(frozen=True)
class SnapshotSpec:
    """What to compute: observation dates, windows and the shape of the data."""

    observation_dates: tuple[dt.date, ...]
    windows_days: tuple[int, ...]
    event_types: tuple[str, ...]
    has_amount: bool = True
    """Whether purchase events carry amounts."""
    has_category: bool = True
    attributes: tuple[str, ...] = ()
    families: tuple[tuple[str, str], ...] = ()
    """(event type, family) the config sets; a standard type without one keeps its own family,
    any other type is `DEFAULT_FAMILY`."""
    amount_types: tuple[str, ...] = ()
    """Event types outside the purchase family whose events carry amounts (they get per-window sums)."""
    btyd_horizon: int | None = None
    """With purchases: the horizon (days) of the BG/NBD features fitted per observation date
    (`features.btyd.btyd_scores`); None: no BG/NBD features."""

    @property
    def kinds(self) -> list[EventKind]:
        """Every event type present, standard types first in their usual order, then the others sorted."""
        configured = dict(self.families)
        ordered = [t for t in STANDARD_TYPES if t in self.event_types]
        ordered += sorted(t for t in self.event_types if t not in STANDARD_TYPES)
        family = {t: family_of(t, configured) for t in ordered}
        several_purchase_types = sum(f == "purchase" for f in family.values()) > 1
        kinds: list[EventKind] = []
        used: set[str] = set()
        for i, etype in enumerate(ordered):
            standard = STANDARD_TYPES.get(etype)
            # A standard type keeps its usual word (`engagement_visits_30d`, `service_tickets_30d`)
            # unless it moved family or shares the purchase family with other types.
            keeps_word = (
                standard is not None
                and standard[0] == family[etype]
                and not (family[etype] == "purchase" and several_purchase_types)
            )
            word = standard[1] if standard is not None and keeps_word else word_of(etype)
            while word in used:  # two types that read alike ("add-contact", "add contact")
                word += "_"
            used.add(word)
            kinds.append(EventKind(etype, family[etype], word, f"n_{i}"))
        return kinds

    @property
    def purchase_types(self) -> list[str]:
        """The event types of the purchase family."""
        return [k.type for k in self.kinds if k.family == "purchase"]

    @property
    def engagement_types(self) -> list[str]:
        """The event types of the engagement family."""
        return [k.type for k in self.kinds if k.family == "engagement"]

    @property
    def purchases(self) -> bool:
        """Whether the data has purchase events."""
        return bool(self.purchase_types)

    @property
    def counted(self) -> list[EventKind]:
        """The event types with features of their own: all but a purchase family of one type, which the
        purchase features already describe."""
        alone = len(self.purchase_types) == 1
        return [k for k in self.kinds if not (alone and k.family == "purchase")]

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
    families: Sequence[tuple[str, str]] = (),
    btyd_horizon: int | None = None,
) -> SnapshotSpec:
    """Build a `SnapshotSpec` with sorted, de-duplicated dates and windows.

    Args:
        observation_dates: When to observe.
        windows_days: Window lengths in days.
        event_types: The event types present, or the full `DataShape` of the data.
        families: (event type, family) pairs from the config (`data.events.families`); types the
            data lacks are ignored.
        btyd_horizon: The label horizon, for the BG/NBD features of data with purchases; None: none.

    Returns:
        The spec.

    Raises:
        ValueError: No window, a window that is not a positive number of days, or an unknown family.
    """
    shape = event_types if isinstance(event_types, DataShape) else DataShape(tuple(event_types))
    if any(f not in FAMILIES for _, f in families):
        bad = sorted({f for _, f in families if f not in FAMILIES})
        raise ValueError(f"data.events.families: unknown families {bad}; choose from {', '.join(FAMILIES)}")
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
        tuple(sorted((t, f) for t, f in families if t in shape.event_types)),
        shape.amount_types,
        btyd_horizon,
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
