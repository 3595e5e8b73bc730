"""Optuna search over XGBoost hyper-parameters, every trial a nested MLflow run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import optuna
import pandas as pd
import xgboost as xgb
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from features.matrix import dmatrix
from features.matrix import predict as predict_matrix
from training.dataset import Split

MAXIMISE = {"roc_auc": True, "pr_auc": True, "log_loss": False}


def score(metric: str, y_true: np.ndarray, proba: np.ndarray) -> float:
    """The objective metric of predictions `proba` against labels `y_true`."""
    if metric == "roc_auc":
        return float(roc_auc_score(y_true, proba))
    if metric == "pr_auc":
        return float(average_precision_score(y_true, proba))
    if metric == "log_loss":
        return float(log_loss(y_true, proba, labels=[0, 1]))
    raise ValueError(f"unknown metric '{metric}' (choose roc_auc, pr_auc or log_loss)")


def suggest_params(trial: optuna.Trial | optuna.trial.FixedTrial, pos_weight: float) -> dict[str, Any]:
    """The XGBoost search space."""
    return {
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "tree_method": "hist",
        "eta": trial.suggest_float("eta", 0.02, 0.3, log=True),
        "max_depth": trial.suggest_int("max_depth", 2, 8),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 20.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.6, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "lambda": trial.suggest_float("lambda", 1e-3, 10.0, log=True),
        "scale_pos_weight": trial.suggest_float("scale_pos_weight", 1.0, max(1.0, pos_weight)),
    }


def fit(params: dict[str, Any], split: Split, max_rounds: int, seed: int) -> xgb.Booster:
    """Train a booster on the train part with early stopping on the valid part, cut at its best iteration."""
    x_train, y_train = split.xy("train")
    x_valid, y_valid = split.xy("valid")
    dtrain = dmatrix(x_train, label=y_train)
    dvalid = dmatrix(x_valid, label=y_valid)
    booster = xgb.train(
        {**params, "seed": seed, "nthread": 2},
        dtrain,
        num_boost_round=max_rounds,
        evals=[(dvalid, "valid")],
        early_stopping_rounds=30,
        verbose_eval=False,
    )
    # Keep only the trees up to the best iteration, so every consumer of the saved model
    # (serving, monitoring, the gate) predicts with the early-stopped model without knowing it.
    best = booster.best_iteration
    trimmed = booster[: best + 1]
    trimmed.set_attr(best_iteration=str(best))
    return trimmed


def predict(booster: xgb.Booster, frame: pd.DataFrame) -> np.ndarray:
    """Churn probabilities from every tree of `booster` (`fit` already cut it at the best iteration)."""
    return predict_matrix(booster, frame)


@dataclass(frozen=True)
class TuneResult:
    """The best trial of a study."""

    study_name: str
    best_params: dict[str, Any]
    best_value: float
    n_trials: int


def tune(
    split: Split,
    *,
    metric: str,
    n_trials: int,
    timeout_s: float | None,
    seed: int,
    max_rounds: int,
    storage: str | None,
    study_name: str,
    on_trial: Callable[[int], None] | None = None,
) -> TuneResult:
    """Search hyper-parameters with TPE, logging each trial as a nested MLflow run.

    Must be called inside an active MLflow run (the parent).
    """
    x_train, y_train = split.xy("train")
    _, y_valid = split.xy("valid")
    positives = max(1, int(y_train.sum()))
    pos_weight = (len(y_train) - positives) / positives

    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(trial, pos_weight)
        started = time.perf_counter()
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
            booster = fit(params, split, max_rounds, seed)
            value = score(metric, y_valid.to_numpy(), predict(booster, split.valid[list(split.features)]))
            mlflow.log_params({k: v for k, v in params.items() if k in trial.params})
            mlflow.log_metrics(
                {
                    f"valid_{metric}": value,
                    "best_iteration": float(booster.num_boosted_rounds() - 1),
                    "duration_s": time.perf_counter() - started,
                }
            )
        trial.set_user_attr("best_iteration", booster.num_boosted_rounds() - 1)
        if on_trial:
            on_trial(trial.number)
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="maximize" if MAXIMISE[metric] else "minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        load_if_exists=True,
    )
    study.optimize(objective, n_trials=n_trials, timeout=timeout_s)
    best = study.best_trial
    params = {**suggest_params(optuna.trial.FixedTrial(best.params), pos_weight)}
    if best.value is None:
        raise RuntimeError(f"study {study_name} has no completed trial")
    return TuneResult(study_name, params, float(best.value), len(study.trials))
