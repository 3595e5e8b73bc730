"""First behaviour features and labels: values on constructed customers, no leakage, no unlabelled horizon."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from churn import names
from features.compute import compute_snapshots, event_types_in, observation_grid, snapshot_spec
from features.labels import compute_labels

OBS = dt.date(2025, 3, 1)


def _events(rows: list[tuple[str, str, str, float | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            names.CUSTOMER_ID: [r[0] for r in rows],
            names.EVENT_TIMESTAMP: pd.to_datetime([r[1] for r in rows], utc=True, format="ISO8601"),
            names.EVENT_TYPE: [r[2] for r in rows],
            names.AMOUNT: [r[3] for r in rows],
        }
    )


CUSTOMERS = pd.DataFrame(
    {
        names.CUSTOMER_ID: ["a", "b", "gone"],
        names.SIGNUP_DATE: pd.to_datetime(["2025-01-01", "2025-02-01", "2025-01-01"]),
        names.CHURN_DATE: pd.to_datetime([None, "2025-03-20", "2025-02-15"]),
    }
)
EVENTS = _events(
    [
        ("a", "2025-01-05 10:00", "purchase", 10.0),
        ("a", "2025-02-10 09:00", "purchase", 20.0),
        ("a", "2025-02-27 12:00", "visit", None),
        ("b", "2025-02-20 00:00", "complaint", None),
        ("b", "2025-02-28 23:59:59", "purchase", 5.0),
        ("gone", "2025-02-01 00:00", "purchase", 7.0),
    ]
)


def _snap(events: pd.DataFrame, dates: list[dt.date] | None = None) -> pd.DataFrame:
    spec = snapshot_spec(dates or [OBS], [7, 30], event_types_in(events))
    return compute_snapshots(events, CUSTOMERS, spec).set_index([names.CUSTOMER_ID, names.EVENT_TIMESTAMP])


def test_values_on_constructed_customers() -> None:
    snap = _snap(EVENTS)
    a = snap.loc[("a", pd.Timestamp(OBS, tz="UTC"))]
    assert a["purchases_count_30d"] == 1 and a["purchases_spend_30d"] == 20.0
    assert a["purchases_frequency_change"] == 0.0  # one purchase in each 30-day window
    assert a["purchases_spend_change"] == pytest.approx(1.0)  # 20 vs 10: up 100%
    assert a["purchases_days_since_last"] == 19
    assert a["engagement_days_since_last_activity"] == 2
    assert a["profile_tenure_days"] == 59
    b = snap.loc[("b", pd.Timestamp(OBS, tz="UTC"))]
    assert b["service_complaints_30d"] == 1 and b["service_complaints_7d"] == 0
    assert b["purchases_frequency_change"] == 1.0  # activity from nothing is capped at +100%
    # A customer who churned before the observation date is not in the snapshot.
    assert "gone" not in snap.index.get_level_values(0)


def test_event_types_absent_from_data_give_no_columns() -> None:
    snap = _snap(EVENTS[EVENTS[names.EVENT_TYPE] == "purchase"])
    assert not [c for c in snap.columns if "visits" in c or "complaints" in c]
    assert "purchases_count_30d" in snap.columns


def test_events_on_or_after_the_observation_date_do_not_leak() -> None:
    later = _events(
        [
            ("a", "2025-03-01 00:00:00", "purchase", 999.0),  # at the observation instant: excluded
            ("a", "2025-03-05 10:00", "complaint", None),
        ]
    )
    before = _snap(EVENTS)
    after = _snap(pd.concat([EVENTS, later], ignore_index=True))
    pd.testing.assert_frame_equal(before, after[before.columns])


def test_labels_contractual_and_incomplete_horizon() -> None:
    keys = pd.DataFrame(
        {
            names.CUSTOMER_ID: ["a", "b", "a", "b"],
            names.EVENT_TIMESTAMP: pd.to_datetime(["2025-03-01", "2025-03-01", "2025-04-01", "2025-04-01"], utc=True),
        }
    )
    labels = compute_labels(
        keys, CUSTOMERS, EVENTS, kind="contractual", horizon_days=30, last_event_day=dt.date(2025, 4, 15)
    )
    # b churns on 2025-03-20, within 30 days of 2025-03-01; the April horizon is not over by 2025-04-15.
    assert labels.set_index(names.CUSTOMER_ID)[names.LABEL].to_dict() == {"a": 0, "b": 1}


def test_labels_activity() -> None:
    keys = pd.DataFrame(
        {names.CUSTOMER_ID: ["a", "b"], names.EVENT_TIMESTAMP: pd.to_datetime(["2025-02-01", "2025-02-01"], utc=True)}
    )
    labels = compute_labels(
        keys, CUSTOMERS, EVENTS, kind="activity", horizon_days=30, last_event_day=dt.date(2025, 4, 1)
    )
    # a buys on 2025-02-10 (active); b's only purchase is on 2025-02-28, within 30 days too.
    assert labels.set_index(names.CUSTOMER_ID)[names.LABEL].to_dict() == {"a": 0, "b": 0}
    labels = compute_labels(
        keys, CUSTOMERS, EVENTS, kind="activity", horizon_days=20, last_event_day=dt.date(2025, 4, 1)
    )
    assert labels.set_index(names.CUSTOMER_ID)[names.LABEL].to_dict() == {"a": 0, "b": 1}


def test_observation_grid_ends_at_the_day_after_the_data() -> None:
    grid = observation_grid(dt.date(2025, 1, 1), dt.date(2025, 3, 31), every_days=7, warmup_days=60)
    assert grid[-1] == dt.date(2025, 4, 1)
    assert grid[0] >= dt.date(2025, 3, 2)
    assert all((b - a).days == 7 for a, b in zip(grid, grid[1:], strict=False))
