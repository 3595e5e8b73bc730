"""Tests of the synthetic CRM generator: determinism, schema, and the behaviour it is meant to model."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from core import names
from features.generator.customers import CATEGORIES, CHANNELS, PLANS, REGIONS, VALUE_TIERS
from features.generator.dataset import EVENTS_SCHEMA, GeneratedData, generate, generate_to_parquet, write_generated

START = dt.date(2025, 1, 1)
START_TS = pd.Timestamp(START)
DAYS = 180
DRIFT_AT = 90
CUSTOMER_COLUMNS = [
    names.CUSTOMER_ID,
    names.SIGNUP_DATE,
    names.CHURN_DATE,
    "plan",
    "channel",
    "region",
    "value_tier",
]


@pytest.fixture(scope="module")
def base() -> GeneratedData:
    return generate(2000, DAYS, seed=7, start_date=START)


@pytest.fixture(scope="module")
def drifted() -> GeneratedData:
    return generate(2000, DAYS, seed=7, start_date=START, drift_at=DRIFT_AT)


def _events(data: GeneratedData) -> pd.DataFrame:
    """Events as pandas with the UTC calendar day of each event and the customer's dates joined on."""
    events = data.events.to_pandas()
    events["day"] = events[names.EVENT_TIMESTAMP].dt.tz_convert(None).dt.normalize()
    customers = data.customers[[names.CUSTOMER_ID, names.SIGNUP_DATE, names.CHURN_DATE]]
    return events.merge(customers, on=names.CUSTOMER_ID, how="left", validate="many_to_one")


def _read(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


# --- determinism ---------------------------------------------------------------------------------


def test_same_arguments_give_identical_data_and_parquet_bytes(tmp_path: Path) -> None:
    first = generate(600, 120, seed=3, chunk_size=250)
    second = generate(600, 120, seed=3, chunk_size=250)

    pd.testing.assert_frame_equal(first.customers, second.customers)
    assert first.events.equals(second.events)
    paths_a = write_generated(first, tmp_path / "a")
    paths_b = write_generated(second, tmp_path / "b")
    for path_a, path_b in zip(paths_a, paths_b, strict=True):
        assert path_a.read_bytes() == path_b.read_bytes()


def test_different_seeds_give_different_data() -> None:
    first = generate(600, 120, seed=3)
    other = generate(600, 120, seed=4)

    assert not first.customers.equals(other.customers)
    assert not first.events.equals(other.events)


def test_streaming_writer_matches_in_memory_output(tmp_path: Path) -> None:
    data = generate(600, 120, seed=5, drift_at=60, chunk_size=250)
    mem_customers, mem_events = write_generated(data, tmp_path / "memory")
    streamed_customers, streamed_events = generate_to_parquet(
        tmp_path / "streamed", 600, 120, seed=5, drift_at=60, chunk_size=250
    )

    pd.testing.assert_frame_equal(_read(mem_customers), _read(streamed_customers))
    pd.testing.assert_frame_equal(_read(mem_events), _read(streamed_events))
    assert sorted(p.name for p in (tmp_path / "streamed").iterdir()) == [
        "customers.parquet",
        "events.parquet",
    ]


def test_write_generated_round_trips_and_leaves_no_temp_files(tmp_path: Path) -> None:
    data = generate(300, 60, seed=1)
    out = tmp_path / "nested" / "raw"

    customers_path, events_path = write_generated(data, out)

    assert (customers_path, events_path) == (out / "customers.parquet", out / "events.parquet")
    assert sorted(p.name for p in out.iterdir()) == ["customers.parquet", "events.parquet"]
    pd.testing.assert_frame_equal(_read(customers_path), data.customers)
    assert pq.read_table(events_path).equals(data.events)


def test_progress_reports_each_chunk() -> None:
    done: list[int] = []

    data = generate(500, 30, seed=1, chunk_size=200, progress=done.append)

    assert done == [200, 200, 100]
    assert len(data.customers) == 500


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_customers": 0},
        {"days": 0},
        {"chunk_size": 0},
        {"drift_at": 30},
        {"drift_at": -1},
    ],
)
def test_invalid_arguments_are_rejected(kwargs: dict[str, int]) -> None:
    arguments: dict[str, Any] = {"n_customers": 10, "days": 30, "seed": 1} | kwargs
    with pytest.raises(ValueError):
        generate(**arguments)


