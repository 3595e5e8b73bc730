"""Synthetic CRM data: a customers table and an event log with real churn signal in it.

The generator is pure vectorised numpy over a (customers-in-chunk x days) matrix: one Poisson
draw per cell for the total event count, a categorical split of each event into a type (Poisson
splitting makes this the same as one Poisson per type, at a sixth of the cost), and `np.repeat`
to expand counts into events. Nothing loops over customers or events in Python.

What is modelled, so that downstream features and models have something to find:

* Customers differ by plan, acquisition channel, region and value tier, by a latent engagement
  level and by a latent dissatisfaction level that drives complaints, tickets and churn.
* About a quarter of the customers signed up during the year before `start_date`; the rest sign
  up uniformly during the period. Nobody is active before signing up.
* Churn is contractual: a Weibull time-to-churn whose hazard depends on plan, channel, tier,
  region, engagement, dissatisfaction and complaint propensity. A customer never has events on
  or after the churn date; `churn_date` is NaT when churn falls after the generated period.
* Over the 30-60 days before churn, purchases, visits and clicks ramp down to 15-25% of normal
  while complaints and support tickets ramp up.
* Some customers go quiet for a few weeks without churning, so silence alone is not a label.
* Weekly seasonality: more visits and purchases at weekends, fewer support tickets.
* Optional drift from day `drift_at`: the event mix shifts (more clicks and messages, fewer
  visits, larger baskets) and 40% of the new signups come through a new `social` channel.

Randomness comes from `numpy.random.SeedSequence(seed)` spawned per chunk, so a chunk's data
depends only on the arguments and its position: the same arguments give identical data and
identical Parquet bytes. `chunk_size` is one of those arguments.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core import names

CUSTOMERS_FILE = "customers.parquet"
EVENTS_FILE = "events.parquet"

EVENT_TYPES: tuple[str, ...] = names.STANDARD_EVENT_TYPES
"""purchase, visit, click, message, complaint, support_ticket (the column order of every rate array)."""

PLANS = ("basic", "standard", "premium")
CHANNELS = ("web", "store", "app", "partner", "social")
"""`social` exists only with drift, for customers signing up on or after `drift_at`."""
REGIONS = ("north", "south", "east", "west", "central")
VALUE_TIERS = ("low", "mid", "high")
CATEGORIES = ("electronics", "fashion", "home", "beauty", "sports", "grocery", "books", "toys")

EVENTS_SCHEMA = pa.schema(
    [
        pa.field(names.CUSTOMER_ID, pa.string(), nullable=False),
        pa.field(names.EVENT_TIMESTAMP, pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field(names.EVENT_TYPE, pa.string(), nullable=False),
        pa.field(names.AMOUNT, pa.float64()),
        pa.field(names.CATEGORY, pa.string()),
    ]
)

_PURCHASE, _VISIT, _CLICK, _MESSAGE, _COMPLAINT, _TICKET = range(6)
_FADING = np.array([_PURCHASE, _VISIT, _CLICK])
"""Event types that ramp down before churn."""
_RISING = np.array([_COMPLAINT, _TICKET])
"""Event types that ramp up before churn."""

_SOCIAL = CHANNELS.index("social")
_PRE_EXISTING_SHARE = 0.25
_SOCIAL_SHARE_AFTER_DRIFT = 0.4

_PLAN_P = (0.5, 0.35, 0.15)
_CHANNEL_P = (0.4, 0.25, 0.25, 0.10)
_REGION_P = (0.22, 0.20, 0.18, 0.20, 0.20)
_TIER_P_BY_PLAN = ((0.60, 0.32, 0.08), (0.45, 0.40, 0.15), (0.25, 0.40, 0.35))
"""Value tier probabilities per plan: premium customers are more often high value."""
_CATEGORY_P = (0.16, 0.18, 0.14, 0.10, 0.09, 0.17, 0.08, 0.08)
_FAVOURITE_SHARE = 0.6
"""Share of a customer's purchases in their favourite category."""

_BASE_RATE = (0.05, 0.20, 0.16, 0.035, 0.004, 0.009)
"""Events per active weekday for an average customer, by event type."""

