"""The plain predictor behind the service: probabilities, risk tiers and top reasons.

It knows nothing of HTTP or BentoML, so tests build it from a small real booster.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from features.matrix import booster_categories, calibrate, dmatrix, model_frame

FLOAT32_MAX = float(np.finfo(np.float32).max)
"""Largest finite value XGBoost can take (it reads features as float32)."""


def risk_tier(probability: float, tiers: Mapping[str, float]) -> str:
    """The tier whose lower bound is the highest one not above `probability`."""
    for name, floor in sorted(tiers.items(), key=lambda kv: kv[1], reverse=True):
        if probability >= floor:
            return name
    return min(tiers.items(), key=lambda kv: kv[1])[0]


def phrase(feature: str, value: float | str | None) -> str:
    """A readable phrase for a feature value, e.g. 'purchases down 60% vs previous 30 days'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{feature.replace('_', ' ')} unknown"
    if isinstance(value, str):
        return f"{feature.removeprefix('profile_').replace('_', ' ')} is {value}"
    if feature.endswith("_change"):
        theme = feature.removesuffix("_change").replace("purchases_", "purchase ").replace("_", " ")
        direction = "down" if value < 0 else "up"
        return f"{theme} {direction} {abs(value):.0%} vs previous 30 days"
    if feature.endswith("days_since_last") or feature.endswith("days_since_last_activity"):
        what = "purchase" if feature.startswith("purchases") else "activity"
        return f"{value:.0f} days since last {what}"
    return f"{feature.replace('_', ' ')} = {value:g}"


@dataclass(frozen=True)
class Reason:
    """One feature's contribution to a customer's churn score."""

    feature: str
    value: float | str | None
    contribution: float
    phrase: str


class Predictor:
    """Scores feature rows with a booster and explains each score by SHAP contributions."""

    def __init__(self, booster: xgb.Booster, version: str, tiers: Mapping[str, float], top_reasons: int) -> None:
        """Wrap a trained booster.

        Args:
            booster: The model; its feature names define the expected columns.
            version: The registry version, echoed in every answer.
            tiers: Risk tier -> lowest probability in it.
            top_reasons: How many reasons to give per customer.
        """
        if not booster.feature_names:
            raise ValueError("the model has no feature names: train it on a DataFrame")
        self.booster = booster
        self.version = version
        self.features: list[str] = list(booster.feature_names)
        self.categories = booster_categories(booster)
        self.reference: pd.DataFrame | None = None
        """A sample of the training features (quantile cut-offs of CRM layers come from it)."""
        self.calibration: dict[str, Any] | None = None
        """The probability calibration training chose (`features.matrix.calibrate`), if any."""
        self.info: dict[str, Any] = {"version": version}
        """Registry facts for GET /model: name, version, run, trained_at, metrics, feature_service."""
        self.tiers = dict(tiers)
        self.top_reasons = top_reasons

    def score(self, rows: pd.DataFrame) -> list[dict[str, Any]]:
        """Score feature rows.

        Args:
            rows: One row per customer with (at least) the model's features; missing values allowed.

        Returns:
            Per row: churn_probability, risk_tier, reasons (feature, value, contribution, phrase), model_version.
        """
        return self.answers(rows, self.model_outputs(rows))

    def model_outputs(self, rows: pd.DataFrame) -> np.ndarray:
        """The model step alone, the part the service batches across requests (see `model_outputs`)."""
        return model_outputs(self.booster, self.features, self.categories, rows)

    def answers(self, rows: pd.DataFrame, outputs: np.ndarray) -> list[dict[str, Any]]:
        """Turn `model_outputs(rows)` into answers: calibrated probability, risk tier, reasons, version.

        Args:
            rows: The feature rows that were scored, in the same order.
            outputs: `model_outputs` of `rows` (extra columns past the model's features are ignored).
        """
        proba = calibrate(self.calibration, outputs[:, 0])
        contribs = outputs[:, 1 : 1 + len(self.features)]
        raw = rows[self.features]
        answers = []
        for i, p in enumerate(proba):
            answers.append(
                {
                    "churn_probability": float(p),
                    "risk_tier": risk_tier(float(p), self.tiers),
                    "reasons": [r.__dict__ for r in self._reasons(raw.iloc[i].tolist(), contribs[i])],
                    "model_version": self.version,
                }
            )
        return answers

    def _reasons(self, values: list[Any], contribs: np.ndarray) -> Sequence[Reason]:
        order = np.argsort(-contribs)[: self.top_reasons]
        reasons = []
        for j in order:
            if contribs[j] <= 0:
                break
            value = _plain(values[j])
            reasons.append(Reason(self.features[j], value, float(contribs[j]), phrase(self.features[j], value)))
        return reasons


def _plain(value: Any) -> float | str | None:  # noqa: ANN401
    """A feature value as JSON wants it: a float, a string (attributes) or None when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, str):
        return value
    return float(value)


def model_outputs(
    booster: xgb.Booster, features: Sequence[str], categories: Mapping[str, Sequence[str]], rows: pd.DataFrame
) -> np.ndarray:
    """The booster's raw (uncalibrated) probabilities and SHAP contributions for feature rows.

    Args:
        booster: The model.
        features: Its features, in its order.
        categories: Its categorical features and their training values.
        rows: Feature rows (extra columns are ignored; values as callers send them).

    Returns:
        An array of shape (rows, 1 + features), in XGBoost's float32: column 0 the probability,
        then one contribution per feature (the bias column of `pred_contribs` is dropped).
    """
    frame = model_frame(rows, features, categories)
    # XGBoost reads float32: a finite float64 past its range would become inf and make DMatrix
    # raise. Clipping to the float32 extremes routes such a value down every tree exactly as any
    # value above (below) every split threshold, which is what a huge value means to the model.
    numeric = [c for c in frame.columns if not isinstance(frame[c].dtype, pd.CategoricalDtype)]
    frame[numeric] = frame[numeric].clip(-FLOAT32_MAX, FLOAT32_MAX)
    matrix = dmatrix(frame)
    proba = booster.predict(matrix)
    contribs = booster.predict(matrix, pred_contribs=True)[:, :-1]  # last column is the bias
    return np.column_stack([proba, contribs])
