"""Uplift targeting on data built so that the likeliest churners are not the persuadable: the
T-learner's ranking beats ranking by churn probability on a held-out campaign (Qini), and the Qini
curve's figures on hand-counted data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.crm_settings import UpliftSettings
from crm.campaigns.uplift import NotEnoughOutcomesError, fit_t_learner, qini_coefficient, qini_curve


def campaign(n: int, seed: int) -> pd.DataFrame:
    """Customers whose churn risk rises with x1 while only those with x2 > 0 can be kept (by 60%)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    risk = 1 / (1 + np.exp(-(-1.2 + 1.5 * x[:, 0])))
    persuadable = x[:, 1] > 0
    group = np.where(rng.random(n) < 0.5, "control", "treatment")
    effect = np.where((group == "treatment") & persuadable, 0.6, 0.0)
    churned = (rng.random(n) < risk * (1 - effect)).astype(int)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(1, 6)])
    return frame.assign(
        churn_probability=risk, action="coupon", group=group, churned=churned, true_uplift=risk * 0.6 * persuadable
    )


def test_uplift_ranking_beats_churn_probability_on_a_held_out_campaign() -> None:
    train, test = campaign(8_000, seed=1), campaign(8_000, seed=2)
    features = ["x1", "x2", "x3", "x4", "x5", "churn_probability"]
    model = fit_t_learner(
        train[features], train["action"], train["group"], train["churned"], UpliftSettings(rounds=120, seed=0)
    )
    uplift = model.uplift(test[features], test["action"])
    assert np.corrcoef(uplift, test["true_uplift"])[0, 1] > 0.5
    by_uplift = qini_coefficient(qini_curve(uplift, test["group"], test["churned"]))
    by_risk = qini_coefficient(qini_curve(test["churn_probability"].to_numpy(), test["group"], test["churned"]))
    by_truth = qini_coefficient(qini_curve(test["true_uplift"].to_numpy(), test["group"], test["churned"]))
    assert by_uplift > by_risk > 0 and by_uplift > 1.25 * by_risk
    assert by_uplift <= by_truth * 1.1


def test_qini_curve_by_hand() -> None:
    # Two treated (one churns) and two control (both churn); the ranking puts the treated first.
    group = pd.Series(["treatment", "control", "treatment", "control"])
    churned = pd.Series([0, 1, 1, 1])
    curve = qini_curve(np.array([4.0, 3.0, 2.0, 1.0]), group, churned)
    # top 1: no control yet -> 0; top 2: 1 x 1/1 - 0 = 1; top 3: 1 x 2/1 - 1 = 1; top 4: 2 x 2/2 - 1 = 1.
    assert curve["avoided"].tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert curve["share"].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    # Random targeting is the line to (1, 1): gains -0.25, 0.5, 0.25, 0 at the quarters; trapezoids / 4 customers.
    assert qini_coefficient(curve) == pytest.approx(0.25 * (-0.125 + 0.125 + 0.375 + 0.125) / 4)


def test_too_few_outcomes_name_the_setting() -> None:
    small = campaign(300, seed=3)
    with pytest.raises(NotEnoughOutcomesError, match=r"crm\.campaigns\.uplift\.min_per_group"):
        fit_t_learner(small[["x1"]], small["action"], small["group"], small["churned"], UpliftSettings())
