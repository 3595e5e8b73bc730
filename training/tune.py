"""Optuna search over XGBoost hyper-parameters: TPE with pruning, every trial an MLflow run.

The study lives in Optuna storage (SQLite embedded, PostgreSQL in the services profile), so
several processes, on one machine or many, can work on one study: each calls `run_trials` with
the study's name. A trial's MLflow run is tagged with the parent training run, so the trials of
all workers appear nested under it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import mlflow
import numpy as np
import optuna
import pandas as pd
import xgboost as xgb
from optuna.storages import RDBStorage
from optuna.trial import TrialState
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from core.config_sections import SearchSpace, TrainingSettings
from model.matrix import dmatrix, remember_categories
from model.matrix import predict as predict_matrix
from training.claims import reloaded, work_on
from training.dataset import Split
from training.pruning import PRUNING_WARMUP_ROUNDS, PruningCallback

MAXIMISE = {"roc_auc": True, "pr_auc": True, "log_loss": False}
XGB_METRIC = {"roc_auc": "auc", "pr_auc": "aucpr", "log_loss": "logloss"}
PARENT_RUN = "mlflow_parent_run_id"
"""Study user attribute: the training run the trials of every worker are nested under."""
WORKER = "worker"
"""Trial user attribute: `host:pid` of the process that ran the trial."""
HEARTBEAT_ENV = "CHURN_OPTUNA_HEARTBEAT_S"
GRACE_ENV = "CHURN_OPTUNA_GRACE_S"
"""Environment variables overriding the trial heartbeat interval and the grace period after which a
trial whose worker stopped beating is failed (defaults: 10 s and 30 s; tests shorten them)."""


class Fitter(Protocol):
    """Trains the trees of an out-of-time split somewhere other than in this process (`training.dask_engine`):
    `fit`'s contract without Optuna's pruning callback."""

    def __call__(
        self, params: dict[str, Any], split: Split, *, max_rounds: int, early_stopping_rounds: int, seed: int
    ) -> xgb.Booster: ...


def score(metric: str, y_true: np.ndarray, proba: np.ndarray) -> float:
    """The objective metric of predictions `proba` against labels `y_true`."""
    if metric == "roc_auc":
        return float(roc_auc_score(y_true, proba))
    if metric == "pr_auc":
        return float(average_precision_score(y_true, proba))
    if metric == "log_loss":
        return float(log_loss(y_true, proba, labels=[0, 1]))
    raise ValueError(f"unknown metric '{metric}' (choose roc_auc, pr_auc or log_loss)")


def negatives_per_positive(y: pd.Series) -> float:
    """The class ratio that `scale_pos_weight: balanced` uses."""
    positives = max(1, int(y.sum()))
    return (len(y) - positives) / positives


def suggest_params(
    trial: optuna.Trial | optuna.trial.FixedTrial, space: SearchSpace, pos_weight: float, metric: str
) -> dict[str, Any]:
    """XGBoost parameters for a trial from the configured search space."""
    params: dict[str, Any] = {
        "objective": "binary:logistic",
        "eval_metric": XGB_METRIC[metric],
        "tree_method": "hist",
        "eta": trial.suggest_float("eta", *space.eta, log=True),
        "max_depth": trial.suggest_int("max_depth", *space.max_depth),
        "min_child_weight": trial.suggest_float("min_child_weight", *space.min_child_weight, log=True),
        "subsample": trial.suggest_float("subsample", *space.subsample),
        "colsample_bytree": trial.suggest_float("colsample_bytree", *space.colsample_bytree),
        "lambda": trial.suggest_float("lambda", *space.reg_lambda, log=True),
    }
    if space.scale_pos_weight == "search":
        params["scale_pos_weight"] = trial.suggest_float("scale_pos_weight", 1.0, max(1.0 + 1e-9, pos_weight))
    elif space.scale_pos_weight == "balanced":
        params["scale_pos_weight"] = pos_weight
    return params


def fit(
    params: dict[str, Any],
    split: Split,
    *,
    max_rounds: int,
    early_stopping_rounds: int,
    seed: int,
    callbacks: list[xgb.callback.TrainingCallback] | None = None,
) -> xgb.Booster:
    """Train on the train part with early stopping on the valid part; cut at the best iteration."""
    x_train, y_train = split.xy("train")
    x_valid, y_valid = split.xy("valid")
    booster = xgb.train(
        {**params, "seed": seed, "nthread": 2},
        dmatrix(x_train, label=y_train),
        num_boost_round=max_rounds,
        evals=[(dmatrix(x_valid, label=y_valid), "valid")],
        early_stopping_rounds=early_stopping_rounds,
        callbacks=callbacks or [],
        verbose_eval=False,
    )
    # Keep only the trees up to the best iteration, so every consumer of the saved model
    # (serving, monitoring, the gate) predicts with the early-stopped model without knowing it.
    best = booster.best_iteration
    trimmed = booster[: best + 1]
    trimmed.set_attr(best_iteration=str(best))
    return remember_categories(trimmed, split.categories)


@dataclass(frozen=True)
class CrossFit:
    """Cross-validation of one parameter set on `Split.train` (one booster per fold)."""

    scores: tuple[float, ...]
    """The objective metric on each fold's held-out rows."""
    rounds: tuple[int, ...]
    """Each fold's boosting rounds up to its best iteration."""
    margins: np.ndarray
    """The out-of-fold margin of every row of `Split.train`."""

    @property
    def mean_rounds(self) -> int:
        """The rounds a model on all the rows trains for: the folds' mean."""
        return max(1, round(float(np.mean(self.rounds))))


