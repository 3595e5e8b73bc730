"""What the synthetic customers do: daily event counts, their types, times, amounts and categories."""

from __future__ import annotations

import datetime as dt

import numpy as np

from features.generator.customers import (
    CATEGORY_P,
    CLICK,
    COMPLAINT,
    PURCHASE,
    TICKET,
    VISIT,
    Customers,
    categorical,
)

_FADING = np.array([PURCHASE, VISIT, CLICK])
"""Event types that ramp down before churn."""
_RISING = np.array([COMPLAINT, TICKET])
"""Event types that ramp up before churn."""

_FAVOURITE_SHARE = 0.6
"""Share of a customer's purchases in their favourite category."""

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

_AMOUNT_SIGMA = 0.55
"""Spread of one purchase around the customer's median order value (log scale)."""

_QUIET_FACTOR = 0.12

_HOUR_WEIGHTS = np.array(
    [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 3.5, 4, 4.2, 4.5, 5, 4.8, 4.5, 4.5, 4.7, 5, 5.5, 6, 5.8, 5, 3.5, 2]
)
"""Relative activity by hour of day (UTC): quiet nights, evening peak."""

_SECONDS_PER_DAY = 86_400
_US_PER_SECOND = 1_000_000
_EPOCH = dt.date(1970, 1, 1)


def _day_factors(days: int, start_date: dt.date, drift_at: int | None) -> np.ndarray:
    """(days, event types) rate multipliers for weekday and drift."""
    weekday = (start_date.weekday() + np.arange(days)) % 7
    factors = _DOW_RATE[weekday].copy()
    if drift_at is not None:
        factors[drift_at:] *= np.array(_DRIFT_RATE)
    return factors


def _ramp_factors(cust: Customers, idx: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def draw_events(
    rng: np.random.Generator,
    cust: Customers,
    days: int,
    start_date: dt.date,
    drift_at: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Events of one chunk of customers.

    Args:
        rng: The chunk's generator, after `draw_customers` drew from it.
        cust: The chunk's customers.
        days: Length of the period.
        start_date: First day of the period (weekday seasonality, timestamps).
        drift_at: Day from which behaviour drifts; None for no drift.

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
    hour = categorical(rng, _HOUR_WEIGHTS, n)
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

    purchase = event_type == PURCHASE
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
        categorical(rng, CATEGORY_P, len(p_idx)),
    )

    start_us = (start_date - _EPOCH).days * _SECONDS_PER_DAY * _US_PER_SECOND
    timestamp = start_us + (ev_day * _SECONDS_PER_DAY + second) * _US_PER_SECOND
    return idx, timestamp, event_type, amount, category
