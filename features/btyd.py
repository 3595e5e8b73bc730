"""Buy-till-you-die: a BG/NBD model of repeat purchases, as features and as the baseline to beat.

BG/NBD (Fader, Hardie and Lee, 2005) describes a customer by three numbers at an observation
date: frequency (repeat purchase days), recency (days from the first to the last purchase day)
and T (days from the first purchase to the observation date). While alive, a customer buys at a
Poisson rate drawn from a gamma distribution across customers; after each purchase they drop out
with a probability drawn from a beta distribution. Four parameters, fitted by maximum likelihood
with the `lifetimes` library.

For an activity label (no purchase within `H` days after the observation date), the baseline's
churn probability is

    P(no purchase in (T, T + H]) = 1 - P(alive | x, t_x, T) * (1 - ((alpha + T) / (alpha + T + H)) ** (r + x))

since an alive customer with posterior rate gamma(r + x, alpha + T) makes no purchase in H days
with probability ((alpha + T) / (alpha + T + H)) ** (r + x), and one who left makes none.

The feature build fits the model on every observation date's purchase histories (no labels: it is
unsupervised) and adds P(alive) and P(no purchase in H) as features (`btyd_scores`); training
fits it on the training rows as a baseline (`training.evaluation`).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from core import names

SUMMARY = (names.BTYD_FREQUENCY, names.BTYD_RECENCY, names.BTYD_AGE)
"""The lifetime features a BG/NBD model needs (the feature build computes them from purchases)."""

PENALIZERS = (0.001, 0.01, 0.1, 1.0)
"""L2 penalties on the log-parameters, tried in turn until the fit converges: a small one keeps the
fit finite on small samples; data with next to no dropout (a -> 0) needs a larger one."""


@dataclass(frozen=True)
class BgNbd:
    """A fitted BG/NBD model: r and alpha (purchase rates), a and b (dropout)."""

    r: float
    alpha: float
    a: float
    b: float

    def p_alive(self, frequency: npt.ArrayLike, recency: npt.ArrayLike, age: npt.ArrayLike) -> np.ndarray:
        """The probability that each customer is still alive at the observation date."""
        x, t_x, t = _arrays(frequency, recency, age)
        # Fader, Hardie and Lee (2005), eq. (12), in logs for large T: 1 / (1 + delta * A / B).
        log_ratio = (
            np.log(self.a)
            - np.log(self.b + np.maximum(x, 1.0) - 1.0)
            + (self.r + x) * (np.log(self.alpha + t) - np.log(self.alpha + t_x))
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(x > 0, 1.0 / (1.0 + np.exp(np.minimum(log_ratio, 700.0))), 1.0)

    def no_purchase_probability(
        self, frequency: npt.ArrayLike, recency: npt.ArrayLike, age: npt.ArrayLike, horizon_days: float
    ) -> np.ndarray:
        """P(no purchase in the `horizon_days` after the observation date): the churn score of an activity label."""
        x, _, t = _arrays(frequency, recency, age)
        alive = self.p_alive(frequency, recency, age)
        silent_if_alive = np.exp((self.r + x) * (np.log(self.alpha + t) - np.log(self.alpha + t + horizon_days)))
        return 1.0 - alive * (1.0 - silent_if_alive)


def fit_bg_nbd(frequency: npt.ArrayLike, recency: npt.ArrayLike, age: npt.ArrayLike) -> BgNbd:
    """Fit BG/NBD by maximum likelihood (`lifetimes.BetaGeoFitter`) on one row per customer.

    Args:
        frequency: Repeat purchase days per customer (purchase days - 1).
        recency: Days from the first to the last purchase day.
        age: Days from the first purchase day to the observation date (T).

    Raises:
        ValueError: No customer with a purchase to fit on.
    """
    from lifetimes import BetaGeoFitter
    from lifetimes.utils import ConvergenceError

    x, t_x, t = _arrays(frequency, recency, age)
    keep = np.isfinite(x) & np.isfinite(t_x) & np.isfinite(t) & (t > 0)
    if not keep.any():
        raise ValueError("BG/NBD needs customers with at least one purchase before the observation date")
    for penalizer in PENALIZERS:
        fitter = BetaGeoFitter(penalizer_coef=penalizer)
        # The optimiser steps through parameters whose likelihood under- or overflows on its way (log
        # of 0); lifetimes handles those steps, so their floating-point warnings are noise here, and
        # it prints the optimiser's state when it gives up (the next penalizer is tried).
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore", RuntimeWarning)
                fitter.fit(pd.Series(x[keep]), pd.Series(t_x[keep]), pd.Series(t[keep]))
        except ConvergenceError:
            continue
        params = fitter.params_
        return BgNbd(float(params["r"]), float(params["alpha"]), float(params["a"]), float(params["b"]))
    raise ValueError(f"BG/NBD did not converge with any penalizer of {PENALIZERS}")


def _arrays(
    frequency: npt.ArrayLike, recency: npt.ArrayLike, age: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(frequency, dtype=np.float64)
    t_x = np.asarray(recency, dtype=np.float64)
    t = np.asarray(age, dtype=np.float64)
    return x, np.minimum(t_x, t), t


P_ALIVE = "purchases_btyd_p_alive"
"""Feature: the BG/NBD probability that the customer is still alive (buying) at the observation date."""
P_SILENT = "purchases_btyd_p_silent"
"""Feature: the BG/NBD probability of no purchase within the label horizon after the observation date."""
SCORES = (P_ALIVE, P_SILENT)
FIT_ROWS = 20_000
"""Customers a date's BG/NBD fit reads at most (a seeded sample): four population parameters need no more."""


