"""Optuna pruning of an `xgb.train` run, asking the study every few rounds rather than every round."""

from __future__ import annotations

from typing import Any

import optuna
import xgboost as xgb

PRUNING_WARMUP_ROUNDS = 10
"""Rounds before the pruner may stop a trial (the median pruner's `n_warmup_steps`)."""
REPORT_EVERY = 10
"""A trial reports its validation metric to the study (and asks the pruner) every this many rounds."""


class PruningCallback(xgb.callback.TrainingCallback):
    """Optuna pruning for `xgb.train`: report the validation metric every `every` rounds and stop
    the trial when the pruner says so.

    Why not Optuna's `XGBoostPruningCallback`: it reports every round, and each report and pruner
    question is a round trip to the study's storage (a database write, then a read of the trial);
    on a busy machine that cost as much as the boosting itself. The median pruner compares trials at
    the same step, so reporting rounds 0, `every`, 2 `every`, ... of every trial keeps its decisions
    the same, checked every `every` rounds instead of every round.
    """

    def __init__(self, trial: optuna.Trial, observation_key: str, every: int = REPORT_EVERY) -> None:
        """Prune `trial` on the evaluation named `observation_key` (e.g. "valid-auc")."""
        self.trial = trial
        self.dataset, self.metric = observation_key.split("-", 1)
        self.every = every

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict[str, Any]) -> bool:
        """Report round `epoch`'s score when it is a reporting round; raise `optuna.TrialPruned` to stop.

        Raises:
            optuna.TrialPruned: The pruner stops the trial.
        """
        if epoch % self.every:
            return False
        self.trial.report(float(evals_log[self.dataset][self.metric][-1]), step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"Trial was pruned at iteration {epoch}.")
        return False