# Multipliers on the daily rate, rows = attribute level, columns = event type.
_PLAN_RATE = np.array(
    [
        [0.85, 0.90, 0.95, 0.80, 1.10, 0.90],
        [1.00, 1.00, 1.00, 1.00, 1.00, 1.00],
        [1.35, 1.15, 1.05, 1.40, 0.90, 1.30],
    ]
)
_CHANNEL_RATE = np.array(
    [
        [1.00, 1.00, 1.10, 1.00, 1.00, 1.00],
        [1.10, 0.80, 0.60, 0.80, 1.00, 1.10],
        [1.05, 1.30, 1.40, 1.20, 1.00, 0.90],
        [0.90, 0.90, 0.90, 0.90, 1.10, 1.10],
        [0.70, 1.10, 1.60, 1.50, 1.20, 0.80],
    ]
)
_TIER_RATE = np.array(
    [
        [0.60, 0.90, 0.95, 0.90, 1.00, 1.00],
        [1.00, 1.00, 1.00, 1.00, 1.00, 1.00],
        [1.80, 1.20, 1.10, 1.10, 0.90, 1.10],
    ]
)
_REGION_RATE = np.array(
    [
        [1.00, 1.00, 1.00, 1.00, 1.00, 1.00],
        [0.95, 1.05, 1.00, 1.00, 1.10, 1.05],
        [1.05, 1.00, 1.05, 1.00, 0.95, 1.00],
        [1.00, 0.95, 1.00, 1.05, 1.00, 1.00],
        [1.10, 1.05, 1.10, 1.00, 0.90, 0.95],
    ]
)
_ENGAGEMENT_EXPONENT = (1.0, 1.0, 1.0, 0.5, 0.0, 0.3)
"""How strongly each type follows the latent engagement level."""
_DISSATISFACTION_EXPONENT = (-0.15, -0.10, -0.05, 0.10, 1.10, 0.60)
"""How strongly each type follows the latent dissatisfaction level (complaints most)."""

_DOW_RATE = np.array(
    [
        [1.00, 1.00, 1.00, 1.00, 1.00, 1.00],  # Monday
        [1.00, 1.00, 1.00, 1.00, 1.00, 1.00],
        [1.00, 1.00, 1.00, 1.00, 1.00, 1.00],
        [1.00, 1.00, 1.00, 1.00, 1.00, 1.00],
        [1.10, 1.10, 1.05, 1.00, 0.95, 0.90],  # Friday
        [1.45, 1.35, 1.15, 0.90, 0.80, 0.50],  # Saturday
        [1.35, 1.30, 1.15, 0.85, 0.80, 0.45],  # Sunday
    ]
)
"""Day-of-week multipliers: weekends bring visits and purchases and few tickets."""

_DRIFT_RATE = (1.0, 0.6, 1.8, 1.5, 1.0, 1.0)
_DRIFT_AMOUNT = 1.3

_TIER_MEDIAN_AMOUNT = (20.0, 45.0, 110.0)
_PLAN_AMOUNT = (0.9, 1.0, 1.25)
_CHANNEL_AMOUNT = (1.0, 1.05, 0.95, 1.1, 0.8)
_AMOUNT_SIGMA = 0.55
"""Spread of one purchase around the customer's median order value (log scale)."""

_HAZARD_PER_DAY = 0.0011
"""Churn hazard scale of an average customer; calibrated for ~30% churn in a 365-day run."""
_WEIBULL_SHAPE = 0.85
"""Below 1: new customers churn more readily than long-standing ones."""
_PLAN_HAZARD = (1.35, 1.0, 0.7)
_CHANNEL_HAZARD = (1.0, 0.75, 0.9, 1.25, 1.7)
_TIER_HAZARD = (1.3, 1.0, 0.65)
_REGION_HAZARD = (1.0, 1.1, 0.95, 1.0, 1.05)
_HAZARD_DISSATISFACTION = 0.5
_HAZARD_COMPLAINTS = 0.5
"""Exponent on relative complaint propensity: customers who complain more churn more."""
_HAZARD_ENGAGEMENT = -0.3

