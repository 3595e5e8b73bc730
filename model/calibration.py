"""Probability calibration: the one calibrator that training fits and everything that scores applies.

Training decides by cross-validation whether calibrating helps (`should_calibrate`), fits the map
on validation scores (`fit_calibrator`) and stores it with the model as a JSON spec
(`calibrator_spec`); the model bundle, and through it serving, batch scoring, monitoring and the
gate, applies the spec with `calibrate`, which rebuilds the same calibrator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss
from sklearn.model_selection import StratifiedKFold

LOG_LOSS_EPS = 1e-15
"""Probabilities are clipped to [eps, 1 - eps] for the log loss (a 0 for a churner is not infinite)."""

LOGIT_EPS = 1e-7
"""Probabilities are clipped to [eps, 1 - eps] before the logit of the sigmoid calibrator."""

RANK_SLOPE = 1e-6
"""The isotonic map's added slope: keeps the model's ranking of customers, moves no probability by more."""

CalibrationMethod = Literal["isotonic", "sigmoid"]


def as_labels(y_true: npt.ArrayLike) -> np.ndarray:
    """`y_true` as 0/1 int8, or a ValueError saying what is wrong with it."""
    y = np.asarray(y_true)
    if y.ndim != 1 or y.size == 0:
        raise ValueError("labels must be a non-empty 1-D array")
    if pd.isna(y).any():
        raise ValueError("labels contain missing values")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0/1 (or booleans)")
    return y.astype(np.int8)


def as_probabilities(proba: npt.ArrayLike, size: int) -> np.ndarray:
    """`proba` as float64 probabilities, one per label, or a ValueError saying what is wrong with them."""
    p = np.asarray(proba, dtype=np.float64)
    if p.shape != (size,):
        raise ValueError(f"scores must be a 1-D array of {size} values like the labels, got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("scores contain NaN or infinite values")
    if p.min() < 0.0 or p.max() > 1.0:
        raise ValueError("scores must be probabilities in [0, 1]")
    return p


def _logit(proba: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(proba, dtype=np.float64), LOGIT_EPS, 1 - LOGIT_EPS)
    return np.log(p / (1 - p))


@dataclass(frozen=True, eq=False)
class IsotonicCalibrator:
    """A monotone step-wise linear map of scores to probabilities (isotonic regression's knots).

    Outputs are clipped to [floor, 1 - floor] with floor = 1 / (n + 2) for n fitting rows, so a
    bin without churners does not promise a probability of exactly 0 (an infinite log loss).

    Isotonic regression is flat within each of its blocks, which would give every customer of a
    block the same probability and throw away the model's ranking inside it (a lower ROC AUC after
    calibration than before). A slope of `RANK_SLOPE` keeps the ranking: the map is strictly
    increasing (the floor included), and no probability moves by more than `RANK_SLOPE`.
    """

    x: np.ndarray
    y: np.ndarray
    floor: float
    method: CalibrationMethod = "isotonic"

    def transform(self, proba: npt.ArrayLike) -> np.ndarray:
        """Calibrated probabilities of scores `proba` (outside the fitted range: the end values)."""
        p = np.asarray(proba, dtype=np.float64)
        return np.clip(np.interp(p, self.x, self.y), self.floor, 1 - self.floor) + RANK_SLOPE * (p - 0.5)


@dataclass(frozen=True)
class SigmoidCalibrator:
    """Platt scaling on the logit: p' = 1 / (1 + exp(-(slope * logit(p) + intercept)))."""

    slope: float
    intercept: float
    method: CalibrationMethod = "sigmoid"

    def transform(self, proba: npt.ArrayLike) -> np.ndarray:
        """Calibrated probabilities of scores `proba`."""
        z = self.slope * _logit(np.asarray(proba)) + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-z)))


Calibrator = IsotonicCalibrator | SigmoidCalibrator


def fit_calibrator(
    proba_valid: npt.ArrayLike, y_valid: npt.ArrayLike, method: CalibrationMethod = "isotonic"
) -> Calibrator:
    """Fit a map from the model's scores to calibrated probabilities on validation data.

    Args:
        proba_valid: The model's scores of the validation rows.
        y_valid: Their labels.
        method: "isotonic" (sklearn `IsotonicRegression`, flexible, wants a few thousand rows) or
            "sigmoid" (an unpenalised `LogisticRegression` on logit(score), two parameters).

    Returns:
        A small picklable object (plain floats and arrays) with `.transform(proba)`.
    """
    y = as_labels(y_valid)
    p = as_probabilities(proba_valid, y.size)
    if not 0 < y.sum() < y.size:
        raise ValueError("calibration needs both churners and non-churners")
    if method == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(p, y)
        return IsotonicCalibrator(
            x=np.asarray(iso.X_thresholds_, dtype=np.float64),
            y=np.asarray(iso.y_thresholds_, dtype=np.float64),
            floor=1.0 / (y.size + 2),
        )
    if method == "sigmoid":
        lr = LogisticRegression(C=np.inf, max_iter=1000).fit(_logit(p).reshape(-1, 1), y)
        return SigmoidCalibrator(slope=float(lr.coef_[0, 0]), intercept=float(lr.intercept_[0]))
    raise ValueError(f"unknown calibration method '{method}' (choose isotonic or sigmoid)")


