"""Blending the trees with the logistic regression: the linear part reproduces the regression, and a
blended model's probabilities and exact contributions agree everywhere the model is scored."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from model.bundle import ModelBundle
from model.linear import CompiledLinear, LinearPart
from model.matrix import dmatrix, input_array, model_frame, remember_categories
from model.predictor import Predictor
from training.baselines import baseline_input, logistic_baseline, model_columns
from training.blend import choose_tree_weight, linear_part, roc_auc_of_counts

FEATURES = ["visits_30d", "spend_90d", "empty", "plan"]
CATEGORIES = {"plan": ["basic", "plus", "pro"]}


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "visits_30d": rng.poisson(4, n).astype(float),
            "spend_90d": np.where(rng.random(n) < 0.2, np.nan, rng.gamma(2.0, 30.0, n)),
            "empty": np.full(n, np.nan),  # a feature without a single value in training
            "plan": rng.choice(["basic", "plus", "pro", None], n),
        }
    )


def _label(frame: pd.DataFrame, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logit = -1.0 - 0.4 * frame["visits_30d"] + 0.01 * frame["spend_90d"].fillna(60) + (frame["plan"] == "basic")
    return (rng.random(len(frame)) < 1 / (1 + np.exp(-logit))).astype(int)


@pytest.fixture(scope="module")
def fitted() -> tuple[xgb.Booster, LinearPart, pd.DataFrame]:
    train = _frame(2_000, seed=1)
    y = _label(train, seed=2)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "seed": 1, "nthread": 1},
        dmatrix(model_frame(train, FEATURES, CATEGORIES), label=y),
        num_boost_round=20,
    )
    regression = logistic_baseline(train, y)
    return remember_categories(booster, CATEGORIES), linear_part(regression, train, 0.6), train


def test_the_linear_part_is_the_regression(fitted: tuple[xgb.Booster, LinearPart, pd.DataFrame]) -> None:
    booster, part, train = fitted
    rows = _frame(300, seed=3)
    regression = logistic_baseline(train, _label(train, seed=2))
    numeric, categorical = model_columns(train)
    expected = regression.decision_function(baseline_input(rows, numeric, categorical))
    compiled = CompiledLinear(LinearPart.from_dict(part.to_dict()), FEATURES, CATEGORIES)
    np.testing.assert_allclose(compiled.margin(input_array(booster, rows)), expected, rtol=1e-9, atol=1e-9)
    assert part.categorical["plan"].keys() == {"basic", "plus", "pro", "__missing__"}


def test_a_blended_model_scores_alike_everywhere(fitted: tuple[xgb.Booster, LinearPart, pd.DataFrame]) -> None:
    booster, part, _ = fitted
    rows = _frame(200, seed=4)
    bundle = ModelBundle(booster, None, None, part)
    predictor = Predictor(booster, "1", top_reasons=2, linear=part)
    expected = bundle.raw_probabilities(rows)
    np.testing.assert_allclose(predictor.probabilities(rows), expected, rtol=1e-5)
    for method in ("shap", "approx"):
        outputs = predictor.model_outputs(rows, method=method)  # the contributions sum to the blended margin
        np.testing.assert_allclose(outputs[:, 0], expected, rtol=1e-4, atol=1e-6)
    # The blend sits between the trees and the regression.
    trees = booster.predict(dmatrix(model_frame(rows, FEATURES, CATEGORIES)), output_margin=True)
    linear = CompiledLinear(part, FEATURES, CATEGORIES).margin(input_array(booster, rows))
    margin = np.log(expected / (1 - expected))
    np.testing.assert_allclose(margin, 0.6 * trees + 0.4 * linear, rtol=1e-6, atol=1e-6)


def test_an_even_blend_unless_the_held_out_rows_clearly_prefer_another() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 4_000)
    signal = y + rng.normal(0, 1, y.size)
    weight, scored = choose_tree_weight(y, signal, signal, (0.5, 0.8), roc_auc_score)
    assert weight == 0.5 and set(scored) == {1.0, 0.8, 0.5}  # all alike: the even blend
    noise = rng.normal(0, 1, y.size)  # a regression that knows nothing: the trees alone, clearly
    weight, scored = choose_tree_weight(y, signal, noise, (0.5, 0.8), roc_auc_score)
    assert weight == 1.0 and scored[1.0] > scored[0.8] > scored[0.5]
    slightly = signal + rng.normal(0, 0.05, y.size)  # a lead within the noise does not move it
    weight, scored = choose_tree_weight(y[:300], signal[:300], slightly[:300], (0.5, 0.8), roc_auc_score)
    assert weight == 0.5
    assert choose_tree_weight(y, signal, noise, (), roc_auc_score)[0] == 1.0  # blending off


def test_the_bootstrap_auc_from_draw_counts_is_sklearns_auc_of_the_drawn_rows() -> None:
    rng = np.random.default_rng(11)
    y = (rng.random(3_000) < 0.1).astype(int)
    proba = np.round(rng.random(y.size) * 0.5 + 0.2 * y * rng.random(y.size), 2)  # rounded: many ties
    auc = roc_auc_of_counts(y, proba)
    for _ in range(20):
        rows = rng.integers(0, y.size, y.size)
        counts = np.bincount(rows, minlength=y.size)
        assert auc(counts) == pytest.approx(roc_auc_score(y[rows], proba[rows]), abs=1e-12)
    # The same draws, so the same choice of weight as scoring every resample's rows.
    signal = y + rng.normal(0, 1, y.size)
    for linear in (signal + rng.normal(0, 0.3, y.size), rng.normal(0, 1, y.size)):
        plain = choose_tree_weight(y, signal, linear, (0.5, 0.8), roc_auc_score, seed=3)
        fast = choose_tree_weight(y, signal, linear, (0.5, 0.8), roc_auc_score, seed=3, counted=roc_auc_of_counts)
        assert fast == plain


def test_a_table_without_a_time_axis_splits_into_a_stratified_test_share_and_stratified_folds() -> None:
    from core import names
    from training.dataset import cross_validation_split

    rng = np.random.default_rng(6)
    frame = _frame(1_000, seed=6).assign(
        **{
            names.CUSTOMER_ID: [f"c{i:04d}" for i in range(1_000)],
            names.EVENT_TIMESTAMP: pd.Timestamp("2024-01-01", tz="UTC"),
            names.LABEL: (rng.random(1_000) < 0.25).astype(int),
        }
    )
    split = cross_validation_split(frame, FEATURES, folds=5, test_share=0.2, seed=7)
    assert split.cross_validated and split.valid.empty and len(split.test) == 200 and len(split.train) == 800
    assert not set(split.test[names.CUSTOMER_ID]) & set(split.train[names.CUSTOMER_ID])
    assert abs(split.test[names.LABEL].mean() - frame[names.LABEL].mean()) < 0.01  # stratified
    held = np.concatenate([out for _, out in split.folds])
    assert sorted(held) == list(range(800)) and len(split.folds) == 5  # every row held out exactly once
    for fit_rows, out in split.folds:
        assert not set(fit_rows) & set(out)
        assert abs(split.train[names.LABEL].iloc[out].mean() - split.train[names.LABEL].mean()) < 0.02
    again = cross_validation_split(frame, FEATURES, folds=5, test_share=0.2, seed=7)
    pd.testing.assert_frame_equal(again.test, split.test)  # the same seed, the same split
