"""Trial claims: racing workers end a shared study at exactly its total, on PostgreSQL and on SQLite.

The objective takes milliseconds, so the workers claim all the time and race for the last slots
far more often than training workers do (the e2e test in tests/e2e/test_distributed_tuning.py
runs real `churn tune-worker` processes).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from training_fixtures import unique_name

from training.claims import StudyLock, work_on


def open_study(name: str, storage: str, grace_s: int = 30) -> optuna.Study:
    """The study with heartbeats, as `training.tune.open_study` opens it (which imports MLflow and
    XGBoost: seconds per spawned worker)."""
    rdb = optuna.storages.RDBStorage(storage, heartbeat_interval=1, grace_period=grace_s)
    return optuna.create_study(study_name=name, storage=rdb, load_if_exists=True)


def quick(trial: optuna.Trial) -> float:
    """An objective of a few milliseconds."""
    trial.set_user_attr("pid", os.getpid())
    x = trial.suggest_float("x", -1.0, 1.0)
    time.sleep(0.005)
    return x * x


def _worker(storage: str, name: str, total: int, start_at: float) -> None:
    study = open_study(name, storage)
    time.sleep(max(0.0, start_at - time.time()))  # every worker starts claiming at the same moment
    work_on(study, quick, storage=storage, total_trials=total, heartbeat_s=1)


def race(storage: str, name: str, workers: int, total: int) -> list[optuna.trial.FrozenTrial]:
    """`workers` processes work on one new study until it has `total` trials; its trials after."""
    open_study(name, storage)
    context = multiprocessing.get_context("spawn")
    start_at = time.time() + 5  # after the spawned interpreters have imported Optuna
    procs = [context.Process(target=_worker, args=(storage, name, total, start_at)) for _ in range(workers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
    assert [proc.exitcode for proc in procs] == [0] * workers
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


@pytest.fixture
def pg_study(postgres_url: str) -> Iterator[str]:
    """A fresh study name on PostgreSQL, deleted afterwards."""
    name = unique_name("test-claims")
    yield name
    if name in {s.study_name for s in optuna.get_all_study_summaries(postgres_url)}:
        optuna.delete_study(study_name=name, storage=postgres_url)


@pytest.mark.services
def test_racing_workers_stop_at_exactly_the_total_on_postgres(postgres_url: str, pg_study: str) -> None:
    trials = race(postgres_url, pg_study, workers=4, total=25)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 25
    assert len({t.user_attrs["pid"] for t in trials}) > 1  # the workers did race


def test_racing_workers_stop_at_exactly_the_total_on_sqlite(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    trials = race(storage, "claims", workers=3, total=15)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 15
    assert len({t.user_attrs["pid"] for t in trials}) > 1


def test_the_trial_of_a_dead_worker_fails_and_is_replaced(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = open_study("dead", storage, grace_s=1)
    # A worker claimed a trial, beat once and died.
    lock = StudyLock(storage)
    dead = study.ask()
    lock.beat("dead", dead.number)
    lock.close()
    time.sleep(1.5)
    ran = work_on(study, quick, storage=storage, total_trials=3, heartbeat_s=1)
    trials = optuna.load_study(study_name="dead", storage=storage).get_trials(deepcopy=False)
    assert ran == 3
    assert [t.state for t in trials] == [TrialState.FAIL] + [TrialState.COMPLETE] * 3


def test_a_storage_that_cannot_lock_is_refused() -> None:
    with pytest.raises(ValueError, match="training.optuna_storage: mysql"):
        StudyLock("mysql://user@db/optuna")