# --- schema and domains --------------------------------------------------------------------------


def test_customers_schema_and_domains(base: GeneratedData) -> None:
    customers = base.customers

    assert list(customers.columns) == CUSTOMER_COLUMNS
    assert len(customers) == 2000
    ids = customers[names.CUSTOMER_ID]
    assert ids.is_unique and ids.is_monotonic_increasing
    assert ids.iloc[0] == "C0000001" and ids.iloc[-1] == "C0002000"
    assert ids.map(lambda s: re.fullmatch(r"C\d{7}", s) is not None).all()
    for column in (names.SIGNUP_DATE, names.CHURN_DATE):
        assert customers[column].dtype == "datetime64[ns]"
        dates = customers[column].dropna()
        assert (dates == dates.dt.normalize()).all()
    assert set(customers["plan"]) == set(PLANS)
    assert set(customers["channel"]) == set(CHANNELS) - {"social"}
    assert set(customers["region"]) == set(REGIONS)
    assert set(customers["value_tier"]) == set(VALUE_TIERS)
    churn = customers[names.CHURN_DATE].dropna()
    assert churn.max() < START_TS + pd.Timedelta(days=DAYS)
    assert (churn > customers.loc[churn.index, names.SIGNUP_DATE]).all()
    assert (churn > START_TS).all()


def test_events_schema_and_domains(base: GeneratedData) -> None:
    assert base.events.schema == EVENTS_SCHEMA
    events = base.events.to_pandas()
    assert set(events[names.EVENT_TYPE]) == set(names.STANDARD_EVENT_TYPES)
    assert set(events[names.CUSTOMER_ID]) <= set(base.customers[names.CUSTOMER_ID])
    timestamps = events[names.EVENT_TIMESTAMP]
    assert timestamps.min() >= pd.Timestamp(START, tz="UTC")
    assert timestamps.max() < pd.Timestamp(START, tz="UTC") + pd.Timedelta(days=DAYS)

    purchase = events[names.EVENT_TYPE] == "purchase"
    assert events.loc[purchase, names.AMOUNT].notna().all()
    assert (events.loc[purchase, names.AMOUNT] > 0).all()
    assert events.loc[~purchase, names.AMOUNT].isna().all()
    assert set(events.loc[purchase, names.CATEGORY]) == set(CATEGORIES)
    assert events.loc[~purchase, names.CATEGORY].isna().all()

    order = events[[names.CUSTOMER_ID, names.EVENT_TIMESTAMP]]
    assert order.equals(order.sort_values([names.CUSTOMER_ID, names.EVENT_TIMESTAMP], kind="stable"))


def test_volume_is_about_a_hundred_events_per_active_customer_year(base: GeneratedData) -> None:
    per_customer_year = base.events.num_rows / len(base.customers) / DAYS * 365
    assert 60 < per_customer_year < 140


# --- modelled behaviour --------------------------------------------------------------------------


def test_quarter_of_customers_predate_the_period_and_the_rest_sign_up_uniformly(base: GeneratedData) -> None:
    signup = base.customers[names.SIGNUP_DATE]
    before = signup < START_TS

    assert 0.2 < before.mean() < 0.3
    assert signup.min() >= START_TS - pd.Timedelta(days=366)
    during = (signup[~before] - START_TS).dt.days
    assert during.max() < DAYS
    first_half = (during < DAYS / 2).mean()
    assert 0.45 < first_half < 0.55