def cross_fit(
    params: dict[str, Any],
    split: Split,
    metric: str,
    *,
    max_rounds: int,
    early_stopping_rounds: int,
    seed: int,
    callbacks: list[xgb.callback.TrainingCallback] | None = None,
) -> CrossFit:
    """Fit one booster per fold of `split.folds` (early stopping on its held-out rows) and score each.

    Args:
        params: XGBoost parameters.
        split: A cross-validated split.
        metric: The objective metric.
        max_rounds: Most boosting rounds.
        early_stopping_rounds: Rounds without improvement on the held-out rows before stopping.
        seed: XGBoost's seed.
        callbacks: Given to the first fold only (Optuna's pruning callback: the first fold screens a trial).
    """
    x, y = split.xy("train")
    margins = np.empty(len(x), dtype=np.float64)
    scores, rounds = [], []
    for i, (fit_rows, held) in enumerate(split.folds):
        booster = xgb.train(
            {**params, "seed": seed, "nthread": 2},
            dmatrix(x.iloc[fit_rows], label=y.iloc[fit_rows]),
            num_boost_round=max_rounds,
            evals=[(dmatrix(x.iloc[held], label=y.iloc[held]), "valid")],
            early_stopping_rounds=early_stopping_rounds,
            callbacks=(callbacks or []) if i == 0 else [],
            verbose_eval=False,
        )
        best = booster.best_iteration
        margins[held] = booster.predict(dmatrix(x.iloc[held]), iteration_range=(0, best + 1), output_margin=True)
        scores.append(score(metric, y.iloc[held].to_numpy(), 1.0 / (1.0 + np.exp(-margins[held]))))
        rounds.append(best + 1)
    return CrossFit(tuple(scores), tuple(rounds), margins)


def fit_all(params: dict[str, Any], split: Split, rounds: int, seed: int) -> xgb.Booster:
    """Train on every row of `split.train` for `rounds` rounds (cross-validation chose them)."""
    x, y = split.xy("train")
    booster = xgb.train({**params, "seed": seed, "nthread": 2}, dmatrix(x, label=y), num_boost_round=rounds)
    booster.set_attr(best_iteration=str(rounds - 1))
    return remember_categories(booster, split.categories)


def predict(booster: xgb.Booster, frame: pd.DataFrame) -> np.ndarray:
    """Churn probabilities from every tree of `booster` (`fit` already cut it at the best iteration)."""
    return predict_matrix(booster, frame)