_RAMP_DAYS = (30, 61)
_RAMP_FLOOR = (0.15, 0.25)
"""Purchases, visits and clicks fall linearly to this share of normal on the last day before churn."""
_RAMP_PEAK = (2.5, 4.0)
"""Complaints and tickets rise linearly to this multiple of normal on the last day before churn."""

_QUIET_SHARE = 0.3
_QUIET_DAYS = (14, 46)
_QUIET_FACTOR = 0.12

_HOUR_WEIGHTS = np.array(
    [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 3.5, 4, 4.2, 4.5, 5, 4.8, 4.5, 4.5, 4.7, 5, 5.5, 6, 5.8, 5, 3.5, 2]
)
"""Relative activity by hour of day (UTC): quiet nights, evening peak."""

_SECONDS_PER_DAY = 86_400
_US_PER_SECOND = 1_000_000
_EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class GeneratedData:
    """Generated CRM data.

    Attributes:
        customers: One row per customer: customer_id, signup_date, churn_date (NaT when not
            churned within the period), plan, channel, region, value_tier.
        events: The event log (`EVENTS_SCHEMA`): customer_id, event_timestamp, event_type, amount
            (purchases only), category (purchases only); sorted by customer then time.
    """

    customers: pd.DataFrame
    events: pa.Table


@dataclass(frozen=True)
class _Customers:
    """Per-customer draws of one chunk; days are relative to `start_date`."""

    plan: np.ndarray
    channel: np.ndarray
    region: np.ndarray
    tier: np.ndarray
    signup_day: np.ndarray
    churn_day: np.ndarray
    """True churn day, possibly after the period (then reported as NaT, but its ramp still shows)."""
    rates: np.ndarray
    """(customers, event types) events per active Monday."""
    median_amount: np.ndarray
    favourite: np.ndarray
    ramp_days: np.ndarray
    ramp_floor: np.ndarray
    ramp_peak: np.ndarray
    quiet_start: np.ndarray
    quiet_end: np.ndarray


def _categorical(rng: np.random.Generator, probs: tuple[float, ...] | np.ndarray, size: int) -> np.ndarray:
    cum = np.cumsum(probs)
    return np.searchsorted(cum / cum[-1], rng.random(size), side="right").astype(np.int64)