def test_no_events_before_signup_or_on_and_after_churn(base: GeneratedData) -> None:
    events = _events(base)

    assert (events["day"] >= events[names.SIGNUP_DATE]).all()
    churned = events[names.CHURN_DATE].notna()
    assert (events.loc[churned, "day"] < events.loc[churned, names.CHURN_DATE]).all()


def test_churn_rate_over_a_year_and_churn_every_month() -> None:
    year = generate(3000, 365, seed=11)
    assert 0.25 <= year.customers[names.CHURN_DATE].notna().mean() <= 0.40

    short = generate(2000, 180, seed=12).customers[names.CHURN_DATE].dropna()
    per_month = short.dt.to_period("M").value_counts()
    assert len(per_month) == 6
    assert per_month.min() >= 20


def test_churn_depends_on_plan_and_value_tier() -> None:
    customers = generate(6000, 365, seed=13).customers
    churned = customers[names.CHURN_DATE].notna()

    by_plan = churned.groupby(customers["plan"]).mean()
    by_tier = churned.groupby(customers["value_tier"]).mean()
    assert by_plan["basic"] > 1.2 * by_plan["premium"]
    assert by_tier["low"] > 1.2 * by_tier["high"]


def test_high_value_customers_buy_more_and_spend_more_per_order(base: GeneratedData) -> None:
    events = base.events.to_pandas()
    purchases = events[events[names.EVENT_TYPE] == "purchase"].merge(
        base.customers[[names.CUSTOMER_ID, "value_tier"]], on=names.CUSTOMER_ID
    )
    counts = purchases.groupby("value_tier").size() / base.customers["value_tier"].value_counts()
    median_amount = purchases.groupby("value_tier")[names.AMOUNT].median()

    assert counts["high"] > 1.5 * counts["low"]
    assert median_amount["high"] > 3 * median_amount["low"]


def test_activity_declines_and_complaints_rise_before_churn(base: GeneratedData) -> None:
    customers = base.customers
    churn = customers[names.CHURN_DATE]
    # Churners whose whole 120 days before churn lie inside the period and after their signup.
    window_start = churn - pd.Timedelta(days=120)
    cohort = customers.loc[(window_start >= START_TS) & (window_start >= customers[names.SIGNUP_DATE])]
    assert len(cohort) >= 30
    events = _events(base)
    events = events[events[names.CUSTOMER_ID].isin(cohort[names.CUSTOMER_ID])]
    days_before = (events[names.CHURN_DATE] - events["day"]).dt.days
    late = days_before <= 30
    early = (days_before > 60) & (days_before <= 120)

    def rate(types: list[str], window: pd.Series, length: int) -> float:
        return float((window & events[names.EVENT_TYPE].isin(types)).sum() / len(cohort) / length)

    engaged = ["purchase", "visit"]
    unhappy = ["complaint", "support_ticket"]
    assert rate(engaged, late, 30) < 0.7 * rate(engaged, early, 60)
    assert rate(unhappy, late, 30) > 1.5 * rate(unhappy, early, 60)


def test_customers_who_complain_more_churn_more() -> None:
    data = generate(3000, DAYS, seed=17)
    customers = data.customers.copy()
    # Complaints are counted only up to 60 days before churn (or before the period end), so the
    # pre-churn surge does not make this true by itself: it tests the latent link.
    window_end = customers[names.CHURN_DATE].fillna(START_TS + pd.Timedelta(days=DAYS)) - pd.Timedelta(days=60)
    window_start = customers[names.SIGNUP_DATE].clip(lower=START_TS)
    customers["exposure"] = (window_end - window_start).dt.days
    customers = customers[customers["exposure"] >= 30]
    events = _events(data).merge(
        pd.DataFrame({names.CUSTOMER_ID: customers[names.CUSTOMER_ID], "window_end": window_end}),
        on=names.CUSTOMER_ID,
    )
    unhappy = events[
        events[names.EVENT_TYPE].isin(["complaint", "support_ticket"]) & (events["day"] < events["window_end"])
    ]
    complaints = customers[names.CUSTOMER_ID].map(unhappy.groupby(names.CUSTOMER_ID).size()).fillna(0)
    complaint_rate = complaints / customers["exposure"]
    high = complaint_rate >= complaint_rate.quantile(0.75)
    churned = customers[names.CHURN_DATE].notna()

    assert churned[high].mean() > 1.5 * churned[~high].mean()


