"""The serving predictor on a small real booster: fast input path, reasons, explainers, calibration."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from crm.answers import answers, score
from crm.tiers import risk_tier, risk_tiers
from model.matrix import dmatrix, model_frame, remember_categories
from model.predictor import FLOAT32_MAX, ONE_THREAD_ROWS, Predictor
from model.reasons import phrase

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
    predictor = Predictor(booster, "1", top_reasons=3)
    outputs = predictor.model_outputs(rows)
    proba, contribs = old_path(booster, rows)
    # The probability comes from the contributions' sum: predict's number up to float32 rounding.
    np.testing.assert_allclose(outputs[:, 0], proba, rtol=1e-5, atol=3e-7)
    np.testing.assert_allclose(outputs[:, 1:], contribs, rtol=1e-5, atol=1e-6)
    # The probability-only path gives the same numbers.
    np.testing.assert_allclose(predictor.probabilities(rows), proba, rtol=1e-6)
    # Extra columns and column order do not matter.
    shuffled = rows[FEATURES[::-1]].assign(customer_id="c")
    np.testing.assert_allclose(predictor.model_outputs(shuffled), outputs, rtol=1e-6)


@pytest.mark.parametrize("explainer", ["shap", "approx"])
def test_probability_is_the_sigmoid_of_the_contributions(booster: xgb.Booster, explainer: str) -> None:
    rows = frame(400, seed=4).drop(columns="label")
    predictor = Predictor(booster, "1", top_reasons=3, explainer=explainer)  # type: ignore[arg-type]
    outputs = predictor.model_outputs(rows)
    matrix = predictor.matrix(rows)
    full = booster.predict(matrix, pred_contribs=True, approx_contribs=explainer == "approx")
    # From the predictor's tables (exact) or flat trees (approx): XGBoost's numbers up to float32 rounding.
    assert (predictor._shap if explainer == "shap" else predictor._saabas) is not None
    np.testing.assert_allclose(outputs[:, 1:], full[:, :-1], rtol=1e-5, atol=2e-6)
    margin = outputs[:, 1:].sum(axis=1, dtype=np.float64) + full[:, -1]
    np.testing.assert_allclose(outputs[:, 0], 1 / (1 + np.exp(-margin)), rtol=1e-6)
    np.testing.assert_allclose(outputs[:, 0], booster.predict(matrix), rtol=1e-5, atol=3e-7)
    # One row, as a request sends it, the same.
    first = predictor.model_outputs(rows.head(1))
    np.testing.assert_allclose(first, outputs[:1], rtol=1e-6, atol=1e-7)


def test_other_objectives_predict_their_probability() -> None:
    """A model whose probability is not the sigmoid of the margin is asked for it (no shortcut)."""
    train = frame(1_000, seed=5)
    categories = {"profile_plan": PLANS}
    matrix = dmatrix(model_frame(train, FEATURES, categories), label=train["label"])
    params = {"objective": "binary:hinge", "max_depth": 3, "seed": 7, "nthread": 1}
    hinge = remember_categories(xgb.train(params, matrix, num_boost_round=10), categories)
    rows = train.drop(columns="label").head(50)
    outputs = Predictor(hinge, "1", top_reasons=3).model_outputs(rows)
    np.testing.assert_array_equal(outputs[:, 0], hinge.predict(dmatrix(model_frame(rows, FEATURES, categories))))
    assert set(outputs[:, 0].tolist()) <= {0.0, 1.0}  # hinge gives classes, which no sigmoid would


def test_reasons_are_the_largest_positive_contributions(booster: xgb.Booster) -> None:
    rows = frame(300, seed=3).drop(columns="label")
    predictor = Predictor(booster, "4", top_reasons=2)
    outputs = predictor.model_outputs(rows)
    scored = answers(predictor, rows, outputs, TIERS)
    assert len(scored) == len(rows)
    for i, answer in enumerate(scored):
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
    assert any(len(a["reasons"]) == 2 for a in scored) and any(a["risk_tier"] == "high" for a in scored)


def test_no_reasons_asked(booster: xgb.Booster) -> None:
    rows = frame(20, seed=4).drop(columns="label")
    assert all(a["reasons"] == [] for a in score(Predictor(booster, "1", top_reasons=0), rows, TIERS))


@pytest.mark.parametrize("explainer", ["shap", "approx"])
def test_contributions_add_up_to_the_score(booster: xgb.Booster, explainer: str) -> None:
    rows = frame(200, seed=5).drop(columns="label")
    predictor = Predictor(booster, "1", top_reasons=3, explainer=explainer)  # type: ignore[arg-type]
    outputs = predictor.model_outputs(rows)
    bias = booster.predict(predictor.matrix(rows), pred_contribs=True)[:, -1]
    margin = np.log(outputs[:, 0] / (1 - outputs[:, 0]))
    np.testing.assert_allclose(outputs[:, 1:].sum(axis=1) + bias, margin, atol=1e-3)


def test_approx_explainer_mostly_agrees_with_shap_on_the_top_reason(booster: xgb.Booster) -> None:
    rows = frame(500, seed=6).drop(columns="label")
    exact = score(Predictor(booster, "1", top_reasons=1), rows, TIERS)
    approx = score(Predictor(booster, "1", top_reasons=1, explainer="approx"), rows, TIERS)
    # Either explainer's contributions sum to the margin: the same probability up to float32 rounding.
    np.testing.assert_allclose(
        [a["churn_probability"] for a in exact], [a["churn_probability"] for a in approx], rtol=1e-5, atol=3e-7
    )
    top = [(e["reasons"][:1], a["reasons"][:1]) for e, a in zip(exact, approx, strict=True) if e["reasons"]]
    same = sum(e[0]["feature"] == a[0]["feature"] for e, a in top if a)
    assert same / len(top) > 0.8
    assert any(e != a for e, a in top)  # they are different methods


def test_calibration_applies_to_probabilities_and_tiers(booster: xgb.Booster) -> None:
    rows = frame(100, seed=7).drop(columns="label")
    predictor = Predictor(booster, "1", top_reasons=1)
    raw = predictor.probabilities(rows)
    predictor.calibration = {"method": "sigmoid", "slope": 1.0, "intercept": 3.0}
    calibrated = predictor.probabilities(rows)
    assert (calibrated > raw).all()
    scored = score(predictor, rows, TIERS)
    np.testing.assert_allclose([a["churn_probability"] for a in scored], calibrated, rtol=1e-5, atol=3e-7)
    assert all(math.isfinite(a["churn_probability"]) for a in scored)


def test_risk_tiers_of_many_match_one_at_a_time() -> None:
    proba = np.concatenate([np.random.default_rng(8).random(1_000), [0.0, 0.2, 0.5, 1.0, math.nan]])
    tiers = {"medium": 0.2, "low": 0.0, "high": 0.5}  # any order, as a YAML dump may give
    assert risk_tiers(proba, tiers).tolist() == [risk_tier(float(p), tiers) for p in proba]
    assert risk_tiers(np.array([0.05]), {"watch": 0.1, "high": 0.6}).tolist() == ["watch"]  # below every floor


def test_auto_explainer_is_exact_for_small_calls_and_approximate_for_big_ones(booster: xgb.Booster) -> None:
    rows = frame(30, seed=8).drop(columns="label")
    auto = Predictor(booster, "1", top_reasons=2, explainer="auto", exact_rows=10)
    exact = Predictor(booster, "1", top_reasons=2, explainer="shap")
    approx = Predictor(booster, "1", top_reasons=2, explainer="approx")
    small, big = rows.head(10), rows
    assert {a["reasons_method"] for a in score(auto, small, TIERS)} == {"shap"}
    assert score(auto, small, TIERS) == score(exact, small, TIERS)
    assert {a["reasons_method"] for a in score(auto, big, TIERS)} == {"approx"}
    assert score(auto, big, TIERS) == score(approx, big, TIERS)
    assert auto.reasons(big) == approx.reasons(big) and auto.reasons(big, method="shap") == exact.reasons(big)
    assert exact.method(10_000) == "shap" and approx.method(1) == "approx"


def _old_array(predictor: Predictor, rows: pd.DataFrame | dict[str, list[Any]]) -> np.ndarray:
    """The model's input as `Predictor.matrix` built it before vectorising: a Python step per category value."""
    numeric = [f for f in predictor.features if f not in predictor.categories]
    n = len(rows[FEATURES[0]])
    out = np.empty((n, len(FEATURES)), np.float32)
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame({f: rows[f] for f in numeric}, columns=numeric)
    try:
        numbers = frame[numeric].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        numbers = np.column_stack(
            [pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan) for c in numeric]
        )
    out[:, [FEATURES.index(f) for f in numeric]] = np.clip(numbers, -FLOAT32_MAX, FLOAT32_MAX)
    for feature, categories in predictor.categories.items():
        codes = {v: float(i) for i, v in enumerate(categories)}
        values = rows[feature]
        listed = values.tolist() if isinstance(values, pd.Series) else list(values)
        out[:, FEATURES.index(feature)] = [codes.get(v, math.nan) if isinstance(v, str) else math.nan for v in listed]
    return out


