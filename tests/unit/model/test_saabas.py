"""XGBoost's approximate contributions from flat trees, against XGBoost's own `approx_contribs`."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb
from booster_data import data, rows_of, train

from model import saabas
from model.predictor import Predictor


def xgboost_approx(booster: xgb.Booster, rows: np.ndarray) -> np.ndarray:
    return booster.predict(xgb.DMatrix(rows), pred_contribs=True, approx_contribs=True, validate_features=False)


@pytest.mark.parametrize(
    "params",
    [
        {"max_cat_to_onehot": 1},  # set splits on the categorical
        {"max_cat_to_onehot": 16, "max_depth": 3, "min_split_loss": 50.0},  # one-hot splits, single-leaf trees
        {"max_depth": 10, "min_child_weight": 0.0, "lambda": 0.0},  # deep paths
    ],
)
def test_contributions_are_xgboosts_approximation(params: dict[str, object]) -> None:
    booster = train(params)
    trees = saabas.build(booster)
    assert trees is not None
    rows = rows_of(500, seed=2)  # missing values, unseen, past-the-set and negative codes, float32's max
    ours = saabas.contributions(trees, rows)
    theirs = xgboost_approx(booster, rows)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=2e-6)
    # They add up to the margin, and a row alone gets what it gets among others.
    margin = booster.predict(xgb.DMatrix(rows), output_margin=True, validate_features=False)
    np.testing.assert_allclose(ours.sum(axis=1), margin, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(saabas.contributions(trees, rows[7:8]), ours[7:8], rtol=1e-12, atol=1e-12)


def test_the_approximation_differs_from_exact_treeshap() -> None:
    # Else the comparison above could not tell the two apart.
    booster = train({"max_cat_to_onehot": 1})
    trees = saabas.build(booster)
    assert trees is not None
    rows = rows_of(200, seed=3)
    exact = booster.predict(xgb.DMatrix(rows), pred_contribs=True, validate_features=False)
    assert np.abs(saabas.contributions(trees, rows) - exact).max() > 1e-3


def test_no_rows() -> None:
    trees = saabas.build(train({}, rounds=3))
    assert trees is not None
    assert saabas.contributions(trees, np.empty((0, 5), dtype=np.float32)).shape == (0, 6)


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"booster": "dart", "rate_drop": 0.2}, "dart weighs its trees"),
        ({"objective": "multi:softprob", "num_class": 3}, "several outputs"),
    ],
)
def test_models_the_flat_trees_do_not_cover(params: dict[str, object], why: str) -> None:
    x, y = data(2_000, seed=5)
    if params.get("objective") == "multi:softprob":
        y = np.random.default_rng(5).integers(0, 3, len(y))
    base = {"objective": "binary:logistic", "max_depth": 6, "seed": 7, "nthread": 1}
    model = xgb.train({**base, **params}, xgb.DMatrix(x, label=y, enable_categorical=True), num_boost_round=10)
    assert saabas.build(model) is None, why


def test_the_predictors_approximate_reasons_use_the_flat_trees() -> None:
    booster = train({"max_cat_to_onehot": 1})
    x, _ = data(300, seed=6)
    predictor = Predictor(booster, "1", top_reasons=3, explainer="approx")
    fast = predictor.model_outputs(x, method="approx")
    predictor._saabas = None  # XGBoost's own approximation
    slow = predictor.model_outputs(x, method="approx")
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=2e-6)
