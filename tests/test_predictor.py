"""The serving predictor on a small real booster: fast input path, reasons, explainers, calibration."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from features.matrix import dmatrix, model_frame, remember_categories
from serving.predictor import FLOAT32_MAX, Predictor, phrase, risk_tier, risk_tiers

PLANS = ["basic", "plus", "pro"]
FEATURES = ["purchases_count_30d", "purchases_count_change", "days_since_last_activity", "profile_plan", "spend"]
TIERS = {"high": 0.5, "medium": 0.2, "low": 0.0}


def frame(n: int, seed: int) -> pd.DataFrame:
    """Seeded feature rows with missing values, a categorical and a churn-like label."""
    rng = np.random.default_rng(seed)
    out = pd.DataFrame(
        {
            "purchases_count_30d": rng.poisson(3, n).astype(float),
            "purchases_count_change": rng.normal(0, 0.5, n),
            "days_since_last_activity": rng.exponential(20, n),
            "profile_plan": rng.choice([*PLANS, None], n),
            "spend": rng.gamma(2, 50, n),
        }
    )
    out.loc[rng.random(n) < 0.1, "spend"] = np.nan
    logit = -0.6 * out["purchases_count_30d"] + 0.05 * out["days_since_last_activity"] - out["purchases_count_change"]
    out["label"] = (logit + rng.logistic(size=n) > 0).astype(int)
    return out


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    """A booster trained on a pandas frame with a categorical, saved and reloaded as serving loads it."""
    train = frame(3_000, seed=1)
    categories = {"profile_plan": PLANS}
    matrix = dmatrix(model_frame(train, FEATURES, categories), label=train["label"])
    params = {"objective": "binary:logistic", "max_depth": 4, "eta": 0.2, "seed": 7, "nthread": 1}
    trained = remember_categories(xgb.train(params, matrix, num_boost_round=40), categories)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.ubj"
        trained.save_model(path)
        loaded = xgb.Booster()
        loaded.load_model(path)
    return loaded


def old_path(booster: xgb.Booster, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and exact contributions through the typed DataFrame, as training predicts."""
    typed = model_frame(rows, FEATURES, {"profile_plan": PLANS})
    numeric = [c for c in FEATURES if c != "profile_plan"]
    typed[numeric] = typed[numeric].clip(-FLOAT32_MAX, FLOAT32_MAX)
    matrix = dmatrix(typed)
    return booster.predict(matrix), booster.predict(matrix, pred_contribs=True)[:, :-1]


def test_fast_input_predicts_as_the_typed_frame(booster: xgb.Booster) -> None:
    rows = frame(500, seed=2).drop(columns="label")
    # What callers send that training never saw: unknown and non-string categories, huge numbers,
    # a number as text (coerced), text that is no number (missing to the model).
    rows["profile_plan"] = rows["profile_plan"].astype(object)
    rows.loc[0, "profile_plan"] = "platinum"
    rows.loc[1, "profile_plan"] = 3
    rows.loc[2, "spend"] = 1e300
    rows.loc[3, "days_since_last_activity"] = -1e300
    rows["purchases_count_30d"] = rows["purchases_count_30d"].astype(object)
    rows.loc[4, "purchases_count_30d"] = "7"
    rows.loc[5, "purchases_count_30d"] = "many"
    predictor = Predictor(booster, "1", TIERS, top_reasons=3)
    outputs = predictor.model_outputs(rows)
    proba, contribs = old_path(booster, rows)
    np.testing.assert_allclose(outputs[:, 0], proba, rtol=1e-6)
    np.testing.assert_allclose(outputs[:, 1:], contribs, rtol=1e-5, atol=1e-6)
    # The probability-only path gives the same numbers.
    np.testing.assert_allclose(predictor.probabilities(rows), proba, rtol=1e-6)
    # Extra columns and column order do not matter.
    shuffled = rows[FEATURES[::-1]].assign(customer_id="c")
    np.testing.assert_allclose(predictor.model_outputs(shuffled), outputs, rtol=1e-6)