def heartbeat_s() -> int:
    """Seconds between a running trial's heartbeats: 10 unless `CHURN_OPTUNA_HEARTBEAT_S` says otherwise."""
    return int(os.environ.get(HEARTBEAT_ENV) or 10)


def storage_for(uri: str) -> RDBStorage:
    """Optuna storage with heartbeats, so a trial whose worker died is marked failed, not left running.

    The heartbeat interval and grace period are 10 s and 30 s unless `CHURN_OPTUNA_HEARTBEAT_S` and
    `CHURN_OPTUNA_GRACE_S` say otherwise (whole seconds).
    """
    grace = int(os.environ.get(GRACE_ENV) or 30)
    return RDBStorage(uri, heartbeat_interval=heartbeat_s(), grace_period=grace)


def open_study(name: str, storage: str, metric: str, seed: int, pruning: bool) -> optuna.Study:
    """Create the study, or join it if it exists (another worker, or a resumed run)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=name,
        storage=storage_for(storage),
        direction="maximize" if MAXIMISE[metric] else "minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=PRUNING_WARMUP_ROUNDS)
        if pruning
        else optuna.pruners.NopPruner(),
        load_if_exists=True,
    )


def objective(
    split: Split,
    cfg: TrainingSettings,
    parent_run_id: str | None,
    on_trial: Callable[[int], None] | None = None,
    fitter: Fitter | None = None,
    best_booster: dict[int, xgb.Booster] | None = None,
) -> Callable[[optuna.Trial], float]:
    """The Optuna objective: fit one booster, score it on the valid part (or the mean over the folds of
    a cross-validated split), log it as an MLflow run.

    Args:
        split: The training split.
        cfg: The training settings.
        parent_run_id: The MLflow run the trial runs are nested under.
        on_trial: Called after each trial with its number.
        fitter: Trains the trees elsewhere (a Dask cluster); None: `fit` in this process, with
            Optuna's pruning callback when `cfg.pruning`.
        best_booster: Filled with {trial number: booster} of the best out-of-time trial this process
            completed, so the final model reuses it instead of training the same trees again.
    """
    y_train, y_valid = split.y("train"), split.y("valid")
    pos_weight = negatives_per_positive(y_train)
    kept: list[float] = []  # the value of the trial in `best_booster`

    def run(trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")
        params = suggest_params(trial, cfg.search, pos_weight, cfg.metric)
        started = time.perf_counter()
        tags = {"optuna.study": trial.study.study_name, "optuna.trial": str(trial.number)}
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
        prune = cfg.pruning and fitter is None
        callbacks: list[xgb.callback.TrainingCallback] = (
            [PruningCallback(trial, f"valid-{XGB_METRIC[cfg.metric]}")] if prune else []
        )
        mlflow_run = mlflow.start_run(
            run_name=f"trial-{trial.number}", tags=tags, nested=mlflow.active_run() is not None
        )
        try:
            mlflow.log_params({k: v for k, v in params.items() if k in trial.params})
            rounds: dict[str, Any] = {
                "max_rounds": cfg.max_rounds,
                "early_stopping_rounds": cfg.early_stopping_rounds,
                "seed": cfg.seed,
            }
            folds: dict[str, float] = {}
            try:
                if split.cross_validated:
                    crossed = cross_fit(params, split, cfg.metric, **rounds, callbacks=callbacks)
                    value = float(np.mean(crossed.scores))
                    best_iteration = crossed.mean_rounds - 1
                    folds = {f"cv_fold_{i}_{cfg.metric}": v for i, v in enumerate(crossed.scores)}
                    folds[f"cv_{cfg.metric}_std"] = float(np.std(crossed.scores))
                else:
                    booster = (
                        fitter(params, split, **rounds) if fitter else fit(params, split, **rounds, callbacks=callbacks)
                    )
                    value = score(cfg.metric, y_valid.to_numpy(), predict(booster, split.valid))
                    best_iteration = booster.num_boosted_rounds() - 1
                    if best_booster is not None and (not kept or (value > kept[0]) == MAXIMISE[cfg.metric]):
                        kept[:] = [value]
                        best_booster.clear()
                        best_booster[trial.number] = booster
            except optuna.TrialPruned:
                mlflow.set_tag("optuna.state", "pruned")
                mlflow.log_metric("duration_s", time.perf_counter() - started)
                mlflow.end_run(status="KILLED")
                raise
            mlflow.log_metrics(
                {
                    f"{'cv' if split.cross_validated else 'valid'}_{cfg.metric}": value,
                    **folds,
                    "best_iteration": float(best_iteration),
                    "duration_s": time.perf_counter() - started,
                }
            )
            mlflow.set_tag("optuna.state", "complete")
            trial.set_user_attr("best_iteration", best_iteration)
            trial.set_user_attr("mlflow_run_id", mlflow_run.info.run_id)
            mlflow.end_run()
        except optuna.TrialPruned:
            raise
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
        finally:
            if on_trial:
                on_trial(trial.number)
        return value

    return run


@dataclass(frozen=True)
class TuneResult:
    """The best trial of a study."""

    study_name: str
    best_params: dict[str, Any]
    best_value: float
    n_trials: int
    n_pruned: int


def run_trials(
    study: optuna.Study,
    split: Split,
    cfg: TrainingSettings,
    *,
    storage: str,
    total_trials: int,
    timeout_s: float | None = None,
    on_trial: Callable[[int], None] | None = None,
    fitter: Fitter | None = None,
    best_booster: dict[int, xgb.Booster] | None = None,
) -> int:
    """Work on `study` until it has exactly `total_trials` finished trials (from every worker) or time runs out.

    Every trial is claimed atomically first (`training.claims`), so however many workers race,
    the study never holds more than `total_trials` finished and running trials. When other workers
    are running the last trials this one waits for them: if one of them dies, its trial fails once
    its heartbeat expires and this worker runs a replacement. This process starts at most
    `total_trials` trials itself, failed ones included.

    Args:
        study: The study, opened with `open_study`.
        split: The training split.
        cfg: The training settings.
        storage: The study's Optuna storage URI.
        total_trials: Finished trials the study should reach.
        timeout_s: Start no trial after this many seconds.
        on_trial: Called after each trial of this process with its number.
        fitter: Trains the trees elsewhere (see `objective`).
        best_booster: Filled with the best booster of this process's trials (see `objective`).

    Returns:
        The trials this process ran.
    """
    run = objective(split, cfg, study.user_attrs.get(PARENT_RUN), on_trial, fitter, best_booster)
    return work_on(
        study,
        run,
        storage=storage,
        total_trials=total_trials,
        heartbeat_s=heartbeat_s(),
        timeout_s=timeout_s,
        catch=(xgb.core.XGBoostError,),
    )


def best_of(study: optuna.Study, space: SearchSpace, pos_weight: float, metric: str) -> TuneResult:
    """The study's best trial as full XGBoost parameters."""
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not completed:
        raise RuntimeError(f"study {study.study_name} has no completed trial")
    best = study.best_trial
    params = suggest_params(optuna.trial.FixedTrial(best.params), space, pos_weight, metric)
    pruned = len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)))
    return TuneResult(study.study_name, params, float(best.value or 0.0), len(completed) + pruned, pruned)


def tune(
    split: Split,
    cfg: TrainingSettings,
    *,
    storage: str,
    study_name: str,
    parent_run_id: str | None = None,
    on_trial: Callable[[int], None] | None = None,
) -> TuneResult:
    """Search hyper-parameters with TPE (and pruning) in this process; see `run_trials` for workers."""
    study = open_study(study_name, storage, cfg.metric, cfg.seed, cfg.pruning)
    if parent_run_id:
        study.set_user_attr(PARENT_RUN, parent_run_id)
    run_trials(
        study, split, cfg, storage=storage, total_trials=cfg.n_trials, timeout_s=cfg.timeout_s, on_trial=on_trial
    )
    y_train = split.y("train")
    return best_of(reloaded(study, storage), cfg.search, negatives_per_positive(y_train), cfg.metric)
