"""Distributed tuning: real `churn tune-worker` processes share one Optuna study.

The PostgreSQL tests take the `postgres_url` fixture, so they skip (or fail, under
CHURN_REQUIRE_SERVICES=1) when the server is down; each uses its own study name and deletes it.
MLflow tracking and the Feast registry stay the embedded (SQLite) ones of the workspace.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow import MlflowClient
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.pool import NullPool
from training_fixtures import (
    build_workspace,
    churn_command,
    churn_env,
    settings_for,
    unique_name,
    write_config,
)

from core.settings import Settings
from training.distributed import FINGERPRINT, StudyMismatchError, start_workers, tune_worker, worker_command
from training.pipeline import configure_mlflow, prepare
from training.tune import GRACE_ENV, HEARTBEAT_ENV, PARENT_RUN, WORKER, open_study

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The small real workspace, built once for this module."""
    return build_workspace(tmp_path_factory.mktemp("ws"))


@pytest.fixture(scope="module")
def data_fingerprint(workspace: Settings) -> str:
    """The fingerprint every worker computes for the workspace's training set."""
    return prepare(workspace).fingerprint


@pytest.fixture
def pg_studies(postgres_url: str) -> Iterator[list[str]]:
    """Names of the PostgreSQL studies a test creates: deleted afterwards."""
    names: list[str] = []
    yield names
    existing = {s.study_name for s in optuna.get_all_study_summaries(postgres_url)}
    for name in names:
        if name in existing:
            optuna.delete_study(study_name=name, storage=postgres_url)


def start_study(settings: Settings, name: str, fingerprint: str) -> str:
    """Create the study as `training.pipeline.train` does: parent MLflow run, parent id and fingerprint.

    Returns:
        The parent run id.
    """
    experiment_id = configure_mlflow(settings)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"parent-{name}") as run:
        mlflow.set_tag("optuna.study", name)
    cfg = settings.training
    study = open_study(name, settings.optuna_uri, cfg.metric, cfg.seed, cfg.pruning)
    study.set_user_attr(PARENT_RUN, run.info.run_id)
    study.set_user_attr(FINGERPRINT, fingerprint)
    return run.info.run_id


def trials_of(url: str, name: str) -> list[FrozenTrial]:
    """Every trial of the study, read fresh from the storage.

    Tests poll this ten times a second: each call opens one connection and closes it (no pool), so
    polling cannot use up the server's connection slots (`FATAL: sorry, too many clients already`).
    """
    storage = RDBStorage(url, engine_kwargs={"poolclass": NullPool}, skip_table_creation=True)
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    finally:
        storage.engine.dispose()


