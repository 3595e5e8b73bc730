"""Trial slots of a shared Optuna study, claimed atomically: exactly the total, however many workers race.

Optuna's own caps (`MaxTrialsCallback`, or counting the trials before calling `optimize`) check and
then act: two workers that count at the same moment both start the last trial. Here a worker
starts a trial only under a lock held by the database (or, for a SQLite file, by the file system):
while holding it, it fails the trials of dead workers, counts the finished and running trials
and, if they are fewer than the total, creates its trial (`study.ask`) and records its first
heartbeat, all before the lock is released. So the study never holds more finished and running
trials than the total, and the workers stop at exactly the total of finished ones.

The trial then runs outside the lock, with a heartbeat, and is told its outcome as
`study.optimize` does it: complete, pruned, or failed (an exception in `catch` fails the trial and
the worker goes on; any other fails it and ends the worker).

Locks: PostgreSQL's transaction-level advisory lock (`pg_advisory_xact_lock`), keyed by the study's
name, for every worker on every machine; `fcntl.flock` on a file beside a SQLite database, for the
processes of one machine. Other databases are refused (`training.optuna_storage`).
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import sqlalchemy as sa
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

LOCK_NAMESPACE = 0x43484E21
"""First key of the PostgreSQL advisory lock (the second is the study name's hash): ours alone."""
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
"""The trials that count towards the total."""


class StudyLock:
    """A lock per study, shared by every process that reaches the Optuna storage `url`.

    Args:
        url: The Optuna storage URI (PostgreSQL, or a SQLite file).

    Raises:
        ValueError: The storage is neither PostgreSQL nor a SQLite file; the message names the key.
    """

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.url = url
        self.backend = parsed.get_backend_name()
        if self.backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
            self._file: Path | None = Path(f"{parsed.database}.claims.lock")
            self._engine: sa.Engine | None = None
        elif self.backend == "postgresql":
            self._file = None
            # One connection per claim, closed after it: workers claim seconds apart.
            self._engine = sa.create_engine(url, poolclass=NullPool)
        else:
            raise ValueError(
                f"training.optuna_storage: {parsed.render_as_string(hide_password=True)} cannot claim trials "
                "atomically; use PostgreSQL (several machines) or a SQLite file (one machine)"
            )
        # Counts read past Optuna's per-process cache (which holds other workers' trials as this
        # process last saw them), and heartbeats written, on connections of their own.
        self._storage = RDBStorage(url, engine_kwargs={"poolclass": NullPool}, skip_table_creation=True)

    def trials(self, study_name: str) -> list[FrozenTrial]:
        """Every trial of the study, as the database holds it now."""
        return self._storage.get_all_trials(self._storage.get_study_id_from_name(study_name), deepcopy=False)

    def beat(self, study_name: str, number: int) -> None:
        """Record a heartbeat of the study's trial `number`."""
        study_id = self._storage.get_study_id_from_name(study_name)
        self._storage.record_heartbeat(self._storage.get_trial_id_from_study_id_trial_number(study_id, number))

    @contextmanager
    def held(self, study_name: str) -> Iterator[None]:
        """Hold the study's lock for the block; other processes wait for it."""
        if self._engine is not None:
            with self._engine.begin() as connection:  # released at commit
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:space, hashtext(:name))"),
                    {"space": LOCK_NAMESPACE, "name": study_name},
                )
                yield
            return
        assert self._file is not None
        with self._file.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def close(self) -> None:
        """Release the database connections."""
        self._storage.engine.dispose()
        if self._engine is not None:
            self._engine.dispose()


