"""Who the synthetic customers are: attributes, latent traits, event rates and when they churn."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core import names

EVENT_TYPES: tuple[str, ...] = names.STANDARD_EVENT_TYPES
"""purchase, visit, click, message, complaint, support_ticket (the column order of every rate array)."""

PLANS = ("basic", "standard", "premium")
CHANNELS = ("web", "store", "app", "partner", "social")
"""`social` exists only with drift, for customers signing up on or after `drift_at`."""
REGIONS = ("north", "south", "east", "west", "central")
VALUE_TIERS = ("low", "mid", "high")
CATEGORIES = ("electronics", "fashion", "home", "beauty", "sports", "grocery", "books", "toys")

PURCHASE, VISIT, CLICK, MESSAGE, COMPLAINT, TICKET = range(6)
"""Positions of the event types in `EVENT_TYPES` (and in every rate array)."""

_SOCIAL = CHANNELS.index("social")
_PRE_EXISTING_SHARE = 0.25
_SOCIAL_SHARE_AFTER_DRIFT = 0.4

_PLAN_P = (0.5, 0.35, 0.15)
_CHANNEL_P = (0.4, 0.25, 0.25, 0.10)
_REGION_P = (0.22, 0.20, 0.18, 0.20, 0.20)
_TIER_P_BY_PLAN = ((0.60, 0.32, 0.08), (0.45, 0.40, 0.15), (0.25, 0.40, 0.35))
"""Value tier probabilities per plan: premium customers are more often high value."""
CATEGORY_P = (0.16, 0.18, 0.14, 0.10, 0.09, 0.17, 0.08, 0.08)

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

_TIER_MEDIAN_AMOUNT = (20.0, 45.0, 110.0)
_PLAN_AMOUNT = (0.9, 1.0, 1.25)
_CHANNEL_AMOUNT = (1.0, 1.05, 0.95, 1.1, 0.8)

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


@dataclass(frozen=True)
class Customers:
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


def categorical(rng: np.random.Generator, probs: tuple[float, ...] | np.ndarray, size: int) -> np.ndarray:
    """`size` draws of a category index with the (not necessarily normalised) weights `probs`."""
    cum = np.cumsum(probs)
    return np.searchsorted(cum / cum[-1], rng.random(size), side="right").astype(np.int64)


def draw_customers(rng: np.random.Generator, m: int, days: int, drift_at: int | None) -> Customers:
    """Static attributes, latent traits and churn day of `m` customers.

    Args:
        rng: The chunk's generator (customers are drawn before their events).
        m: Number of customers.
        days: Length of the period.
        drift_at: Day from which new signups may come through `social`; None for no drift.

    Returns:
        The draws, days relative to the start of the period.
    """
    # Every draw happens whatever the options, so a drift run keeps the same customers as the
    # plain run except for the channel of post-drift signups.
    plan = categorical(rng, _PLAN_P, m)
    channel = categorical(rng, _CHANNEL_P, m)
    region = categorical(rng, _REGION_P, m)
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
    favourite = categorical(rng, CATEGORY_P, m)

    complaint_propensity = dissatisfaction * _DISSATISFACTION_EXPONENT[COMPLAINT] + idiosyncratic[:, COMPLAINT]
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

    return Customers(
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
