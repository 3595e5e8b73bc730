"""Distributed tuning: several processes, on one machine or many, work on one Optuna study.

The study lives in the Optuna storage of the profile (PostgreSQL in the services profile; SQLite
works for a few processes on one machine). `churn train --workers N` starts N - 1 worker
processes beside itself; `churn tune-worker --study NAME` joins a study from any machine that
reaches the same storage, Feast registry and MLflow tracking server. Each worker builds the same
training set through Feast and refuses to work if its data fingerprint differs from the study's.
A worker that dies leaves its trial running only until its heartbeat expires; the study then
marks it failed and the other workers (or a restarted one) carry on to the total trial count.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from core.settings import Settings
from training.claims import reloaded
from training.pipeline import configure_mlflow, prepared_on_engine
from training.tune import open_study, run_trials

FINGERPRINT = "data.fingerprint"


class StudyMismatchError(RuntimeError):
    """A worker's training data differs from the data the study was started on."""


@dataclass(frozen=True)
class WorkerResult:
    """What one worker did."""

    study_name: str
    trials_run: int
    study_finished: int


def finished_trials(study: optuna.Study) -> int:
    """Trials that count towards the total: completed or pruned, from every worker."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def tune_worker(settings: Settings, study_name: str, on_trial: Callable[[int], None] | None = None) -> WorkerResult:
    """Join `study_name` and run trials until the study has `training.n_trials` finished ones.

    Raises:
        StudyMismatchError: This worker's training set differs from the study's.
        KeyError: The study does not exist in the storage.
    """
    cfg = settings.training
    configure_mlflow(settings)
    summaries = {s.study_name for s in optuna.get_all_study_summaries(settings.optuna_uri)}
    if study_name not in summaries:
        raise KeyError(f"no study '{study_name}' in {settings.optuna_uri}: start one with `churn train`")
    study = open_study(study_name, settings.optuna_uri, cfg.metric, cfg.seed, cfg.pruning)
    with prepared_on_engine(settings) as prepared:
        expected = study.user_attrs.get(FINGERPRINT)
        if expected is not None and expected != prepared.fingerprint:
            raise StudyMismatchError(
                f"study '{study_name}' was started on training data {expected}, this worker built "
                f"{prepared.fingerprint}: use the same config (training.engine too), Feast registry and data"
            )
        ran = run_trials(
            study,
            prepared.split,
            cfg,
            storage=settings.optuna_uri,
            total_trials=cfg.n_trials,
            timeout_s=cfg.timeout_s,
            on_trial=on_trial,
            fitter=prepared.fitter,
        )
    return WorkerResult(study_name, ran, finished_trials(reloaded(study, settings.optuna_uri)))


def worker_command(study_name: str, config: Path | None, trials: int | None = None) -> list[str]:
    """The command line of one `churn tune-worker` process."""
    command = [sys.executable, "-m", "churn", "tune-worker", "--study", study_name]
    command += ["--config", str(config)] if config else []
    return command + (["--trials", str(trials)] if trials else [])


def start_workers(
    n: int, config: Path | None, trials: int | None = None, env: dict[str, str] | None = None
) -> Callable[[str], Callable[[], None]]:
    """A `train(run_workers=...)` hook starting `n` worker processes on the study once it exists.

    Returns:
        A function of the study name that starts the workers and returns a function that waits
        for them (raising if any failed).
    """

    def start(study_name: str) -> Callable[[], None]:
        procs = [
            subprocess.Popen(
                worker_command(study_name, config, trials),
                env={**os.environ, **(env or {})},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(n)
        ]

        def wait() -> None:
            failures = []
            for proc in procs:
                _, err = proc.communicate()
                if proc.returncode != 0:
                    failures.append(f"worker pid {proc.pid} exited {proc.returncode}: {err.strip()[-500:]}")
            if failures:
                raise RuntimeError("; ".join(failures))

        return wait

    return start