def finished(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that count towards the total."""
    return [t for t in trials if t.state in FINISHED]


def output_of(proc: subprocess.Popen[str]) -> str:
    """What a finished process wrote."""
    out, err = proc.communicate()
    return (out or "")[-3000:] + (err or "")[-3000:]


@pytest.mark.services
def test_three_workers_share_one_study_on_postgres_and_stop_at_exactly_its_total(
    workspace: Settings, data_fingerprint: str, postgres_url: str, pg_studies: list[str], tmp_path: Path
) -> None:
    settings = settings_for(Path(workspace.workspace), optuna_storage=postgres_url, pruning=False, n_trials=7)
    config = write_config(settings, tmp_path / "config.yaml")
    name = unique_name("test-shared")
    pg_studies.append(name)
    parent = start_study(settings, name, data_fingerprint)

    wait = start_workers(3, config, env=churn_env())(name)
    wait()  # raises with the workers' stderr if one failed

    trials = trials_of(postgres_url, name)
    done = finished(trials)
    # Each trial is claimed under a PostgreSQL advisory lock: however the workers race for the
    # last slots, the study ends with exactly its total, and no trial was started beyond it.
    assert len(done) == 7, [(t.number, t.state.name, t.user_attrs.get(WORKER)) for t in trials]
    assert len(trials) == 7
    # Several processes worked on the study (`worker` is host:pid of the process that ran the trial).
    workers = {t.user_attrs[WORKER] for t in trials}
    assert len(workers) >= 2, workers
    # Every completed trial is an MLflow run nested under the parent run.
    client = MlflowClient(settings.mlflow_uri)
    completed = [t for t in done if t.state == TrialState.COMPLETE]
    assert completed
    for trial in completed:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.data.tags["mlflow.parentRunId"] == parent
        assert run.data.tags["optuna.study"] == name
        assert run.data.tags["optuna.trial"] == str(trial.number)
        assert run.info.status == "FINISHED"
    nested = client.search_runs([run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    assert len(nested) == len(trials)


@pytest.mark.services
def test_study_resumes_after_a_worker_is_killed(
    workspace: Settings,
    data_fingerprint: str,
    postgres_url: str,
    pg_studies: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A larger tree budget without pruning keeps trials running long enough to kill one mid-trial.
    settings = settings_for(
        Path(workspace.workspace),
        optuna_storage=postgres_url,
        pruning=False,
        max_rounds=150,
        early_stopping_rounds=150,
    )
    config = write_config(settings, tmp_path / "config.yaml")
    name = unique_name("test-resume")
    pg_studies.append(name)
    start_study(settings, name, data_fingerprint)
    # Short heartbeats: the killed worker's trial is stale 3 s after its last beat, not 30 s.
    heartbeats = {HEARTBEAT_ENV: "1", GRACE_ENV: "3"}
    env = churn_env(**heartbeats)
    for var, value in heartbeats.items():
        monkeypatch.setenv(var, value)
    n = settings.training.n_trials

    first = subprocess.Popen(
        worker_command(name, config), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    running: list[FrozenTrial] = []
    try:
        while time.monotonic() < deadline:
            assert first.poll() is None, f"the worker ended before it could be killed:\n{output_of(first)}"
            trials = trials_of(postgres_url, name)
            # Running inside the objective (it has recorded its worker), after another trial finished.
            running = [t for t in trials if t.state == TrialState.RUNNING and WORKER in t.user_attrs]
            if running and finished(trials):
                break
            time.sleep(0.1)
        else:
            pytest.fail("no trial was running after another had finished within 120 s")
        os.kill(first.pid, signal.SIGKILL)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()
    assert first.returncode == -signal.SIGKILL
    [killed] = running
    assert killed.user_attrs.get(WORKER, "").endswith(f":{first.pid}")
    after_kill = trials_of(postgres_url, name)
    assert len(finished(after_kill)) < n

    # The new worker runs in this process (a `churn tune-worker` process like the first would spend
    # most of its time importing): it starts while the killed trial still looks alive, runs the
    # trials left, waits until the dead trial's heartbeat expires, then runs its replacement.
    result = tune_worker(settings, name)
    assert result.study_finished == n
    assert result.trials_run == n - len(finished(after_kill))

    trials = trials_of(postgres_url, name)
    assert len(finished(trials)) == n
    by_number = {t.number: t for t in trials}
    # The killed worker's trial failed when its heartbeat expired, and the new worker made up for it.
    assert by_number[killed.number].state == TrialState.FAIL
    resumed = [t for t in trials if t.number > killed.number]
    assert resumed and all(t.user_attrs[WORKER].endswith(f":{os.getpid()}") for t in resumed)


def test_worker_refuses_a_study_on_other_data(workspace: Settings, data_fingerprint: str, tmp_path: Path) -> None:
    settings = settings_for(Path(workspace.workspace), optuna_storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    name = unique_name("test-mismatch")
    start_study(settings, name, "0123456789abcdef")
    with pytest.raises(StudyMismatchError) as raised:
        tune_worker(settings, name)
    assert name in str(raised.value)
    assert "0123456789abcdef" in str(raised.value) and data_fingerprint in str(raised.value)
    assert trials_of(settings.optuna_uri, name) == []


def test_tune_worker_on_an_unknown_study_fails_clearly(workspace: Settings, tmp_path: Path) -> None:
    settings = settings_for(Path(workspace.workspace), optuna_storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    config = write_config(settings, tmp_path / "config.yaml")
    name = unique_name("no-such-study")
    proc = subprocess.run(
        churn_command("tune-worker", "--study", name, "--config", str(config)),
        env=churn_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert f"no study '{name}'" in output.replace("\n", "")
    assert "Traceback" not in output


@pytest.mark.services
@pytest.mark.slow
def test_churn_train_with_two_workers(
    workspace: Settings, postgres_url: str, pg_studies: list[str], tmp_path: Path
) -> None:
    model = unique_name("test-churn-xgb")
    settings = settings_for(Path(workspace.workspace), optuna_storage=postgres_url, model_name=model)
    config = write_config(settings, tmp_path / "config.yaml")
    proc = subprocess.run(
        churn_command("train", "--workers", "2", "--config", str(config)),
        env=churn_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    # The study is named after the model: `{model}-{timestamp}`.
    pg_studies.extend(
        s.study_name for s in optuna.get_all_study_summaries(postgres_url) if s.study_name.startswith(f"{model}-")
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"model {model} v1" in proc.stdout.replace("\n", "")

    client = MlflowClient(settings.mlflow_uri)
    [version] = client.search_model_versions(f"name = '{model}'")
    assert version.run_id is not None
    parent = client.get_run(version.run_id)
    study_name = parent.data.tags["optuna.study"]
    n = settings.training.n_trials
    nested = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(nested) == n, [(r.info.run_name, r.info.status) for r in nested]
    assert {r.data.tags["optuna.study"] for r in nested} == {study_name}
    assert parent.data.metrics["n_trials"] == n
    trials = trials_of(postgres_url, study_name)
    assert len(finished(trials)) == n