def test_reasons_are_the_largest_positive_contributions(booster: xgb.Booster) -> None:
    rows = frame(300, seed=3).drop(columns="label")
    predictor = Predictor(booster, "4", TIERS, top_reasons=2)
    outputs = predictor.model_outputs(rows)
    answers = predictor.answers(rows, outputs)
    assert len(answers) == len(rows)
    for i, answer in enumerate(answers):
        contribs = outputs[i, 1:]
        expected = [j for j in np.argsort(-contribs, kind="stable")[:2] if contribs[j] > 0]
        assert [r["feature"] for r in answer["reasons"]] == [FEATURES[j] for j in expected]
        for reason in answer["reasons"]:
            raw = rows.iloc[i][reason["feature"]]
            value = None if pd.isna(raw) else (raw if isinstance(raw, str) else float(raw))
            assert reason["value"] == value
            assert reason["contribution"] == pytest.approx(float(contribs[FEATURES.index(reason["feature"])]))
            assert reason["phrase"] == phrase(reason["feature"], value)
        assert answer["model_version"] == "4"
        p = answer["churn_probability"]
        assert answer["risk_tier"] == ("high" if p >= 0.5 else "medium" if p >= 0.2 else "low")
    assert any(len(a["reasons"]) == 2 for a in answers) and any(a["risk_tier"] == "high" for a in answers)


def test_no_reasons_asked(booster: xgb.Booster) -> None:
    rows = frame(20, seed=4).drop(columns="label")
    assert all(a["reasons"] == [] for a in Predictor(booster, "1", TIERS, top_reasons=0).score(rows))


@pytest.mark.parametrize("explainer", ["shap", "approx"])
def test_contributions_add_up_to_the_score(booster: xgb.Booster, explainer: str) -> None:
    rows = frame(200, seed=5).drop(columns="label")
    predictor = Predictor(booster, "1", TIERS, top_reasons=3, explainer=explainer)  # type: ignore[arg-type]
    outputs = predictor.model_outputs(rows)
    bias = booster.predict(predictor.matrix(rows), pred_contribs=True)[:, -1]
    margin = np.log(outputs[:, 0] / (1 - outputs[:, 0]))
    np.testing.assert_allclose(outputs[:, 1:].sum(axis=1) + bias, margin, atol=1e-3)


def test_approx_explainer_mostly_agrees_with_shap_on_the_top_reason(booster: xgb.Booster) -> None:
    rows = frame(500, seed=6).drop(columns="label")
    exact = Predictor(booster, "1", TIERS, top_reasons=1).score(rows)
    approx = Predictor(booster, "1", TIERS, top_reasons=1, explainer="approx").score(rows)
    assert [a["churn_probability"] for a in exact] == [a["churn_probability"] for a in approx]
    top = [(e["reasons"][:1], a["reasons"][:1]) for e, a in zip(exact, approx, strict=True) if e["reasons"]]
    same = sum(e[0]["feature"] == a[0]["feature"] for e, a in top if a)
    assert same / len(top) > 0.8
    assert any(e != a for e, a in top)  # they are different methods


def test_calibration_applies_to_probabilities_and_tiers(booster: xgb.Booster) -> None:
    rows = frame(100, seed=7).drop(columns="label")
    predictor = Predictor(booster, "1", TIERS, top_reasons=1)
    raw = predictor.probabilities(rows)
    predictor.calibration = {"method": "sigmoid", "slope": 1.0, "intercept": 3.0}
    calibrated = predictor.probabilities(rows)
    assert (calibrated > raw).all()
    answers = predictor.score(rows)
    np.testing.assert_allclose([a["churn_probability"] for a in answers], calibrated)
    assert all(math.isfinite(a["churn_probability"]) for a in answers)


def test_risk_tiers_of_many_match_one_at_a_time() -> None:
    proba = np.concatenate([np.random.default_rng(8).random(1_000), [0.0, 0.2, 0.5, 1.0]])
    tiers = {"medium": 0.2, "low": 0.0, "high": 0.5}  # any order, as a YAML dump may give
    assert risk_tiers(proba, tiers).tolist() == [risk_tier(float(p), tiers) for p in proba]
    assert risk_tiers(np.array([0.05]), {"watch": 0.1, "high": 0.6}).tolist() == ["watch"]  # below every floor


def test_auto_explainer_is_exact_for_small_calls_and_approximate_for_big_ones(booster: xgb.Booster) -> None:
    rows = frame(30, seed=8).drop(columns="label")
    auto = Predictor(booster, "1", TIERS, top_reasons=2, explainer="auto", exact_rows=10)
    exact = Predictor(booster, "1", TIERS, top_reasons=2, explainer="shap")
    approx = Predictor(booster, "1", TIERS, top_reasons=2, explainer="approx")
    small, big = rows.head(10), rows
    assert {a["reasons_method"] for a in auto.score(small)} == {"shap"}
    assert auto.score(small) == exact.score(small)
    assert {a["reasons_method"] for a in auto.score(big)} == {"approx"}
    assert auto.score(big) == approx.score(big)
    assert auto.reasons(big) == approx.reasons(big) and auto.reasons(big, method="shap") == exact.reasons(big)
    assert exact.method(10_000) == "shap" and approx.method(1) == "approx"
