"""First behaviour features and labels: values on constructed customers, no leakage, no unlabelled horizon."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from core import names
from features.labels import compute_labels
from features.snapshots.build import compute_snapshots
from features.snapshots.inputs import data_shape, event_types_in
from features.snapshots.spec import observation_grid, snapshot_spec
from features.snapshots.sql import feature_names, rfm_names

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


def test_observation_grid_is_anchored_and_ends_at_the_day_after_the_data() -> None:
    grid = observation_grid(dt.date(2025, 1, 1), dt.date(2025, 3, 31), every_days=7, warmup_days=60)
    assert grid[-1] == dt.date(2025, 4, 1)  # the freshest snapshot: the day after the data
    assert grid[0] >= dt.date(2025, 3, 2)
    weekly = grid[:-1]
    assert all(d.weekday() == 0 for d in weekly)  # the default origin is a Monday
    assert all((b - a).days == 7 for a, b in zip(weekly, weekly[1:], strict=False))
    # One more day of data adds a date; it does not move the grid.
    longer = observation_grid(dt.date(2025, 1, 1), dt.date(2025, 4, 1), every_days=7, warmup_days=60)
    assert set(weekly) <= set(longer) and longer[-1] == dt.date(2025, 4, 2)
    assert observation_grid(dt.date(2025, 1, 1), dt.date(2025, 1, 5), every_days=7, warmup_days=60) == []
    # When the day after the data is on the grid, it is not listed twice.
    on_grid = observation_grid(dt.date(2025, 1, 1), dt.date(2025, 3, 30), every_days=7, warmup_days=60)
    assert on_grid[-1] == dt.date(2025, 3, 31) and len(on_grid) == len(set(on_grid))


# ------------------------------------------------------------------ the full feature set

RICH_OBS = dt.date(2025, 4, 1)
RICH_CUSTOMERS = pd.DataFrame(
    {
        names.CUSTOMER_ID: ["p", "q", "new", "late"],
        names.SIGNUP_DATE: pd.to_datetime(["2024-12-01", "2024-12-01", "2025-03-31", "2025-04-01"]),
        names.CHURN_DATE: pd.to_datetime([None, None, None, None]),
        "plan": ["gold", "basic", "basic", "gold"],
        "region": ["north", None, "south", "east"],
    }
)


def _rich_events() -> pd.DataFrame:
    rows: list[tuple[str, str, str, float | None, str | None]] = [
        # p: purchases on days spaced 10, 10, 20 days apart (gaps 10, 10, 20), two categories.
        ("p", "2025-02-20 10:00", "purchase", 30.0, "books"),
        ("p", "2025-03-02 10:00", "purchase", 10.0, "books"),
        ("p", "2025-03-12 09:00", "purchase", 20.0, "toys"),
        ("p", "2025-03-12 18:00", "purchase", 40.0, "toys"),  # same day: one purchase day, two orders
        ("p", "2025-03-25 08:00", "visit", None, None),
        ("p", "2025-03-26 08:00", "click", None, None),
        ("p", "2025-03-27 08:00", "message", None, None),
        ("p", "2025-03-28 08:00", "support_ticket", None, None),
        # q: one old purchase, complaints.
        ("q", "2024-12-20 12:00", "purchase", 100.0, "garden"),
        ("q", "2025-03-30 12:00", "complaint", None, None),
        ("q", "2025-03-31 23:00", "complaint", None, None),
    ]
    frame = pd.DataFrame(
        rows, columns=[names.CUSTOMER_ID, names.EVENT_TIMESTAMP, names.EVENT_TYPE, names.AMOUNT, names.CATEGORY]
    )
    frame[names.EVENT_TIMESTAMP] = pd.to_datetime(frame[names.EVENT_TIMESTAMP], utc=True)
    return frame


def _rich(events: pd.DataFrame, customers: pd.DataFrame = RICH_CUSTOMERS) -> pd.DataFrame:
    shape = data_shape(events, customers, ("plan", "region", "not_in_file"))
    spec = snapshot_spec([RICH_OBS], [7, 30, 90], shape)
    frame = compute_snapshots(events, customers, spec)
    assert list(frame.columns[2:]) == feature_names(spec) + rfm_names(spec)
    return frame.set_index(names.CUSTOMER_ID)


def test_purchase_features_on_constructed_customers() -> None:
    snap = _rich(_rich_events())
    p = snap.loc["p"]
    assert p["purchases_count_30d"] == 3 and p["purchases_count_90d"] == 4 and p["purchases_count_7d"] == 0
    assert p["purchases_spend_30d"] == 70.0 and p["purchases_avg_order_value_30d"] == pytest.approx(70 / 3)
    assert p["purchases_categories_30d"] == 2 and p["purchases_categories_90d"] == 2
    assert p["purchases_categories_7d"] == 0
    # Purchase days 02-20, 03-02, 03-12: gaps 10 and 10 days (two orders on 03-12 are one day).
    assert p["purchases_gap_mean_90d"] == 10.0 and p["purchases_gap_std_90d"] == 0.0
    assert p["purchases_days_since_last"] == 20
    assert p["engagement_visits_7d"] == 1 and p["engagement_clicks_7d"] == 1 and p["engagement_messages_7d"] == 1
    assert p["service_tickets_7d"] == 1 and p["engagement_days_since_last_activity"] == 4
    q = snap.loc["q"]
    assert q["purchases_count_90d"] == 0 and q["purchases_days_since_last"] == 102
    # No purchase in the window: no average order value rather than a made-up 0.
    assert pd.isna(q["purchases_avg_order_value_90d"]) and pd.isna(q["purchases_gap_mean_90d"])
    assert q["service_complaints_7d"] == 2 and q["engagement_days_since_last_activity"] == 1
    new = snap.loc["new"]
    assert new["profile_tenure_days"] == 1 and pd.isna(new["purchases_days_since_last"])
    assert new["purchases_count_90d"] == 0 and new["engagement_change"] == 0.0
    # Signed up on the observation date: not a customer yet.
    assert "late" not in snap.index


def test_gap_variability_and_static_attributes() -> None:
    events = _rich_events()
    extra = events.iloc[[0]].assign(**{names.EVENT_TIMESTAMP: pd.Timestamp("2025-03-22 10:00", tz="UTC")})
    snap = _rich(pd.concat([events, extra], ignore_index=True))
    # A purchase on 03-22 adds a third gap of 10 days.
    assert snap.loc["p", "purchases_gap_mean_90d"] == 10.0 and snap.loc["p", "purchases_gap_std_90d"] == 0.0
    # One on 03-31 instead: gaps 10, 10, 19.
    more = events.iloc[[0]].assign(**{names.EVENT_TIMESTAMP: pd.Timestamp("2025-03-31 10:00", tz="UTC")})
    snap = _rich(pd.concat([events, more], ignore_index=True))
    gaps = np.array([10.0, 10.0, 19.0])
    assert snap.loc["p", "purchases_gap_mean_90d"] == pytest.approx(gaps.mean())
    assert snap.loc["p", "purchases_gap_std_90d"] == pytest.approx(gaps.std())
    # Static attributes come through as strings; an attribute the file lacks gives no column.
    assert snap.loc["p", "profile_plan"] == "gold" and snap.loc["new", "profile_region"] == "south"
    assert pd.isna(snap.loc["q", "profile_region"])
    assert "profile_not_in_file" not in snap.columns


def test_rfm_scores_rank_within_the_observation_date() -> None:
    snap = _rich(_rich_events())
    for col in ("purchases_rfm_recency", "purchases_rfm_frequency", "purchases_rfm_monetary"):
        assert snap[col].between(1, 5).all()
    # p bought 20 days ago, q 102 days ago, new never: recency scores in that order.
    r = snap["purchases_rfm_recency"]
    assert r["p"] > r["q"] > r["new"]
    assert snap.loc["p", "purchases_rfm_frequency"] > snap.loc["q", "purchases_rfm_frequency"]
    # Ties share a score: q and new both have no purchase in 90 days.
    assert snap.loc["q", "purchases_rfm_frequency"] == snap.loc["new", "purchases_rfm_frequency"]


def test_purchases_only_export_without_amounts_or_categories() -> None:
    events = _rich_events()
    bare = events[events[names.EVENT_TYPE] == "purchase"].drop(columns=[names.AMOUNT, names.CATEGORY])
    snap = _rich(bare)
    assert not [c for c in snap.columns if c.startswith(("engagement_visits", "service_", "engagement_change"))]
    assert not [c for c in snap.columns if "spend" in c or "order_value" in c or "categories" in c or "monetary" in c]
    assert snap.loc["p", "purchases_count_30d"] == 3 and snap.loc["p", "purchases_rfm_frequency"] >= 1
    # Activity recency still exists: a purchase is activity.
    assert snap.loc["p", "engagement_days_since_last_activity"] == 20


def test_no_purchases_at_all_gives_no_purchase_columns() -> None:
    events = _rich_events()
    snap = _rich(events[events[names.EVENT_TYPE] != "purchase"])
    assert not [c for c in snap.columns if c.startswith("purchases_")]
    assert snap.loc["p", "engagement_visits_30d"] == 1
