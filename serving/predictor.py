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
"""The largest value XGBoost accepts in a feature matrix."""


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
        frame = model_frame(rows, self.features, self.categories)
        # XGBoost refuses finite values beyond float32 (1e300): clip them, which for trees is the
        # same as any value past every split, instead of failing the request with a 500.
        numbers = [c for c in frame.columns if not isinstance(frame[c].dtype, pd.CategoricalDtype)]
        frame[numbers] = frame[numbers].clip(-FLOAT32_MAX, FLOAT32_MAX)
        matrix = dmatrix(frame)
        proba = calibrate(self.calibration, self.booster.predict(matrix))
        contribs = self.booster.predict(matrix, pred_contribs=True)[:, :-1]  # last column is the bias
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
