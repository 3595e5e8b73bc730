"""What changed in the data since the last feature build, and which snapshots it touches.

A snapshot at observation date t uses only events strictly before t and the customers signed up
(and not churned) before t. So a change on day d can only touch snapshots with t > d: an
incremental build recomputes those and copies the rest from the previous build.

The previous build is summarised by a manifest: one digest per day of events and one per
customer, so comparing costs one scan of the data, not a feature computation.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from features.snapshots.inputs import connect, register_inputs
from features.snapshots.spec import SnapshotSpec


@dataclass(frozen=True)
class Manifest:
    """What a feature build was computed from."""

    recipe: dict[str, Any]
    """Everything but the data that decides the snapshots: windows, data shape, grid settings."""
    event_days: dict[str, str]
    """ISO day -> digest of that day's events."""
    customers: dict[str, list[str | None]]
    """customer id -> [digest of the static attributes, signup day, churn day or None] (ISO days)."""

    def to_json(self) -> str:
        """Serialise for `features/manifest.json`."""
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def read(cls, path: Path) -> Manifest | None:
        """The manifest at `path`, or None when there is none or it is unreadable."""
        try:
            raw = json.loads(path.read_text())
            return cls(raw["recipe"], raw["event_days"], raw["customers"])
        except (OSError, ValueError, KeyError, TypeError):
            return None


FEATURES_VERSION = 2
"""Bumped when the feature SQL changes what it computes, so the next build recomputes every date."""


def recipe(spec: SnapshotSpec, every_days: int, origin: dt.date, warmup_days: int) -> dict[str, Any]:
    """The settings and data shape a build depends on besides the data itself."""
    return {
        "features_version": FEATURES_VERSION,
        "windows_days": list(spec.windows_days),
        "event_types": list(spec.event_types),
        "has_amount": spec.has_amount,
        "has_category": spec.has_category,
        "attributes": list(spec.attributes),
        "families": [list(pair) for pair in spec.families],
        "amount_types": list(spec.amount_types),
        "btyd_horizon": spec.btyd_horizon,
        "every_days": every_days,
        "origin": origin.isoformat(),
        "warmup_days": warmup_days,
    }


def summarise(
    events: Path | pd.DataFrame, customers: Path | pd.DataFrame, attributes: tuple[str, ...], recipe: dict[str, Any]
) -> Manifest:
    """Digest the data a build reads: one hash per event day and one per customer."""
    con = connect()
    register_inputs(con, events, customers)
    days = con.execute(
        "SELECT event_timestamp::DATE::VARCHAR AS day, count(*)::VARCHAR || ':'"
        " || bit_xor(hash(customer_id, event_timestamp, event_type, amount, category))::VARCHAR"
        " FROM events GROUP BY ALL"
    ).fetchall()
    attrs = ", ".join(['"' + a.replace('"', '""') + '"' for a in attributes]) or "NULL"
    rows = con.execute(
        f"SELECT customer_id, hash({attrs})::VARCHAR, signup_date::DATE::VARCHAR, churn_date::DATE::VARCHAR"
        " FROM customers"
    ).fetchall()
    return Manifest(recipe, {day: digest for day, digest in days}, {r[0]: [r[1], r[2], r[3]] for r in rows})


def touched_from(old: Manifest, new: Manifest) -> dt.date | None:
    """The day from which snapshots must be recomputed: every date t > this day.

    Returns:
        None when nothing changed; `dt.date.min` when everything must be recomputed (the recipe
        changed, or a customer's static attributes, which every snapshot of that customer shows).
    """
    if old.recipe != new.recipe:
        return dt.date.min
    changed: list[dt.date] = [
        dt.date.fromisoformat(day)
        for day in set(old.event_days) | set(new.event_days)
        if old.event_days.get(day) != new.event_days.get(day)
    ]
    for cid in set(old.customers) | set(new.customers):
        before, after = old.customers.get(cid), new.customers.get(cid)
        if before == after:
            continue
        if before is not None and after is not None and before[0] != after[0]:
            return dt.date.min  # static attributes changed: every snapshot of the customer shows them
        # Signup and churn days decide when the customer is in the population: dates after them change.
        for field in (1, 2):
            values = {row[field] for row in (before, after) if row is not None}
            if before is None or after is None or before[field] != after[field]:
                changed += [dt.date.fromisoformat(d) for d in values if d is not None]
    return min(changed) if changed else None