def test_some_customers_who_stay_go_quiet(base: GeneratedData) -> None:
    events = _events(base)
    stayers = events[events[names.CHURN_DATE].isna() & (events[names.SIGNUP_DATE] < START_TS)]
    longest_gap = stayers.groupby(names.CUSTOMER_ID)["day"].agg(lambda d: d.diff().max()).dt.days

    assert (longest_gap >= 21).mean() > 0.1


def test_weekends_bring_visits_and_purchases_and_fewer_tickets(base: GeneratedData) -> None:
    events = _events(base)
    per_day = events.groupby(["day", names.EVENT_TYPE]).size().unstack(fill_value=0)
    weekend = per_day.index.weekday >= 5
    # Late days have more customers (signups accrue), so compare within the second half only.
    second_half = per_day.index >= START_TS + pd.Timedelta(days=DAYS // 2)
    ratio = per_day[weekend & second_half].mean() / per_day[~weekend & second_half].mean()

    assert ratio["purchase"] > 1.2
    assert ratio["visit"] > 1.15
    assert ratio["support_ticket"] < 0.75


# --- drift ---------------------------------------------------------------------------------------


def _type_share(data: GeneratedData, after: bool) -> pd.Series:
    events = _events(data)
    is_after = events["day"] >= START_TS + pd.Timedelta(days=DRIFT_AT)
    selected = events[is_after if after else ~is_after]
    return selected[names.EVENT_TYPE].value_counts(normalize=True)


def test_drift_changes_the_event_mix_after_drift_at(base: GeneratedData, drifted: GeneratedData) -> None:
    before, after = _type_share(drifted, after=False), _type_share(drifted, after=True)
    plain_after = _type_share(base, after=True)

    assert after["click"] / after["visit"] > 2 * before["click"] / before["visit"]
    assert after["click"] / after["visit"] > 2 * plain_after["click"] / plain_after["visit"]
    assert after["message"] > 1.3 * plain_after["message"]


def test_drift_raises_purchase_amounts_after_drift_at(base: GeneratedData, drifted: GeneratedData) -> None:
    def median_amount(data: GeneratedData) -> float:
        events = _events(data)
        late = events[
            (events[names.EVENT_TYPE] == "purchase")
            & (events["day"] >= START_TS + pd.Timedelta(days=DRIFT_AT))
            & (events[names.SIGNUP_DATE] < START_TS)
        ]
        return float(late[names.AMOUNT].median())

    assert median_amount(drifted) > 1.15 * median_amount(base)


def test_without_drift_the_event_mix_is_stable(base: GeneratedData) -> None:
    before, after = _type_share(base, after=False), _type_share(base, after=True)

    np.testing.assert_allclose(after["click"] / after["visit"], before["click"] / before["visit"], rtol=0.1)


def test_social_channel_only_with_drift_and_only_for_later_signups(base: GeneratedData, drifted: GeneratedData) -> None:
    assert "social" not in set(base.customers["channel"])
    customers = drifted.customers
    social = customers["channel"] == "social"
    late_signup = customers[names.SIGNUP_DATE] >= START_TS + pd.Timedelta(days=DRIFT_AT)

    assert social.any()
    assert not (social & ~late_signup).any()
    assert 0.3 < social[late_signup].mean() < 0.5
    # Customers who signed up earlier are the same customers as in the run without drift.
    pd.testing.assert_frame_equal(customers[~late_signup], base.customers[~late_signup])
