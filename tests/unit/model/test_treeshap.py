"""Exact TreeSHAP by table lookup against XGBoost's own `pred_contribs`, on small real boosters."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb
from booster_data import data, rows_of, train

from model import treeshap


def xgboost_contribs(booster: xgb.Booster, rows: np.ndarray) -> np.ndarray:
    return booster.predict(xgb.DMatrix(rows), pred_contribs=True, validate_features=False)


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    return train({"max_cat_to_onehot": 1})


def test_contributions_are_xgboosts(booster: xgb.Booster) -> None:
    tables = treeshap.build(booster)
    assert tables is not None
    assert len(tables.category_feature) > 0  # the model has set splits on the categorical
    rows = rows_of(500, seed=2)
    ours = treeshap.contributions(tables, rows)
    theirs = xgboost_contribs(booster, rows)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=2e-6)
    # They add up to the margin.
    margin = booster.predict(xgb.DMatrix(rows), output_margin=True, validate_features=False)
    np.testing.assert_allclose(ours.sum(axis=1), margin, rtol=1e-5, atol=1e-5)
    # A row alone gets what it gets among others.
    np.testing.assert_allclose(treeshap.contributions(tables, rows[7:8]), ours[7:8], rtol=1e-12, atol=1e-12)


def test_a_feature_tested_twice_on_a_path_counts_once(booster: xgb.Booster) -> None:
    tables = treeshap.build(booster)
    assert tables is not None
    splits_on_path = np.array([bin(int(m)).count("1") for m in tables.pattern_mask])
    features_on_path = (tables.to_features[:-1].T.toarray().reshape(len(splits_on_path), -1) > 0).sum(axis=1)
    assert (features_on_path < splits_on_path).any()  # some path tests a feature more than once
    rows = rows_of(200, seed=3)
    np.testing.assert_allclose(
        treeshap.contributions(tables, rows), xgboost_contribs(booster, rows), rtol=1e-5, atol=2e-6
    )


def test_one_hot_splits_and_single_leaf_trees() -> None:
    # One-hot categorical splits, and trees that cannot split (every tree after the first few).
    booster = train({"max_cat_to_onehot": 16, "max_depth": 3, "min_split_loss": 50.0}, rounds=20)
    tables = treeshap.build(booster)
    assert tables is not None
    assert (tables.pattern_mask == 0).any()  # a tree that is a single leaf
    rows = rows_of(100, seed=4)
    np.testing.assert_allclose(
        treeshap.contributions(tables, rows), xgboost_contribs(booster, rows), rtol=1e-5, atol=2e-6
    )


def test_no_rows() -> None:
    tables = treeshap.build(train({}, rounds=3))
    assert tables is not None
    assert treeshap.contributions(tables, np.empty((0, 5), dtype=np.float32)).shape == (0, 6)


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"booster": "dart", "rate_drop": 0.2}, "dart weighs its trees"),
        ({"objective": "multi:softprob", "num_class": 3}, "several outputs"),
        ({"max_depth": 12, "min_child_weight": 0.0, "lambda": 0.0}, "paths longer than MAX_PATH"),
    ],
)
def test_models_the_tables_do_not_cover(params: dict[str, object], why: str) -> None:
    x, y = data(2_000, seed=5)
    if params.get("objective") == "multi:softprob":
        y = np.random.default_rng(5).integers(0, 3, len(y))
    base = {"objective": "binary:logistic", "max_depth": 6, "seed": 7, "nthread": 1}
    model = xgb.train({**base, **params}, xgb.DMatrix(x, label=y, enable_categorical=True), num_boost_round=10)
    assert treeshap.build(model) is None, why


def test_a_table_over_the_memory_cap_is_not_built(booster: xgb.Booster) -> None:
    tables = treeshap.build(booster)
    assert tables is not None
    assert treeshap.build(booster, max_bytes=tables.table.nbytes - 1) is None
    assert treeshap.build(booster, max_bytes=tables.table.nbytes) is not None
