"""The final model of a training run: the trees with the tuned parameters, the blend, the calibration.

Out of time, the trees train on the training dates with early stopping on the validation dates,
and the validation rows are the held-out rows every later choice is made on. Cross-validated (one
observation date), the trees train on every row for the folds' mean number of rounds, and the
out-of-fold predictions of the same parameters are the held-out rows. On those rows: whether to
blend the trees with the logistic regression and with what weight (`training.blend`), then
whether to calibrate and how (`model.calibration`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.pipeline import Pipeline

from core import names
from core.config_sections import TrainingSettings
from model.calibration import CalibrationDecision, calibrate, calibrator_spec, fit_calibrator, should_calibrate
from model.linear import LinearPart, blend_margin, sigmoid
from model.matrix import dmatrix
from training.baselines import baseline_input, logistic_baseline, model_columns
from training.blend import choose_tree_weight, linear_part, roc_auc_of_counts
from training.dataset import Split
from training.tune import Fitter, cross_fit, fit, fit_all, score


@dataclass(frozen=True)
class FinalModel:
    """What the run registers, and the held-out evidence behind each choice."""

    booster: xgb.Booster
    regression: Pipeline
    """The logistic regression fitted on the training rows (the baseline, and the blend's linear part)."""
    linear: LinearPart | None
    """The blended linear part; None: the trees alone."""
    calibration: dict[str, object] | None
    calibration_decision: CalibrationDecision
    holdout_proba: np.ndarray
    """The final model's probabilities of the held-out rows (validation, or out of fold)."""
    holdout_y: np.ndarray
    blend_scores: dict[float, float]
    """Held-out objective metric of each candidate weight of the trees."""
    cv_scores: tuple[float, ...] = ()
    """Cross-validated: the model's score on each fold's held-out rows (out-of-fold, blended as chosen)."""
    cv_tree_scores: tuple[float, ...] = ()
    """Cross-validated: the trees' score alone on each fold."""
    cv_baseline_scores: tuple[float, ...] = ()
    """Cross-validated: the logistic regression's score on the same folds."""
    regression_rows: int = 0
    """The training rows the logistic regression was fitted on (`training.regression_rows` caps them)."""

    @property
    def tree_weight(self) -> float:
        """The trees' share of the blended margin (1.0: no blend)."""
        return self.linear.tree_weight if self.linear is not None else 1.0

    def metrics(self, metric: str) -> dict[str, float]:
        """Flat metrics for MLflow: held-out score, blend, cross-validation and calibration."""
        out = {
            f"holdout_{metric}": score(metric, self.holdout_y, self.holdout_proba),
            "blend_tree_weight": self.tree_weight,
            **{f"blend_{w:.2f}_{metric}": v for w, v in self.blend_scores.items()},
            **self.calibration_decision.metrics(),
        }
        if self.cv_scores:
            out[f"cv_{metric}"] = float(np.mean(self.cv_scores))
            out[f"cv_{metric}_std"] = float(np.std(self.cv_scores))
            out.update({f"cv_fold_{i}_{metric}": v for i, v in enumerate(self.cv_scores)})
            out[f"cv_trees_{metric}"] = float(np.mean(self.cv_tree_scores))
            out[f"baseline_logistic_regression_cv_{metric}"] = float(np.mean(self.cv_baseline_scores))
            out[f"baseline_logistic_regression_cv_{metric}_std"] = float(np.std(self.cv_baseline_scores))
        return out


@dataclass(frozen=True)
class Regression:
    """The logistic regression of an out-of-time run and the training rows it was fitted on."""

    model: Pipeline
    rows: pd.DataFrame
    """The training rows it was fitted on (`training.regression_rows` caps them)."""
    valid_margin: np.ndarray
    """Its margins of the split's validation rows (the blend's linear part)."""


def fit_regression(split: Split, cfg: TrainingSettings) -> Regression:
    """The logistic regression of an out-of-time split, fitted on its training rows, or a seeded
    sample of `cfg.regression_rows` of them, and its margins of the validation rows.

    It needs no trees, so the training job fits it while the trees train (`training.pipeline`).
    """
    rows = _capped(split.train, cfg.regression_rows, cfg.seed)
    features = list(split.features)
    model = logistic_baseline(rows[features], rows[names.LABEL])
    return Regression(model, rows, _margins(split, model, rows, split.valid))


def _margins(split: Split, model: Pipeline, fit_rows: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """The margins of `rows` of a logistic regression fitted on `fit_rows`."""
    features = list(split.features)
    numeric, categorical = model_columns(fit_rows[features])
    return np.asarray(model.decision_function(baseline_input(rows[features], numeric, categorical)))


def _regression_margins(split: Split, rows: pd.DataFrame, fit_rows: pd.DataFrame) -> tuple[Pipeline, np.ndarray]:
    """A logistic regression fitted on `fit_rows` and its margins of `rows`."""
    features = list(split.features)
    model = logistic_baseline(fit_rows[features], fit_rows[names.LABEL])
    return model, _margins(split, model, fit_rows, rows)


def final_model(
    params: dict[str, Any],
    split: Split,
    cfg: TrainingSettings,
    fitter: Fitter | None = None,
    booster: xgb.Booster | None = None,
    regression: Regression | None = None,
) -> FinalModel:
    """Train the run's model with the tuned `params`, blend and calibrate it on the held-out rows.

    Args:
        params: The best trial's XGBoost parameters.
        split: The training set's split.
        cfg: The training settings (rounds, seed, metric, blend weights).
        fitter: Trains the trees of an out-of-time split elsewhere (a Dask cluster); None: `fit` here.
        booster: The trees of an out-of-time split already trained with `params` (the best trial's,
            the same trees `fit` would train again); None: train them.
        regression: The logistic regression of an out-of-time split (`fit_regression`), already
            fitted; None: fit it here. A cross-validated split fits one per fold.
    """
    rounds: dict[str, Any] = {
        "max_rounds": cfg.max_rounds,
        "early_stopping_rounds": cfg.early_stopping_rounds,
        "seed": cfg.seed,
    }
    cv_scores: tuple[float, ...] = ()
    cv_trees: tuple[float, ...] = ()
    cv_baseline: list[float] = []
    regression_fit = split.train
    if split.cross_validated:
        crossed = cross_fit(params, split, cfg.metric, **rounds)
        booster = fit_all(params, split, crossed.mean_rounds, cfg.seed)
        holdout = split.train
        tree_margin = crossed.margins
        linear_margin = np.empty(len(holdout), dtype=np.float64)
        for fit_rows, held in split.folds:  # the regression's out-of-fold margins, on the same folds
            _, linear_margin[held] = _regression_margins(split, holdout.iloc[held], holdout.iloc[fit_rows])
            y_held = holdout[names.LABEL].to_numpy()[held]
            cv_baseline.append(score(cfg.metric, y_held, sigmoid(linear_margin[held])))
        logistic, _ = _regression_margins(split, holdout.iloc[:1], holdout)
        cv_trees = crossed.scores
    else:
        booster = booster if booster is not None else (fitter or fit)(params, split, **rounds)
        holdout = split.valid
        tree_margin = booster.predict(dmatrix(split.xy("valid")[0]), output_margin=True)
        fitted = regression if regression is not None else fit_regression(split, cfg)
        regression_fit, logistic, linear_margin = fitted.rows, fitted.model, fitted.valid_margin
    y = holdout[names.LABEL].to_numpy()
    weight, blend_scores = choose_tree_weight(
        y,
        tree_margin,
        linear_margin,
        cfg.blend.tree_weights,
        lambda t, p: _higher_is_better(cfg.metric, t, p),
        seed=cfg.seed,
        counted=roc_auc_of_counts if cfg.metric == "roc_auc" else None,
    )
    linear = linear_part(logistic, regression_fit[list(split.features)], weight) if weight < 1.0 else None
    raw = sigmoid(blend_margin(tree_margin, linear_margin, weight))
    if split.cross_validated:  # the chosen model's own score per fold, out of fold
        cv_scores = tuple(score(cfg.metric, y[held], raw[held]) for _, held in split.folds)
    decision = should_calibrate(raw, y, seed=cfg.seed)
    spec = None
    if decision.calibrate and decision.method is not None:
        spec = calibrator_spec(fit_calibrator(raw, y, decision.method))
    return FinalModel(
        booster=booster,
        regression=logistic,
        linear=linear,
        calibration=spec,
        calibration_decision=decision,
        holdout_proba=calibrate(spec, raw),
        holdout_y=y,
        blend_scores={w: _signed(cfg.metric, v) for w, v in blend_scores.items()},
        cv_scores=cv_scores,
        cv_tree_scores=cv_trees,
        cv_baseline_scores=tuple(cv_baseline),
        regression_rows=len(regression_fit),
    )


def _capped(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """`frame`, or a seeded sample of `rows` of its rows when it has more."""
    return frame if len(frame) <= rows else frame.sample(n=rows, random_state=seed)


def _higher_is_better(metric: str, y: np.ndarray, proba: np.ndarray) -> float:
    """The objective metric, negated where lower is better, so the largest wins."""
    return _signed(metric, score(metric, y, proba))


def _signed(metric: str, value: float) -> float:
    return -value if metric == "log_loss" else value
