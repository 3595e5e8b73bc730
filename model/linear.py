"""The linear part of a blended model: a logistic regression whose margin is mixed with the trees'.

Training may blend the XGBoost model with the logistic regression it is compared against: the
model's margin is `w * trees + (1 - w) * linear`, with `w` chosen on validation data. This module
holds the linear part in plain numbers (no scikit-learn at scoring time) and computes its margin
and its exact per-feature contributions, so reasons stay exact: for a linear model on independent
features a feature's SHAP value is `coef * (x - E[x])` (on the scaled value), and for a one-hot
encoded category it is the category's coefficient minus the average coefficient of the training
rows.

It reads the model's input as the predictor builds it: one column per feature in the booster's
order, numbers as they are and categories as their code in the booster's training category list
(NaN when missing or unknown, both of which score as the training rows' missing category).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MISSING = "__missing__"
"""The category a missing (or unknown) value of a categorical feature counts as."""


@dataclass(frozen=True)
class NumericTerm:
    """One numeric feature of the logistic regression: median imputation, scaling, coefficient."""

    median: float
    mean: float
    scale: float
    coef: float


@dataclass(frozen=True)
class LinearPart:
    """A logistic regression's terms and the share of the blended margin that is linear.

    Attributes:
        tree_weight: `w`: the trees' share of the margin; the linear part has `1 - w`.
        intercept: The regression's intercept.
        numeric: Numeric feature -> its term.
        categorical: Categorical feature -> value -> coefficient (`MISSING` for missing values,
            when the training rows had any).
        shares: Categorical feature -> value -> share of the training rows with it.
    """

    tree_weight: float
    intercept: float
    numeric: dict[str, NumericTerm]
    categorical: dict[str, dict[str, float]]
    shares: dict[str, dict[str, float]] = field(default_factory=dict)

    def expected(self) -> float:
        """The linear margin of an average training row: the bias of the contributions."""
        centre = sum(
            sum(self.shares.get(f, {}).get(v, 0.0) * c for v, c in coefs.items())
            for f, coefs in self.categorical.items()
        )
        return self.intercept + centre

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (`from_dict` reads it back)."""
        return {
            "tree_weight": self.tree_weight,
            "intercept": self.intercept,
            "numeric": {f: [t.median, t.mean, t.scale, t.coef] for f, t in self.numeric.items()},
            "categorical": self.categorical,
            "shares": self.shares,
        }

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> LinearPart:
        """The part `to_dict` described."""
        return cls(
            tree_weight=float(spec["tree_weight"]),
            intercept=float(spec["intercept"]),
            numeric={f: NumericTerm(*map(float, v)) for f, v in spec["numeric"].items()},
            categorical={f: {str(k): float(c) for k, c in v.items()} for f, v in spec["categorical"].items()},
            shares={f: {str(k): float(s) for k, s in v.items()} for f, v in spec.get("shares", {}).items()},
        )


class CompiledLinear:
    """A `LinearPart` laid out for the model's input array (the booster's features and category codes)."""

    def __init__(self, part: LinearPart, features: Sequence[str], categories: Mapping[str, Sequence[str]]) -> None:
        """Lay out `part` for arrays with one column per feature of `features`.

        Args:
            part: The linear terms.
            features: The booster's features, in its order.
            categories: Categorical feature -> the booster's training values (a code is a position here).
        """
        self.part = part
        self.tree_weight = part.tree_weight
        self.width = len(features)
        self.numeric_at = np.array([j for j, f in enumerate(features) if f in part.numeric], dtype=int)
        terms = [part.numeric[features[j]] for j in self.numeric_at]
        self.median = np.array([t.median for t in terms])
        self.mean = np.array([t.mean for t in terms])
        self.slope = np.array([t.coef / t.scale if t.scale else 0.0 for t in terms])
        self.tables: list[tuple[int, np.ndarray]] = []
        for j, feature in enumerate(features):
            coefs = part.categorical.get(feature)
            if coefs is None:
                continue
            missing = coefs.get(MISSING, 0.0)
            by_code = [coefs.get(str(v), missing) for v in categories.get(feature, ())] + [missing]
            centre = sum(part.shares.get(feature, {}).get(v, 0.0) * c for v, c in coefs.items())
            self.tables.append((j, np.asarray(by_code, dtype=np.float64) - centre))
        self.bias = part.expected()

    def contributions(self, array: np.ndarray) -> np.ndarray:
        """Per row, each feature's contribution to the linear margin (zero for features it does not use).

        Args:
            array: Rows of the model's input: numbers, and category codes (NaN when missing).

        Returns:
            float64, shape (rows, features); the margin is `bias` plus each row's sum.
        """
        out = np.zeros((len(array), self.width), dtype=np.float64)
        if len(self.numeric_at):
            values = array[:, self.numeric_at].astype(np.float64)
            values = np.where(np.isnan(values), self.median, values)
            out[:, self.numeric_at] = (values - self.mean) * self.slope
        for j, table in self.tables:
            codes = array[:, j]
            index = np.where(np.isnan(codes), len(table) - 1, codes).astype(np.int64)
            out[:, j] = table[index]
        return out

    def margin(self, array: np.ndarray) -> np.ndarray:
        """The linear margin of each row."""
        return self.bias + self.contributions(array).sum(axis=1)


def blend_margin(tree_margin: np.ndarray, linear_margin: np.ndarray, tree_weight: float) -> np.ndarray:
    """The blended model's margin."""
    return tree_weight * np.asarray(tree_margin, dtype=np.float64) + (1.0 - tree_weight) * linear_margin


def sigmoid(margin: np.ndarray) -> np.ndarray:
    """Probabilities of margins."""
    return 1.0 / (1.0 + np.exp(-np.asarray(margin, dtype=np.float64)))