_ODD_PLANS: list[Any] = [
    "basic",
    "plus",
    "pro",
    "platinum",  # unknown
    "",
    " basic",
    "BASIC",
    None,
    np.nan,
    pd.NA,
    3,
    3.5,
    True,
    b"basic",  # bytes are no string
    np.str_("plus"),  # a str subclass is one
]


def _odd_rows(n: int, seed: int) -> pd.DataFrame:
    """Feature rows of every kind a caller might send: odd categories and numbers of many types."""
    rng = np.random.default_rng(seed)
    rows = frame(n, seed).drop(columns="label")
    rows["profile_plan"] = [_ODD_PLANS[k] for k in rng.integers(0, len(_ODD_PLANS), n)]
    rows["purchases_count_30d"] = rng.integers(0, 9, n)  # int64
    rows["spend"] = rows["spend"].astype(np.float32)
    rows.loc[rng.random(n) < 0.05, "days_since_last_activity"] = 1e300  # past float32
    rows.loc[rng.random(n) < 0.05, "days_since_last_activity"] = -np.inf
    return rows


def _plan_variants(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """`rows` with profile_plan as pandas holds it from different sources, and numbers of other dtypes."""
    text = rows["profile_plan"].map(lambda v: v if isinstance(v, str) else None)
    nullable = pd.array(rows["purchases_count_30d"].to_numpy(), dtype="Int64")
    nullable[::7] = pd.NA
    as_text = rows["purchases_count_30d"].astype(object)
    as_text[::5] = "7"
    as_text[1::5] = "many"
    return {
        "object": rows,
        "categorical": rows.assign(profile_plan=pd.Categorical(text, categories=["pro", "basic", "gold"])),
        "string": rows.assign(profile_plan=text.astype("string")),
        "all_missing": rows.assign(profile_plan=np.nan),
        "unhashable": rows.assign(profile_plan=[["basic"] if i % 9 == 0 else v for i, v in enumerate(text)]),
        "bool_and_nullable": rows.assign(purchases_count_30d=nullable, purchases_count_change=rows.index % 2 == 0),
        "numbers_as_text": rows.assign(purchases_count_30d=as_text),
        "extra_and_duplicate_columns": pd.concat([rows, rows[["spend"]].rename(columns={"spend": "x"})] * 1, axis=1)
        .assign(customer_id="c")
        .pipe(lambda f: pd.concat([f, f[["customer_id"]]], axis=1)),
        "no_rows": rows.iloc[:0],
    }


@pytest.mark.parametrize("seed", [11, 12])
def test_vectorised_input_matches_the_value_by_value_version(booster: xgb.Booster, seed: int) -> None:
    predictor = Predictor(booster, "1", top_reasons=3)
    for name, rows in _plan_variants(_odd_rows(700, seed)).items():
        expected = _old_array(predictor, rows)
        np.testing.assert_array_equal(predictor._array(rows), expected, err_msg=name)
        # The probabilities (inplace prediction from the array) are the DMatrix predictions, to the bit.
        old = xgb.DMatrix(expected, feature_names=FEATURES, feature_types=predictor._types, enable_categorical=True)
        np.testing.assert_array_equal(predictor.probabilities(rows), booster.predict(old).astype(float), err_msg=name)
        np.testing.assert_array_equal(predictor.model_outputs(rows, contributions=False)[:, 0], booster.predict(old))
    # Columns (the request path) still go value by value, as before.
    rows = _odd_rows(50, seed)
    columns = {f: rows[f].tolist() for f in FEATURES}
    np.testing.assert_array_equal(predictor._array(columns), _old_array(predictor, columns))


def test_inplace_probabilities_follow_the_categorical_splits(booster: xgb.Booster) -> None:
    rows = frame(400, seed=13).drop(columns="label")
    predictor = Predictor(booster, "1", top_reasons=0)
    assert any(t == "c" for t in booster.feature_types or [])
    moved = [predictor.probabilities(rows.assign(profile_plan=plan)) for plan in [*PLANS, None]]
    assert any(not np.array_equal(moved[0], other) for other in moved[1:])  # the plan matters to the model
    typed = dmatrix(model_frame(rows, FEATURES, {"profile_plan": PLANS}))
    np.testing.assert_array_equal(predictor.probabilities(rows), booster.predict(typed).astype(float))


def _old_reasons(predictor: Predictor, rows: pd.DataFrame, contribs: np.ndarray) -> list[list[dict[str, Any]]]:
    """`Predictor.reasons` as it was, row by row."""
    top = min(predictor.top_reasons, len(FEATURES))
    if top == 0 or len(rows) == 0:
        return [[] for _ in range(len(rows))]
    order = np.argsort(-contribs, axis=1, kind="stable")[:, :top]
    picked = np.take_along_axis(contribs, order, axis=1)
    out: list[list[dict[str, Any]]] = []
    for i, (where, amounts) in enumerate(zip(order.tolist(), picked.tolist(), strict=True)):
        row: list[dict[str, Any]] = []
        for j, amount in zip(where, amounts, strict=True):
            if amount <= 0:
                break
            raw = rows[FEATURES[j]].tolist()[i]
            value = None if raw is None or raw is pd.NA or (isinstance(raw, float) and math.isnan(raw)) else raw
            value = value if value is None or isinstance(value, str) else float(value)
            text = phrase(FEATURES[j], value)
            row.append({"feature": FEATURES[j], "value": value, "contribution": float(amount), "phrase": text})
        out.append(row)
    return out


@pytest.mark.parametrize("top", [0, 1, 3, 9])
def test_reasons_match_the_row_by_row_version(booster: xgb.Booster, top: int) -> None:
    rng = np.random.default_rng(14 + top)
    rows = _odd_rows(400, seed=15)
    rows["profile_plan"] = rows["profile_plan"].map(lambda v: None if isinstance(v, bytes) else v)  # no reason value
    # Zero and minus zero phrase differently ("0 days", "-0 days"); values repeat (phrases are reused).
    rows["days_since_last_activity"] = rng.choice([0.0, -0.0, 3.0, 45.0, np.nan], len(rows))
    rows["spend"] = rng.choice([0.0, -0.0, 12.5], len(rows))
    predictor = Predictor(booster, "1", top_reasons=top)
    computed = predictor.model_outputs(rows)[:, 1:]
    crafted = rng.choice([-1.0, -0.0, 0.0, 0.25, 0.5, 2.0, np.nan], computed.shape).astype(np.float32)
    for contribs in (computed, crafted, np.zeros_like(computed)):
        # repr: NaN contributions compare equal, and 0.0 and -0.0 differ
        assert repr(predictor.reasons(rows, contribs)) == repr(_old_reasons(predictor, rows, contribs))
    assert predictor.reasons(rows) == _old_reasons(predictor, rows, computed)
    assert predictor.reasons(rows.iloc[:0], computed[:0]) == []


def test_a_few_rows_score_on_one_thread_as_on_all(booster: xgb.Booster) -> None:
    # XGBoost's own calls (approximate contributions, probabilities; the predictor's tables and flat
    # trees are switched off here).
    rows = frame(40, seed=9).drop(columns="label")
    predictor = Predictor(booster, "1", top_reasons=3, explainer="approx")
    predictor._saabas = None  # XGBoost's own approximation
    few = rows.head(ONE_THREAD_ROWS)
    assert predictor._booster(predictor.matrix(few)) is not predictor.booster  # the one-thread copy
    assert predictor._booster(predictor.matrix(rows)) is predictor.booster
    # The same numbers, bit for bit, as the multi-threaded booster gives the same rows.
    all_threads = Predictor(booster, "1", top_reasons=3, explainer="approx")
    all_threads._one_thread = booster
    all_threads._saabas = None
    for contributions in (True, False):
        np.testing.assert_array_equal(
            predictor.model_outputs(few, contributions), all_threads.model_outputs(few, contributions)
        )
    matrix = predictor.matrix(few)
    np.testing.assert_array_equal(
        predictor.model_outputs(few)[:, 1:],
        booster.predict(matrix, pred_contribs=True, approx_contribs=True)[:, :-1],
    )


def test_a_model_without_tables_says_so(caplog: pytest.LogCaptureFixture) -> None:
    train = frame(500, seed=11)
    categories = {"profile_plan": PLANS}
    matrix = dmatrix(model_frame(train, FEATURES, categories), label=train["label"])
    params = {"objective": "binary:logistic", "booster": "dart", "max_depth": 3, "seed": 7, "nthread": 1}
    dart = remember_categories(xgb.train(params, matrix, num_boost_round=5), categories)
    with caplog.at_level("WARNING", logger="model.predictor"):
        predictor = Predictor(dart, "7", top_reasons=3)
    assert predictor._shap is None
    assert "model v7: exact SHAP uses XGBoost's pred_contribs" in caplog.text
    rows = train.drop(columns="label").head(5)
    np.testing.assert_array_equal(
        predictor.model_outputs(rows, method="shap")[:, 1:],
        dart.predict(predictor.matrix(rows), pred_contribs=True)[:, :-1],
    )


def test_exact_reasons_without_tables_are_xgboosts(booster: xgb.Booster) -> None:
    """A model the tables do not cover (or a predictor made to approximate) gets exact SHAP from XGBoost."""
    rows = frame(30, seed=10).drop(columns="label")
    with_tables = Predictor(booster, "1", top_reasons=3, explainer="shap")
    without = Predictor(booster, "1", top_reasons=3, explainer="approx")
    assert with_tables._shap is not None and without._shap is None
    exact = without.model_outputs(rows, method="shap")
    np.testing.assert_array_equal(exact[:, 1:], booster.predict(without.matrix(rows), pred_contribs=True)[:, :-1])
    np.testing.assert_allclose(with_tables.model_outputs(rows, method="shap"), exact, rtol=1e-5, atol=2e-6)
    assert [a["reasons"] for a in answers(without, rows, exact, TIERS, "shap")] == [
        [{**r, "contribution": pytest.approx(r["contribution"], rel=1e-5, abs=2e-6)} for r in a["reasons"]]
        for a in score(with_tables, rows, TIERS)
    ]