def claim(study: optuna.Study, lock: StudyLock, total: int) -> optuna.Trial | bool:
    """Start a trial of `study` if fewer than `total` are finished or running, atomically across workers.

    Under the lock: the trials of dead workers (no heartbeat within the grace period) are failed,
    the finished and running trials counted and, if there is room, a trial created and its first
    heartbeat recorded (a worker dying at once leaves a trial that fails when its heartbeat expires).

    Args:
        study: The shared study (opened with heartbeats).
        lock: The study storage's lock.
        total: Finished trials the study should reach.

    Returns:
        The new trial; True when the study has `total` finished trials; False when every slot is
        taken by running trials (wait: one may fail and free its slot).
    """
    with lock.held(study.study_name):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        trials = lock.trials(study.study_name)
        finished = sum(t.state in FINISHED for t in trials)
        if finished >= total:
            return True
        if finished + sum(t.state == TrialState.RUNNING for t in trials) >= total:
            return False
        with warnings.catch_warnings():
            # Optuna expects heartbeats from `optimize` only; `run_claimed` beats as it does.
            warnings.filterwarnings("ignore", message="Heartbeat of storage", category=UserWarning)
            trial = study.ask()
        lock.beat(study.study_name, trial.number)
        return trial


@contextmanager
def beating(lock: StudyLock, study_name: str, number: int, interval_s: float) -> Iterator[None]:
    """Record the trial's heartbeat every `interval_s` seconds while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval_s):
            lock.beat(study_name, number)

    thread = threading.Thread(target=beat, name=f"heartbeat-{study_name}-{number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_claimed(
    study: optuna.Study,
    trial: optuna.Trial,
    func: Callable[[optuna.Trial], float],
    lock: StudyLock,
    *,
    heartbeat_s: float,
    catch: tuple[type[Exception], ...] = (),
) -> None:
    """Run a claimed trial with a heartbeat and tell the study its outcome, as `study.optimize` does.

    Raises:
        BaseException: Whatever `func` raised that is not in `catch` (the trial is failed first).
    """
    with beating(lock, study.study_name, trial.number, heartbeat_s):
        try:
            value = func(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
            return
        except catch as exc:
            log.warning("trial %d failed: %r", trial.number, exc)
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            return
        except BaseException:
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise
        study.tell(trial, value, skip_if_finished=True)


WAIT_S = 1.0
"""How often a worker whose slots are all taken looks at the study again."""


def work_on(
    study: optuna.Study,
    func: Callable[[optuna.Trial], float],
    *,
    storage: str,
    total_trials: int,
    heartbeat_s: float,
    timeout_s: float | None = None,
    catch: tuple[type[Exception], ...] = (),
) -> int:
    """Run trials of `func` on `study` until it has `total_trials` finished ones, from every worker.

    Each trial is claimed first (see `claim`), so however many workers race, the study ends with
    exactly `total_trials` finished (complete or pruned) trials. A worker whose slots are all taken
    by running trials waits: if one of them fails (its worker died and its heartbeat expired, or it
    raised an exception in `catch`), the slot is free again and a waiting worker runs a
    replacement. This process runs at most `total_trials` trials itself, failed ones included.

    Args:
        study: The shared study, opened with heartbeats (`training.tune.open_study`), in the storage
            `storage` names.
        func: The objective.
        storage: The Optuna storage URI (PostgreSQL, or a SQLite file).
        total_trials: Finished trials the study should reach.
        heartbeat_s: Seconds between a running trial's heartbeats.
        timeout_s: Start no trial after this many seconds (a running trial finishes first).
        catch: Exceptions of `func` that fail a trial without stopping the worker.

    Returns:
        The trials this process ran.
    """
    lock = StudyLock(storage)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    ran = 0
    try:
        while ran < total_trials:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            trial = claim(study, lock, total_trials)
            if trial is True:
                break
            if trial is False:
                time.sleep(WAIT_S if left is None else min(WAIT_S, left))
                continue
            assert isinstance(trial, optuna.Trial)
            ran += 1
            run_claimed(study, trial, func, lock, heartbeat_s=heartbeat_s, catch=catch)
    finally:
        lock.close()
    return ran


def reloaded(study: optuna.Study, storage: str) -> optuna.Study:
    """`study` read afresh from `storage`, to read its results after `work_on` (this process's
    object caches the trials of other workers as it last saw them)."""
    return optuna.load_study(study_name=study.study_name, storage=storage, sampler=study.sampler, pruner=study.pruner)
