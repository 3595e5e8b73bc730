"""The BG/NBD baseline against the `lifetimes` reference on the CDNOW sample its authors fitted."""

from __future__ import annotations

from pathlib import Path

import lifetimes
import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter
from lifetimes.utils import ConvergenceError

from core import names
from features.btyd import P_ALIVE, P_SILENT, PENALIZERS, btyd_scores, fit_bg_nbd

CDNOW = Path(lifetimes.__file__).parent / "datasets" / "cdnow_customers_summary.csv"


def test_fit_and_p_alive_match_lifetimes() -> None:
    data = pd.read_csv(CDNOW, index_col=0)
    model = fit_bg_nbd(data["frequency"], data["recency"], data["T"])
    reference = BetaGeoFitter(penalizer_coef=PENALIZERS[0]).fit(data["frequency"], data["recency"], data["T"])
    assert np.allclose([model.r, model.alpha, model.a, model.b], reference.params_[["r", "alpha", "a", "b"]])
    expected = reference.conditional_probability_alive(data["frequency"], data["recency"], data["T"])
    np.testing.assert_allclose(model.p_alive(data["frequency"], data["recency"], data["T"]), expected, atol=1e-12)


def test_no_purchase_probability_by_simulation() -> None:
    """P(no purchase in H days) agrees with a simulation from the fitted model's posterior."""
    model = fit_bg_nbd(*pd.read_csv(CDNOW, index_col=0)[["frequency", "recency", "T"]].to_numpy().T)
    rng = np.random.default_rng(0)
    x, t_x, t, horizon = 3.0, 20.0, 38.0, 30.0
    alive = rng.random(200_000) < model.p_alive(x, t_x, t)
    rates = rng.gamma(model.r + x, 1.0 / (model.alpha + t), alive.size)
    silent = ~alive | (rng.poisson(rates * horizon) == 0)
    assert abs(silent.mean() - float(model.no_purchase_probability(x, t_x, t, horizon))) < 0.005
    # A customer seen long ago without a purchase since is likelier to stay silent than a recent buyer.
    assert model.no_purchase_probability(3, 2, 38, horizon) > model.no_purchase_probability(3, 36, 38, horizon)


def test_btyd_features_are_fitted_per_observation_date_on_that_date_alone() -> None:
    """P(alive) and P(silent) of a date depend only on that date's rows: no other date (and no label) leaks in."""
    data = pd.read_csv(CDNOW, index_col=0).reset_index(drop=True)
    early = data.assign(**{names.EVENT_TIMESTAMP: pd.Timestamp("1997-10-01", tz="UTC")})
    late = data.assign(**{names.EVENT_TIMESTAMP: pd.Timestamp("1998-07-01", tz="UTC"), "T": data["T"] + 39.0})
    late.loc[:9, "frequency"] = np.nan  # customers who had not bought by then
    rows = pd.concat([early, late], ignore_index=True).rename(
        columns={"frequency": names.BTYD_FREQUENCY, "recency": names.BTYD_RECENCY, "T": names.BTYD_AGE}
    )
    both = btyd_scores(rows, horizon_days=30)
    alone = btyd_scores(rows.iloc[: len(early)], horizon_days=30)
    pd.testing.assert_frame_equal(both.iloc[: len(early)], alone)
    assert both.iloc[len(early) : len(early) + 10].isna().all().all()  # no purchase yet: null
    scored = both.dropna()
    assert ((scored[P_ALIVE] > 0) & (scored[P_ALIVE] <= 1)).all() and (
        (scored[P_SILENT] >= 0) & (scored[P_SILENT] <= 1)
    ).all()
    # Silence follows absence: P(no purchase in 30 days) is at least 1 - P(alive).
    assert (scored[P_SILENT] >= 1 - scored[P_ALIVE] - 1e-12).all()


def _steady_buyer_summaries() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BTYD summaries of 400 steady buyers who never leave (seeded): frequency, recency, T."""
    rng = np.random.default_rng(3)
    age = rng.integers(150, 300, 400).astype(float)
    rates = rng.gamma(2.0, 0.05, 400)
    days = [np.unique(rng.integers(0, int(t), rng.poisson(rate * t))) for t, rate in zip(age, rates, strict=True)]
    buyers = [d for d in days if d.size]
    frequency = np.array([d.size - 1 for d in buyers], dtype=float)
    recency = np.array([d[-1] - d[0] for d in buyers], dtype=float)
    t = np.array([t - d[0] for d, t in zip(days, age, strict=True) if d.size], dtype=float)
    return frequency, recency, t


def _steady_buyers() -> pd.DataFrame:
    frequency, recency, t = _steady_buyer_summaries()
    return pd.DataFrame(
        {
            names.EVENT_TIMESTAMP: pd.Timestamp("2025-06-02", tz="UTC"),
            names.BTYD_FREQUENCY: frequency,
            names.BTYD_RECENCY: recency,
            names.BTYD_AGE: t,
        }
    )


def test_data_without_dropout_still_gets_scores_from_a_larger_penalizer() -> None:
    """Steady buyers who never leave (a -> 0) defeat the first penalizer's fit; a larger one converges,
    so every buyer still gets P(alive) and P(silent) rather than a null the model never saw in training."""
    frequency, recency, t = _steady_buyer_summaries()
    with pytest.raises(ConvergenceError):
        BetaGeoFitter(penalizer_coef=PENALIZERS[0]).fit(frequency, recency, t)
    model = fit_bg_nbd(frequency, recency, t)
    assert np.isfinite([model.r, model.alpha, model.a, model.b]).all()
    scores = btyd_scores(_steady_buyers(), horizon_days=30)
    assert scores.notna().all().all()
    assert scores[P_SILENT].between(0, 1).all() and scores[P_ALIVE].between(0, 1).all()


def test_scores_do_not_depend_on_the_rows_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """The query engine returns a date's rows in any order; the fitting sample, the fit and the scores
    are the same (here with a sample of 150 of the date's buyers, as a large date has)."""
    monkeypatch.setattr("features.btyd.FIT_ROWS", 150)
    rows = pd.read_csv(CDNOW, index_col=0).reset_index(drop=True)
    rows = rows.assign(**{names.EVENT_TIMESTAMP: pd.Timestamp("1997-10-01", tz="UTC")}).rename(
        columns={"frequency": names.BTYD_FREQUENCY, "recency": names.BTYD_RECENCY, "T": names.BTYD_AGE}
    )
    expected = btyd_scores(rows, 30)
    for seed in range(3):
        shuffled = rows.sample(frac=1.0, random_state=seed)
        pd.testing.assert_frame_equal(btyd_scores(shuffled, 30).sort_index(), expected)
