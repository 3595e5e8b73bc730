"""The fast batch path against the one it replaced: the same alert list, frame for frame.

`crm.alerts.alert_list` computes each column once and takes it in the list's order; the oracle
here is the frame-by-frame version it replaced (early warning as a DataFrame, sorted, re-indexed
and reordered), on a small real booster with a categorical, ties in expected loss, infinite values
and rows in any index order.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from core import names
from core.settings import Settings, parse_settings
from crm import alerts as batch
from crm.answers import crm_bounds
from crm.early_warning import EXPECTED_LOSS, RISK_TIER, early_warning, gc_paused
from crm.tiers import risk_tiers
from model.matrix import dmatrix, model_frame, remember_categories
from model.predictor import Predictor

SETTINGS = parse_settings({}, "test", env={})
PLANS = ["basic", "plus", "pro"]
FEATURES = [
    "purchases_frequency_change",
    "purchases_days_since_last",
    "purchases_count_30d",
    "purchases_spend_90d",
    "service_complaints_30d",
    "engagement_change",
    "engagement_visits_30d",
    "engagement_days_since_last_activity",
    "purchases_rfm_recency",
    "purchases_rfm_frequency",
    "profile_plan",
]


def customers(n: int, seed: int) -> pd.DataFrame:
    """Customers with the default CRM features, missing values, a categorical and repeated rows (ties)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "purchases_frequency_change": rng.choice([-1.0, -0.6, -0.4, 0.0, 0.5], n),
            "purchases_days_since_last": rng.integers(0, 90, n).astype(float),
            "purchases_count_30d": rng.integers(0, 3, n).astype(float),
            "purchases_spend_90d": rng.choice([0.0, 50.0, 120.0, 400.0, np.inf, -np.inf], n),
            "service_complaints_30d": rng.integers(0, 4, n).astype(float),
            "engagement_change": rng.choice([-0.8, -0.5, 0.3], n),
            "engagement_visits_30d": rng.integers(0, 12, n).astype(float),
            "engagement_days_since_last_activity": rng.integers(0, 80, n).astype(float),
            "purchases_rfm_recency": rng.integers(1, 6, n).astype(float),
            "purchases_rfm_frequency": rng.integers(1, 6, n).astype(float),
            "profile_plan": rng.choice([*PLANS, "gold", None], n),
        }
    )
    for column in FEATURES[:-1]:
        frame.loc[rng.random(n) < 0.1, column] = np.nan
    frame = frame.iloc[rng.integers(0, max(n // 3, 1), n)]  # repeated rows: ties in loss and probability
    frame.index = pd.Index(rng.permutation(n) * 2 + 5)  # not a RangeIndex: the list is positional
    frame.insert(0, names.CUSTOMER_ID, [f"c{i}" for i in range(n)])
    return frame


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    """A champion-like predictor: a booster on the CRM features with a categorical, a reference sample."""
    train = customers(2_000, seed=1).replace([np.inf, -np.inf], np.nan)
    rng = np.random.default_rng(2)
    label = (train["purchases_days_since_last"].fillna(90) / 90 + rng.random(len(train)) > 1.0).astype(int)
    categories = {"profile_plan": PLANS}
    matrix = dmatrix(model_frame(train, FEATURES, categories), label=label)
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "seed": 3, "nthread": 1}
    booster = remember_categories(xgb.train(params, matrix, num_boost_round=20), categories)
    cfg = SETTINGS.serving
    return Predictor(booster, "7", cfg.top_reasons, explainer="auto", exact_rows=5, reference=train)


def old_alert_list(
    settings: Settings,
    predictor: Predictor,
    features: pd.DataFrame,
    date: pd.Timestamp,
    progress: Callable[[int, int], None] | None = None,
    reasons_top: int | None | batch.Default = batch.DEFAULT,
) -> pd.DataFrame:
    """`alert_list` as it was: the early-warning frame sorted, re-indexed and reordered."""
    n = len(features)
    top = settings.serving.batch_reasons_top if isinstance(reasons_top, batch.Default) else reasons_top
    explained = n if top is None else min(top, n)
    proba = np.empty(n, dtype=float)
    for start in range(0, n, batch.CHUNK):
        stop = min(start + batch.CHUNK, n)
        proba[start:stop] = predictor.probabilities(features.iloc[start:stop])
    tiers = risk_tiers(proba, settings.serving.risk_tiers)
    bounds = crm_bounds(settings, predictor)
    alerts = early_warning(settings.crm, features, proba, tiers, reference=predictor.reference, bounds=bounds)
    alerts.insert(1, batch.AS_OF, date.date())
    alerts[batch.MODEL_VERSION] = predictor.version
    alerts = alerts.sort_values([EXPECTED_LOSS, names.PREDICTION], ascending=False, kind="stable")
    reasons: list[Any] = [None] * n
    method = predictor.method(explained)
    rows = alerts.index[:explained].to_numpy()
    for start in range(0, explained, batch.EXPLAIN_CHUNK):
        stop = min(start + batch.EXPLAIN_CHUNK, explained)
        reasons[start:stop] = predictor.reasons(features.iloc[rows[start:stop]], method=method)
    alerts = alerts.reset_index(drop=True)
    alerts[batch.REASONS] = reasons
    alerts[batch.REASONS_METHOD] = [method] * explained + [None] * (n - explained)
    order = [names.CUSTOMER_ID, batch.AS_OF, names.PREDICTION, RISK_TIER, batch.REASONS, batch.REASONS_METHOD]
    return alerts[order + [c for c in alerts.columns if c not in order]]


DATE = pd.Timestamp("2024-03-01", tz="UTC")


@pytest.mark.filterwarnings("ignore:invalid value encountered in subtract:RuntimeWarning")  # inf spend quantiles
@pytest.mark.parametrize("reasons_top", [batch.DEFAULT, 0, 4, 37, None], ids=["default", "0", "4", "37", "all"])
@pytest.mark.parametrize("reference", [True, False], ids=["reference", "no_reference"])
def test_alert_list_is_the_frame_it_was(predictor: Predictor, reasons_top: Any, reference: bool) -> None:  # noqa: ANN401
    model = predictor if reference else _without_reference(predictor)
    features = customers(600, seed=4)
    expected = old_alert_list(SETTINGS, model, features, DATE, reasons_top=reasons_top)
    calls: list[tuple[int, int]] = []
    alerts = batch.alert_list(SETTINGS, model, features, DATE, lambda *a: calls.append(a), reasons_top=reasons_top)
    pd.testing.assert_frame_equal(alerts, expected)
    assert repr(alerts[batch.REASONS].tolist()) == repr(expected[batch.REASONS].tolist())  # -0.0, NaN alike
    assert calls[-1][0] == calls[-1][1] == len(features) + int(expected[batch.REASONS].notna().sum())
    assert alerts[EXPECTED_LOSS].duplicated().any()  # ties, kept in row order
    assert gc.isenabled()


def test_alert_list_of_no_rows_and_of_one_chunk_boundary(predictor: Predictor, monkeypatch: Any) -> None:  # noqa: ANN401
    empty = customers(5, seed=5).iloc[:0]
    pd.testing.assert_frame_equal(
        batch.alert_list(SETTINGS, predictor, empty, DATE), old_alert_list(SETTINGS, predictor, empty, DATE)
    )
    monkeypatch.setattr(batch, "CHUNK", 64)  # probabilities chunk by chunk
    monkeypatch.setattr(batch, "APPROX_CHUNK", 50)  # reasons too
    features = customers(300, seed=6)
    pd.testing.assert_frame_equal(
        batch.alert_list(SETTINGS, predictor, features, DATE, reasons_top=None),
        old_alert_list(SETTINGS, predictor, features, DATE, reasons_top=None),
    )


def _without_reference(predictor: Predictor) -> Predictor:
    """The same model without a training sample (quantile layers from the scored rows)."""
    return Predictor(predictor.booster, predictor.version, predictor.top_reasons, "auto", 5)


def test_sort_order_is_pandas_stable_descending_sort() -> None:
    rng = np.random.default_rng(7)
    n = 2_000
    loss = rng.choice([0.0, -0.0, 1.5, 2.0, np.inf, -np.inf, np.nan, 7.25], n)
    proba = rng.choice([0.1, 0.5, 0.5, 0.9, np.nan, 0.0, -0.0], n)
    frame = pd.DataFrame({"loss": loss, "p": proba})
    expected = frame.sort_values(["loss", "p"], ascending=False, kind="stable").index.to_numpy()
    np.testing.assert_array_equal(batch.sort_order(loss, proba), expected)


def test_gc_paused_restores_the_collector() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # left off, as it was
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()