def _draw_customers(rng: np.random.Generator, m: int, days: int, drift_at: int | None) -> _Customers:
    """Static attributes, latent traits and churn day of `m` customers."""
    # Every draw happens whatever the options, so a drift run keeps the same customers as the
    # plain run except for the channel of post-drift signups.
    plan = _categorical(rng, _PLAN_P, m)
    channel = _categorical(rng, _CHANNEL_P, m)
    region = _categorical(rng, _REGION_P, m)
    tier_cum = np.cumsum(np.array(_TIER_P_BY_PLAN), axis=1)[plan]
    tier = (rng.random(m)[:, None] >= tier_cum[:, :-1]).sum(axis=1)

    pre_existing = rng.random(m) < _PRE_EXISTING_SHARE
    signup_day = np.where(pre_existing, -rng.integers(1, 366, m), rng.integers(0, days, m))
    to_social = rng.random(m) < _SOCIAL_SHARE_AFTER_DRIFT
    if drift_at is not None:
        channel = np.where(to_social & (signup_day >= drift_at), _SOCIAL, channel)

    engagement = rng.normal(0.0, 0.5, m)
    dissatisfaction = rng.normal(0.0, 1.0, m)
    idiosyncratic = rng.normal(0.0, 0.25, (m, len(EVENT_TYPES)))
    log_rates = (
        np.log(_BASE_RATE)
        + np.log(_PLAN_RATE[plan] * _CHANNEL_RATE[channel] * _TIER_RATE[tier] * _REGION_RATE[region])
        + engagement[:, None] * np.array(_ENGAGEMENT_EXPONENT)
        + dissatisfaction[:, None] * np.array(_DISSATISFACTION_EXPONENT)
        + idiosyncratic
    )
    rates = np.exp(log_rates)

    median_amount = (
        np.array(_TIER_MEDIAN_AMOUNT)[tier]
        * np.array(_PLAN_AMOUNT)[plan]
        * np.array(_CHANNEL_AMOUNT)[channel]
        * np.exp(rng.normal(0.0, 0.25, m))
    )
    favourite = _categorical(rng, _CATEGORY_P, m)

    complaint_propensity = dissatisfaction * _DISSATISFACTION_EXPONENT[_COMPLAINT] + idiosyncratic[:, _COMPLAINT]
    hazard = (
        _HAZARD_PER_DAY
        * np.array(_PLAN_HAZARD)[plan]
        * np.array(_CHANNEL_HAZARD)[channel]
        * np.array(_TIER_HAZARD)[tier]
        * np.array(_REGION_HAZARD)[region]
        * np.exp(
            _HAZARD_DISSATISFACTION * dissatisfaction
            + _HAZARD_COMPLAINTS * complaint_propensity
            + _HAZARD_ENGAGEMENT * engagement
        )
    )
    # Weibull time to churn since signup, conditioned on still being a customer at the start of
    # the period (pre-existing customers who had already churned are not in the base).
    tenure_at_start = np.maximum(-signup_day, 0).astype(np.float64)
    cumulative_at_start = (hazard * tenure_at_start) ** _WEIBULL_SHAPE
    lifetime = (cumulative_at_start + rng.exponential(1.0, m)) ** (1.0 / _WEIBULL_SHAPE) / hazard
    # Clipping keeps far-future churn days in integer range; they are all NaT anyway.
    churn_at = np.minimum(signup_day + lifetime, days + 10_000.0)
    churn_day = np.maximum(np.ceil(churn_at).astype(np.int64), np.maximum(signup_day, 0) + 1)

    quiet = rng.random(m) < _QUIET_SHARE
    quiet_start = np.where(quiet, rng.integers(0, days, m), days)
    quiet_end = quiet_start + rng.integers(*_QUIET_DAYS, m)

    return _Customers(
        plan=plan,
        channel=channel,
        region=region,
        tier=tier,
        signup_day=signup_day,
        churn_day=churn_day,
        rates=rates,
        median_amount=median_amount,
        favourite=favourite,
        ramp_days=rng.integers(*_RAMP_DAYS, m),
        ramp_floor=rng.uniform(*_RAMP_FLOOR, m),
        ramp_peak=rng.uniform(*_RAMP_PEAK, m),
        quiet_start=quiet_start,
        quiet_end=quiet_end,
    )


def _day_factors(days: int, start_date: dt.date, drift_at: int | None) -> np.ndarray:
    """(days, event types) rate multipliers for weekday and drift."""
    weekday = (start_date.weekday() + np.arange(days)) % 7
    factors = _DOW_RATE[weekday].copy()
    if drift_at is not None:
        factors[drift_at:] *= np.array(_DRIFT_RATE)
    return factors


