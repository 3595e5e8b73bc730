"""Lifetime behaviour features and features for any event taxonomy: values on constructed customers."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from core import names
from features.snapshots.build import compute_snapshots
from features.snapshots.inputs import data_shape
from features.snapshots.spec import family_of, snapshot_spec, word_of
from features.snapshots.sql import feature_names

OBS = pd.Timestamp("2025-03-01", tz="UTC")
CUSTOMERS = pd.DataFrame(
    {
        names.CUSTOMER_ID: ["a", "b", "new"],
        names.SIGNUP_DATE: pd.to_datetime(["2024-12-01", "2025-01-01", "2025-02-25"]),
        names.CHURN_DATE: pd.to_datetime([None, None, None]),
    }
)


def _events(rows: list[tuple[str, str, str, float | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            names.CUSTOMER_ID: [r[0] for r in rows],
            names.EVENT_TIMESTAMP: pd.to_datetime([r[1] for r in rows], utc=True),
            names.EVENT_TYPE: [r[2] for r in rows],
            names.AMOUNT: [r[3] for r in rows],
        }
    )


def _snap(events: pd.DataFrame, families: dict[str, str] | None = None) -> pd.DataFrame:
    families = families or {}
    purchase_types = [t for t in events[names.EVENT_TYPE].unique() if family_of(t, families) == "purchase"]
    shape = data_shape(events, CUSTOMERS, purchase_types=purchase_types)
    spec = snapshot_spec([OBS.date()], [7, 30, 90], shape, tuple(families.items()))
    frame = compute_snapshots(events, CUSTOMERS, spec).set_index(names.CUSTOMER_ID)
    assert list(frame.columns[1:]) == feature_names(spec) + [c for c in frame.columns if "_rfm_" in c]
    return frame


RETAIL = _events(
    [
        ("a", "2024-12-10 10:00", "visit", None),
        ("a", "2024-12-20 10:00", "purchase", 10.0),
        ("a", "2024-12-20 18:00", "purchase", 5.0),  # same day: one purchase day
        ("a", "2025-01-19 10:00", "purchase", 20.0),
        ("a", "2025-02-18 10:00", "purchase", 30.0),
        ("a", "2025-03-01 00:00", "purchase", 999.0),  # at the observation instant: not counted
        ("b", "2025-01-05 10:00", "complaint", None),
        ("b", "2024-11-20 10:00", "support_ticket", None),  # 101 days before: outside the 90-day window
        ("new", "2025-02-26 10:00", "visit", None),
    ]
)


def test_lifetime_features_count_everything_before_the_observation_date() -> None:
    a = _snap(RETAIL).loc["a"]
    assert a["purchases_count_lifetime"] == 4 and a["purchases_spend_lifetime"] == 65.0
    # Buy-till-you-die summary: 3 purchase days, so 2 repeats; first 2024-12-20, last 2025-02-18.
    assert (a[names.BTYD_FREQUENCY], a[names.BTYD_RECENCY], a[names.BTYD_AGE]) == (2, 60, 71)
    assert a["purchases_rate_30d"] == pytest.approx(4 * 30 / 71)
    assert a["profile_age_days"] == 81  # since the first event of any type (the visit)
    assert a["engagement_events_lifetime"] == 5
    b = _snap(RETAIL).loc["b"]
    assert b["purchases_count_lifetime"] == 0 and pd.isna(b[names.BTYD_FREQUENCY]) and pd.isna(b[names.BTYD_AGE])
    assert b["profile_age_days"] == 101 and b["engagement_events_lifetime"] == 2  # the ticket, then the complaint


def test_every_standard_type_gets_recency_and_change() -> None:
    snap = _snap(RETAIL)
    assert snap.loc["a", "engagement_visits_days_since_last"] == 81
    assert snap.loc["b", "service_complaints_days_since_last"] == 55
    assert snap.loc["new", "engagement_visits_change"] == 1.0  # from nothing to one visit
    assert pd.isna(snap.loc["new", "service_complaints_days_since_last"])
    # Days since a type's last event count within the longest window only (90 days): null beyond it.
    assert snap.loc["b", "service_tickets_30d"] == 0 and snap.loc["b", "service_tickets_90d"] == 0
    assert pd.isna(snap.loc["b", "service_tickets_days_since_last"])


SAAS = _events(
    [
        ("a", "2025-02-20 09:00", "login", None),
        ("a", "2025-02-21 09:00", "login", None),
        ("a", "2025-01-10 09:00", "login", None),
        ("a", "2025-02-25 09:00", "Add-Contact", None),
        ("a", "2025-02-26 09:00", "quote sent", 120.0),
        ("a", "2025-01-15 09:00", "invoice paid", 49.0),
        ("a", "2025-02-15 09:00", "invoice paid", 49.0),
        ("a", "2025-02-27 09:00", "bug report", None),
        ("b", "2025-02-01 09:00", "login", None),
    ]
)
FAMILIES = {"invoice paid": "purchase", "bug report": "service", "quote sent": "engagement"}


def test_a_custom_taxonomy_gets_features_for_every_type() -> None:
    snap = _snap(SAAS, FAMILIES)
    a = snap.loc["a"]
    # Per type: counts per window, days since the last one, 30-vs-30 change; sums where amounts exist.
    assert a["engagement_login_30d"] == 2 and a["engagement_login_7d"] == 0
    assert a["engagement_login_days_since_last"] == 8
    assert a["engagement_login_change"] == 1.0  # 2 logins in the last 30 days against 1 in the 30 before
    assert a["engagement_add_contact_7d"] == 1 and a["engagement_add_contact_days_since_last"] == 4
    assert a["engagement_quote_sent_amount_30d"] == 120.0
    assert a["service_bug_report_7d"] == 1
    # The purchase family (invoices) drives the purchase features, RFM and the lifetime summary.
    assert a["purchases_count_30d"] == 1 and a["purchases_spend_lifetime"] == 98.0
    assert a["purchases_days_since_last"] == 14 and a[names.BTYD_FREQUENCY] == 1
    assert "purchases_rfm_recency" in snap.columns
    assert a["engagement_change"] == pytest.approx(3.0)  # logins, contact and quote: 4 against 1
    assert not [c for c in snap.columns if "invoice" in c]  # one purchase type: the purchase features say it all


def test_feature_names_follow_the_taxonomy_and_stay_apart() -> None:
    assert word_of("Quote Sent!") == "quote_sent" and word_of("???") == "type"
    shape = data_shape(
        _events([("a", "2025-02-01", "add-contact", None), ("a", "2025-02-02", "add contact", None)]), CUSTOMERS
    )
    spec = snapshot_spec([dt.date(2025, 3, 1)], [30], shape)
    assert {k.word for k in spec.kinds} == {"add_contact", "add_contact_"}
    assert len(set(feature_names(spec))) == len(feature_names(spec))
    with pytest.raises(ValueError, match="unknown families"):
        snapshot_spec([dt.date(2025, 3, 1)], [30], shape, (("add-contact", "sales"),))