@dataclass(frozen=True)
class CalibrationDecision:
    """Whether calibrating on validation data helps, from out-of-fold predictions (`should_calibrate`)."""

    calibrate: bool
    method: CalibrationMethod | None
    """The method with the lowest out-of-fold log loss (None when none could be tried)."""
    log_loss_raw: float
    log_loss_calibrated: float
    brier_raw: float
    brier_calibrated: float
    reason: str

    def metrics(self) -> dict[str, float]:
        """Flat metrics for MLflow."""
        return {
            "calibration_applied": float(self.calibrate),
            "calibration_log_loss_raw": self.log_loss_raw,
            "calibration_log_loss_cv": self.log_loss_calibrated,
            "calibration_brier_raw": self.brier_raw,
            "calibration_brier_cv": self.brier_calibrated,
        }


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    return float(log_loss(y, np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS), labels=[0, 1]))


def should_calibrate(
    proba_valid: npt.ArrayLike,
    y_valid: npt.ArrayLike,
    *,
    methods: Sequence[CalibrationMethod] = ("isotonic", "sigmoid"),
    n_splits: int = 5,
    min_improvement: float = 0.005,
    seed: int = 0,
) -> CalibrationDecision:
    """Decide whether to calibrate, and how, by cross-validation on the validation data.

    Each method is fitted on k-1 folds and applied to the held-out fold (stratified, shuffled
    with `seed`), giving out-of-fold calibrated probabilities for every validation row; they are
    compared with the raw scores of the same rows. Calibrate when the best method (lowest log
    loss) lowers the log loss by at least `min_improvement` (relative) and does not raise the
    Brier score. Then fit the final calibrator on all the validation data (`fit_calibrator`).

    Args:
        proba_valid: The model's scores of the validation rows.
        y_valid: Their labels.
        methods: Calibration methods to try.
        n_splits: Cross-validation folds; with fewer churners (or non-churners) than folds the
            answer is no.
        min_improvement: Relative log-loss reduction required (0.005: 0.5%).
        seed: Shuffles the folds.

    Returns:
        The decision, with the raw and out-of-fold calibrated log loss and Brier score.
    """
    y = as_labels(y_valid)
    p = as_probabilities(proba_valid, y.size)
    raw_loss, raw_brier = _log_loss(y, p), float(brier_score_loss(y, p, pos_label=1))
    positives = int(y.sum())
    if min(positives, y.size - positives) < n_splits or not methods:
        return CalibrationDecision(
            False,
            None,
            raw_loss,
            math.nan,
            raw_brier,
            math.nan,
            f"too few churners or non-churners for {n_splits} folds",
        )
    folds = list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(p.reshape(-1, 1), y))
    scores: dict[CalibrationMethod, tuple[float, float]] = {}
    for method in methods:
        out_of_fold = np.empty_like(p)
        for fit_rows, held_out in folds:
            out_of_fold[held_out] = fit_calibrator(p[fit_rows], y[fit_rows], method).transform(p[held_out])
        scores[method] = (_log_loss(y, out_of_fold), float(brier_score_loss(y, out_of_fold, pos_label=1)))
    method = min(scores, key=lambda m: scores[m][0])
    loss, brier = scores[method]
    helps = loss <= raw_loss * (1 - min_improvement) and brier <= raw_brier
    reason = (
        f"{method} calibration: out-of-fold log loss {loss:.4f} vs raw {raw_loss:.4f}, "
        f"Brier {brier:.4f} vs {raw_brier:.4f} ({'calibrate' if helps else 'not worth it'})"
    )
    return CalibrationDecision(helps, method, raw_loss, loss, raw_brier, brier, reason)


def calibrator_spec(calibrator: Calibrator) -> dict[str, object]:
    """A JSON-able description of a calibrator, as training logs it and `calibrate` applies it."""
    if isinstance(calibrator, IsotonicCalibrator):
        return {"method": "isotonic", "x": calibrator.x.tolist(), "y": calibrator.y.tolist(), "floor": calibrator.floor}
    return {"method": "sigmoid", "slope": calibrator.slope, "intercept": calibrator.intercept}


def calibrator_of(spec: Mapping[str, object]) -> Calibrator:
    """The calibrator a `calibrator_spec` describes."""
    method = spec.get("method")
    if method == "isotonic":
        return IsotonicCalibrator(
            x=np.asarray(spec["x"], dtype=np.float64),
            y=np.asarray(spec["y"], dtype=np.float64),
            floor=float(spec["floor"]),  # type: ignore[arg-type]
        )
    if method == "sigmoid":
        return SigmoidCalibrator(slope=float(spec["slope"]), intercept=float(spec["intercept"]))  # type: ignore[arg-type]
    raise ValueError(f"unknown calibration method {method!r}")


def calibrate(spec: Mapping[str, object] | None, proba: npt.ArrayLike) -> np.ndarray:
    """Apply a calibration saved by training (`calibrator_spec`) to raw probabilities.

    Args:
        spec: {"method": "isotonic", "x": [...], "y": [...], "floor": f} or
            {"method": "sigmoid", "slope": a, "intercept": b}; None leaves `proba` as it is.
        proba: The booster's probabilities.
    """
    if not spec:
        return np.asarray(proba, dtype=float)
    return calibrator_of(spec).transform(proba)