def _ramp_factors(cust: _Customers, idx: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pre-churn multipliers of fading and rising event types for customers `idx` on days `day`.

    Both are 1 until `ramp_days` before churn, then move linearly to `ramp_floor` and `ramp_peak`
    on the last day before churn.
    """
    position = np.clip((cust.churn_day[idx] - day - 1) / cust.ramp_days[idx], 0.0, 1.0)
    fade = cust.ramp_floor[idx] + (1.0 - cust.ramp_floor[idx]) * position
    rise = 1.0 + (cust.ramp_peak[idx] - 1.0) * (1.0 - position)
    return fade, rise


def _band(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the cells in [start[i], end[i]) of each row i (empty when end <= start)."""
    lengths = np.maximum(end - start, 0)
    rows = np.repeat(np.arange(len(start)), lengths)
    offsets = np.cumsum(lengths) - lengths
    cols = np.arange(lengths.sum()) + np.repeat(start - offsets, lengths)
    return rows, cols


def _draw_events(
    rng: np.random.Generator,
    cust: _Customers,
    days: int,
    start_date: dt.date,
    drift_at: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Events of one chunk of customers.

    Returns:
        Per event, sorted by customer then time: customer index in the chunk, microseconds since
        the epoch, event type index, amount (0 for non-purchases), category index (-1 for
        non-purchases).
    """
    day_factor = _day_factors(days, start_date, drift_at)

    # Expected events per (customer, day) cell. einsum runs its own loops, not BLAS, whose
    # summation order may depend on threading and so break bit-for-bit determinism.
    total = np.einsum("ct,dt->cd", cust.rates, day_factor)
    # Pre-churn ramps and quiet spells touch a narrow band of cells per customer, so they are
    # applied to those cells only rather than as full-matrix multipliers.
    rows, cols = _band(np.maximum(cust.churn_day - cust.ramp_days, 0), np.minimum(cust.churn_day, days))
    fade, rise = _ramp_factors(cust, rows, cols)
    fading = (cust.rates[rows][:, _FADING] * day_factor[cols][:, _FADING]).sum(axis=1)
    rising = (cust.rates[rows][:, _RISING] * day_factor[cols][:, _RISING]).sum(axis=1)
    total[rows, cols] += fading * (fade - 1.0) + rising * (rise - 1.0)
    rows, cols = _band(cust.quiet_start, np.minimum(cust.quiet_end, days))
    total[rows, cols] *= _QUIET_FACTOR
    del rows, cols, fade, rise, fading, rising
    day = np.arange(days)
    total *= (day[None, :] >= cust.signup_day[:, None]) & (day[None, :] < cust.churn_day[:, None])

    counts = rng.poisson(total.ravel())
    del total
    busy = np.flatnonzero(counts)
    cell = np.repeat(busy, counts[busy])
    n = len(cell)
    hour = _categorical(rng, _HOUR_WEIGHTS, n)
    second = hour * 3600 + rng.integers(0, 3600, n)
    # Cells come out in (customer, day) order, so sorting this key only reorders within a day.
    key = np.sort(cell * _SECONDS_PER_DAY + second, kind="stable")
    cell, second = np.divmod(key, _SECONDS_PER_DAY)
    idx, ev_day = np.divmod(cell, days)
    del cell, key, busy, counts

    # Events within a cell are exchangeable, so their types can be drawn after sorting.
    weights = cust.rates[idx]
    weights *= day_factor[ev_day]
    ramping = np.flatnonzero(ev_day >= (cust.churn_day - cust.ramp_days)[idx])
    fade, rise = _ramp_factors(cust, idx[ramping], ev_day[ramping])
    weights[np.ix_(ramping, _FADING)] *= fade[:, None]
    weights[np.ix_(ramping, _RISING)] *= rise[:, None]
    np.cumsum(weights, axis=1, out=weights)
    threshold = rng.random(n) * weights[:, -1]
    event_type = (weights[:, :-1] <= threshold[:, None]).sum(axis=1)
    del weights, threshold, ramping, fade, rise

    purchase = event_type == _PURCHASE
    p_idx = idx[purchase]
    p_day = ev_day[purchase]
    drift_amount = np.ones(days)
    if drift_at is not None:
        drift_amount[drift_at:] = _DRIFT_AMOUNT
    amount = np.zeros(n)
    raw = cust.median_amount[p_idx] * drift_amount[p_day] * np.exp(rng.normal(0.0, _AMOUNT_SIGMA, len(p_idx)))
    amount[purchase] = np.maximum(np.round(raw, 2), 0.5)
    category = np.full(n, -1, dtype=np.int64)
    category[purchase] = np.where(
        rng.random(len(p_idx)) < _FAVOURITE_SHARE,
        cust.favourite[p_idx],
        _categorical(rng, _CATEGORY_P, len(p_idx)),
    )

    start_us = (start_date - _EPOCH).days * _SECONDS_PER_DAY * _US_PER_SECOND
    timestamp = start_us + (ev_day * _SECONDS_PER_DAY + second) * _US_PER_SECOND
    return idx, timestamp, event_type, amount, category


def _customer_ids(first: int, m: int, width: int) -> pa.Array:
    """Ids "C" + zero-padded 1-based number, so they sort in generation order."""
    numbers = pc.cast(pa.array(np.arange(first + 1, first + m + 1)), pa.string())
    return pc.binary_join_element_wise("C", pc.utf8_lpad(numbers, width, "0"), "")


def _dates(start_date: dt.date, day: np.ndarray) -> np.ndarray:
    return np.datetime64(start_date, "D") + day.astype("timedelta64[D]")


def _customers_frame(ids: pa.Array, cust: _Customers, days: int, start_date: dt.date) -> pd.DataFrame:
    churn = _dates(start_date, cust.churn_day).astype("datetime64[ns]")
    churn[cust.churn_day >= days] = np.datetime64("NaT")
    return pd.DataFrame(
        {
            names.CUSTOMER_ID: ids.to_numpy(zero_copy_only=False),
            names.SIGNUP_DATE: _dates(start_date, cust.signup_day).astype("datetime64[ns]"),
            names.CHURN_DATE: churn,
            "plan": np.array(PLANS, dtype=object)[cust.plan],
            "channel": np.array(CHANNELS, dtype=object)[cust.channel],
            "region": np.array(REGIONS, dtype=object)[cust.region],
            "value_tier": np.array(VALUE_TIERS, dtype=object)[cust.tier],
        }
    )


def _events_table(
    ids: pa.Array,
    idx: np.ndarray,
    timestamp: np.ndarray,
    event_type: np.ndarray,
    amount: np.ndarray,
    category: np.ndarray,
) -> pa.Table:
    purchase = event_type == _PURCHASE
    # Dictionary decoding is a C++ take: far faster than materialising Python strings.
    customer = pa.DictionaryArray.from_arrays(pa.array(idx.astype(np.int32)), ids).dictionary_decode()
    types = pa.DictionaryArray.from_arrays(
        pa.array(event_type.astype(np.int8)), pa.array(EVENT_TYPES)
    ).dictionary_decode()
    categories = pa.DictionaryArray.from_arrays(
        pa.array(category.astype(np.int8), mask=~purchase), pa.array(CATEGORIES)
    ).dictionary_decode()
    return pa.Table.from_arrays(
        [
            customer,
            pa.array(timestamp, type=EVENTS_SCHEMA.field(names.EVENT_TIMESTAMP).type),
            types,
            pa.array(amount, mask=~purchase),
            categories,
        ],
        schema=EVENTS_SCHEMA,
    )


def _check_arguments(n_customers: int, days: int, drift_at: int | None, chunk_size: int) -> None:
    if n_customers <= 0:
        raise ValueError(f"n_customers must be positive, got {n_customers}")
    if days <= 0:
        raise ValueError(f"days must be positive, got {days}")
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if drift_at is not None and not 0 <= drift_at < days:
        raise ValueError(f"drift_at must be a day in [0, {days}), got {drift_at}")


def _chunks(
    n_customers: int,
    days: int,
    seed: int,
    start_date: dt.date,
    drift_at: int | None,
    chunk_size: int,
) -> Iterator[tuple[pd.DataFrame, pa.Table]]:
    """Customers and events of each chunk in turn, each from its own spawned seed."""
    _check_arguments(n_customers, days, drift_at, chunk_size)
    width = max(7, len(str(n_customers)))
    n_chunks = -(-n_customers // chunk_size)
    for seq, first in zip(np.random.SeedSequence(seed).spawn(n_chunks), range(0, n_customers, chunk_size), strict=True):
        m = min(chunk_size, n_customers - first)
        rng = np.random.default_rng(seq)
        cust = _draw_customers(rng, m, days, drift_at)
        ids = _customer_ids(first, m, width)
        events = _draw_events(rng, cust, days, start_date, drift_at)
        yield _customers_frame(ids, cust, days, start_date), _events_table(ids, *events)


def _concat_customers(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True)


def generate(
    n_customers: int,
    days: int,
    seed: int,
    start_date: dt.date = dt.date(2025, 1, 1),
    drift_at: int | None = None,
    chunk_size: int = 20_000,
    progress: Callable[[int], None] | None = None,
) -> GeneratedData:
    """Generate a synthetic CRM data set in memory.

    Args:
        n_customers: Number of customers.
        days: Length of the period in days, starting at `start_date`.
        seed: Seed of all randomness; the same arguments give identical data.
        start_date: First day of the period (events are in UTC).
        drift_at: Day (0-based, relative to `start_date`) from which behaviour drifts and the
            `social` channel appears; None for no drift.
        chunk_size: Customers generated per vectorised batch (and per spawned seed, so it is part
            of what defines the data).
        progress: Called with the number of customers just finished, once per chunk.

    Returns:
        The customers frame (customer_id, signup_date, churn_date, plan, channel, region,
        value_tier) and the event table (customer_id, event_timestamp, event_type, amount,
        category).

    Raises:
        ValueError: A size is not positive or `drift_at` is outside the period.
    """
    frames: list[pd.DataFrame] = []
    tables: list[pa.Table] = []
    for customers, events in _chunks(n_customers, days, seed, start_date, drift_at, chunk_size):
        frames.append(customers)
        tables.append(events)
        if progress is not None:
            progress(len(customers))
    return GeneratedData(customers=_concat_customers(frames), events=pa.concat_tables(tables))


def _customers_arrow(customers: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(customers, preserve_index=False)


class _AtomicPath:
    """A temporary path next to `target`, moved onto it by `commit` and removed otherwise."""

    def __init__(self, target: Path) -> None:
        self.target = target
        target.parent.mkdir(parents=True, exist_ok=True)
        # A unique name rather than mkstemp, whose 0600 mode would survive the rename.
        self.temp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")

    def commit(self) -> Path:
        os.replace(self.temp, self.target)
        return self.target

    def discard(self) -> None:
        self.temp.unlink(missing_ok=True)


def _write_atomically(table: pa.Table, target: Path) -> Path:
    tmp = _AtomicPath(target)
    try:
        pq.write_table(table, tmp.temp)
        return tmp.commit()
    finally:
        tmp.discard()


def write_generated(data: GeneratedData, out_dir: Path) -> tuple[Path, Path]:
    """Write generated data as Parquet, each file atomically (temp file in `out_dir`, then replace).

    Args:
        data: What `generate` returned.
        out_dir: Directory to write into; created if missing.

    Returns:
        The paths of customers.parquet and events.parquet.
    """
    out_dir = Path(out_dir)
    customers_path = _write_atomically(_customers_arrow(data.customers), out_dir / CUSTOMERS_FILE)
    events_path = _write_atomically(data.events, out_dir / EVENTS_FILE)
    return customers_path, events_path


def generate_to_parquet(
    out_dir: Path,
    n_customers: int,
    days: int,
    seed: int,
    start_date: dt.date = dt.date(2025, 1, 1),
    drift_at: int | None = None,
    chunk_size: int = 20_000,
    progress: Callable[[int], None] | None = None,
) -> tuple[Path, Path]:
    """Generate straight into Parquet, one chunk at a time, so the event log is never whole in memory.

    The files hold the same rows as `write_generated(generate(...), out_dir)` with the same
    arguments (row groups may be laid out differently). Each file appears atomically.

    Args:
        out_dir: Directory to write into; created if missing.
        n_customers: Number of customers.
        days: Length of the period in days.
        seed: Seed of all randomness.
        start_date: First day of the period.
        drift_at: Day from which behaviour drifts; None for no drift.
        chunk_size: Customers per batch (part of what defines the data, as in `generate`).
        progress: Called with the number of customers just finished, once per chunk.

    Returns:
        The paths of customers.parquet and events.parquet.

    Raises:
        ValueError: A size is not positive or `drift_at` is outside the period.
    """
    out_dir = Path(out_dir)
    _check_arguments(n_customers, days, drift_at, chunk_size)
    events_tmp = _AtomicPath(out_dir / EVENTS_FILE)
    try:
        frames: list[pd.DataFrame] = []
        with pq.ParquetWriter(events_tmp.temp, EVENTS_SCHEMA) as writer:
            for customers, events in _chunks(n_customers, days, seed, start_date, drift_at, chunk_size):
                writer.write_table(events)
                frames.append(customers)
                if progress is not None:
                    progress(len(customers))
        customers_path = _write_atomically(_customers_arrow(_concat_customers(frames)), out_dir / CUSTOMERS_FILE)
        events_path = events_tmp.commit()
    finally:
        events_tmp.discard()
    return customers_path, events_path
