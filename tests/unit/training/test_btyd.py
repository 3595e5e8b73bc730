"""The BG/NBD baseline against the `lifetimes` reference on the CDNOW sample its authors fitted."""

from __future__ import annotations

from pathlib import Path

import lifetimes
import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter

from training.btyd import PENALIZER, fit_bg_nbd

CDNOW = Path(lifetimes.__file__).parent / "datasets" / "cdnow_customers_summary.csv"


def test_fit_and_p_alive_match_lifetimes() -> None:
    data = pd.read_csv(CDNOW, index_col=0)
    model = fit_bg_nbd(data["frequency"], data["recency"], data["T"])
    reference = BetaGeoFitter(penalizer_coef=PENALIZER).fit(data["frequency"], data["recency"], data["T"])
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