def btyd_scores(rows: pd.DataFrame, horizon_days: int, seed: int = 0) -> pd.DataFrame:
    """BG/NBD scores of snapshot rows, the model fitted afresh on each observation date's customers.

    The fit reads only the purchase histories before the date (the BTYD summary of the rows), no
    label: the scores are features like any other, point-in-time correct. A customer without a
    purchase before the date, or a date whose fit fails (no repeat buyers at all), scores null.

    Args:
        rows: `event_timestamp` and the three `SUMMARY` columns, any index.
        horizon_days: The label horizon for `P_SILENT`.
        seed: Seed of the fitting sample of a date with more than `FIT_ROWS` buyers.

    Returns:
        `SCORES` columns, on `rows`' index.
    """
    out = pd.DataFrame(np.nan, index=rows.index, columns=list(SCORES))
    for _, day in rows.groupby(names.EVENT_TIMESTAMP, sort=True):
        model = fit_day(day, seed)
        if model is not None:
            out.loc[day.index] = score_rows(model, day, horizon_days)
    return out


def fit_day(day: pd.DataFrame, seed: int = 0) -> BgNbd | None:
    """The BG/NBD model of one observation date's customers, as `btyd_scores` fits it.

    Args:
        day: The three `SUMMARY` columns of one date's rows, any index.
        seed: Seed of the fitting sample of a date with more than `FIT_ROWS` buyers.

    Returns:
        The model, or None when there is no buyer or the fit fails.
    """
    frequency, recency, age = SUMMARY
    # In a canonical order: the optimiser's path (and which penalizer converges) depends on the
    # rows' order, and the query engine returns rows in any order.
    buyers = day[day[frequency].notna() & (day[age] > 0)].sort_values(list(SUMMARY), kind="mergesort")
    if buyers.empty:
        return None
    sample = buyers.sample(n=min(FIT_ROWS, len(buyers)), random_state=seed)
    try:
        model = fit_bg_nbd(sample[frequency], sample[recency], sample[age])
    except (ValueError, np.linalg.LinAlgError, FloatingPointError):
        return None
    return model if all(np.isfinite([model.r, model.alpha, model.a, model.b])) else None


def score_rows(model: BgNbd, rows: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """`SCORES` of rows under a fitted model; null for a customer without a purchase before the date.

    Args:
        model: The fitted model.
        rows: The three `SUMMARY` columns, any index.
        horizon_days: The label horizon for `P_SILENT`.
    """
    frequency, recency, age = SUMMARY
    out = pd.DataFrame(np.nan, index=rows.index, columns=list(SCORES))
    buyers = rows[rows[frequency].notna() & (rows[age] > 0)]
    x, t_x, t = buyers[frequency].to_numpy(), buyers[recency].to_numpy(), buyers[age].to_numpy()
    out.loc[buyers.index, P_ALIVE] = model.p_alive(x, t_x, t)
    out.loc[buyers.index, P_SILENT] = model.no_purchase_probability(x, t_x, t, horizon_days)
    return out
