"""The scale-out profile end to end: the whole loop with every shared store on a server and every
engine distributed (Spark feature build, Dask training).

Optuna on PostgreSQL, MLflow tracking on a real `mlflow server` backed by PostgreSQL with proxied
artifacts, the Feast registry on PostgreSQL and the online store on Redis, as
`configs/services.yaml` sets them (pointed at test-only schemas, projects and names).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from repo_copy import copy_repository
from services_fixtures import REPO, drop_feast_project, free_port, mlflow_server, services_settings
from training_fixtures import churn_command, churn_env, write_config

from churn.cli.common import Context
from churn.server import running_service
from core import names
from core.settings import Settings, parse_settings
from training.tune import WORKER


@pytest.fixture(scope="module")
def tracking(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A running MLflow server on PostgreSQL and the folder its artifacts land in, shared by the
    module's tests (each logs under a model name or entry point of its own)."""
    artifacts = tmp_path_factory.mktemp("tracking") / "mlflow-artifacts"
    with mlflow_server(postgres_url, artifacts) as url:
        yield url, artifacts


@pytest.fixture
def services(
    tracking: tuple[str, Path], postgres_url: str, redis_address: str, tmp_path: Path, spark: Any
) -> Iterator[Settings]:
    """A small workspace on the scale-out profile, its features built on Spark and applied to the
    PostgreSQL registry (a SparkSource: training sets come from Feast's Spark offline store)."""
    from features.generator.dataset import generate, write_generated
    from features.ingest import ingest
    from features.pipeline import apply_features, build_features

    ws = tmp_path / "ws"
    settings = services_settings(
        ws, postgres_url=postgres_url, redis_address=redis_address, tracking_uri=tracking[0], n_trials=5
    )
    customers, events = write_generated(generate(600, 220, seed=3), ws / "raw")
    ingest(settings, customers_path=customers, events_path=events)
    assert settings.features.engine == "spark"
    build_features(settings)
    try:
        apply_features(settings)
        yield settings
    finally:
        drop_feast_project(settings)
        studies = {s.study_name for s in optuna.get_all_study_summaries(postgres_url)}
        for name in studies:
            if name.startswith(f"{settings.training.model_name}-"):
                optuna.delete_study(study_name=name, storage=postgres_url)


@pytest.mark.services
@pytest.mark.slow
def test_the_whole_loop_on_the_scale_out_profile(
    services: Settings, tracking: tuple[str, Path], postgres_url: str, tmp_path: Path
) -> None:
    """Features built on Spark (the fixture), training sets through Feast's Spark offline store,
    tuning by 2 processes on one PostgreSQL study, the trees trained on a Dask cluster, the model on
    the MLflow server, features materialized into Redis, and the champion served over HTTP."""
    from features.pipeline import latest_snapshot

    url, artifacts = tracking
    model = services.training.model_name
    # Each tuning process trains on a 2-worker Dask cluster of its own (`training.dask.scheduler`
    # null): XGBoost's collective is per worker process, so two trainings at once on the same workers
    # fail. Parts of 3,000 rows: at least one per worker.
    tree = services.model_dump(mode="json")
    tree["training"]["engine"] = "dask"
    tree["training"]["dask"].update(scheduler=None, workers=2, chunk_rows=3_000, local_rows=1_000)
    settings = parse_settings(tree, "test", env={})
    config = write_config(settings, tmp_path / "services.yaml")
    proc = subprocess.run(
        churn_command("train", "--workers", "2", "--config", str(config)),
        env=churn_env(),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"model {model} v1" in proc.stdout.replace("\n", "")
    logs = Path(settings.workspace) / "logs"
    assert list(logs.glob("tune-worker-*.log")), "a second tuning process joined the study"

    # MLflow: the run, its trials and the registered version are on the server, artifacts in its folder.
    mlflow = MlflowClient(url)
    [version] = mlflow.search_model_versions(f"name = '{model}'")
    parent = mlflow.get_run(str(version.run_id))
    assert parent.data.tags["training.engine"] == "dask"
    assert parent.info.artifact_uri.startswith("mlflow-artifacts:")
    assert list(artifacts.rglob("MLmodel")), "the model bundle is in the server's artifact folder"
    assert not (Path(services.workspace) / "mlflow").exists()  # nothing tracked in the workspace
    nested = mlflow.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(nested) == 5

    # Optuna: one study on PostgreSQL, exactly its total, every trial claimed by a worker. (How the
    # trials spread over the processes depends on how fast each starts on a busy machine: several
    # workers sharing one study, exactly, is tests/e2e/test_distributed_tuning.py's.)
    study = optuna.load_study(study_name=parent.data.tags["optuna.study"], storage=postgres_url)
    trials = study.get_trials(deepcopy=False)
    assert len([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]) == 5
    assert all(t.user_attrs.get(WORKER) for t in trials)

    # The champion (the gate's, or promoted by hand as an operator would on this tiny data), its
    # features in Redis, served over HTTP.
    if "champion" not in mlflow.get_registered_model(model).aliases:
        promoted = subprocess.run(
            churn_command("promote", "1", "--reason", "scale-out loop test", "--config", str(config)),
            env=churn_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert promoted.returncode == 0, promoted.stdout[-3000:] + promoted.stderr[-3000:]
    materialized = subprocess.run(
        churn_command("features", "materialize", "--config", str(config)),
        env=churn_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert materialized.returncode == 0, materialized.stdout[-3000:] + materialized.stderr[-3000:]
    customer = str(latest_snapshot(settings)[names.CUSTOMER_ID].iloc[0])
    with running_service(Context(settings, config), timeout_s=300) as service:
        answer = httpx.post(f"{service}/score", json={"customer_ids": [customer]}, timeout=60)
    assert answer.status_code == 200, answer.text
    [scored] = answer.json()
    assert scored["customer_id"] == customer and scored["model_version"] == "1"
    assert 0 < scored["churn_probability"] < 1
    assert scored["risk_tier"] in settings.serving.risk_tiers


def test_train_without_the_mlflow_server_says_how_to_start_it(tmp_path: Path) -> None:
    config = tmp_path / "services.yaml"
    port = free_port()
    config.write_text(
        (REPO / "configs/services.yaml").read_text().replace("http://127.0.0.1:5000", f"http://127.0.0.1:{port}")
    )
    proc = subprocess.run(
        churn_command("train", "--config", str(config)),
        env=churn_env(CHURN_WORKSPACE=str(tmp_path / "ws")),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout.replace("\n", " ")
    assert proc.returncode == 1, output
    assert f"training.tracking_uri: nothing answers at 127.0.0.1:{port}" in output
    assert "next: run `mlflow server --backend-store-uri" in output
    assert "Traceback" not in output + proc.stderr


@pytest.mark.services
@pytest.mark.slow
def test_mlflow_run_records_on_the_profiles_tracking_server(
    tracking: tuple[str, Path], postgres_url: str, redis_address: str, tmp_path: Path
) -> None:
    """`mlflow run` as the MLproject's header says, on the scale-out profile: the project's run is on
    the profile's MLflow server (PostgreSQL), the entry's output in the profile's workspace."""
    url, _ = tracking
    settings = services_settings(
        tmp_path / "ws", postgres_url=postgres_url, redis_address=redis_address, tracking_uri=url
    )
    config = write_config(settings, tmp_path / "services.yaml")
    srv = copy_repository(tmp_path / "churn-platform")
    command = (
        f"PATH=$PWD/.venv/bin:$PATH MLFLOW_TRACKING_URI=$(.venv/bin/churn config tracking-uri --config {config}) "
        f".venv/bin/mlflow run . -e generate --env-manager local -P customers=60 -P days=40 -P config={config}"
    )
    home = tmp_path / "home"
    home.mkdir()
    done = subprocess.run(
        ["env", "-i", "PATH=/usr/bin:/bin", f"HOME={home}", "sh", "-c", command],
        cwd=srv,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "ws" / "raw" / "events.parquet").exists()
    assert not (srv / "mlflow.db").exists() and not (srv / "mlruns").exists()
    client = MlflowClient(url)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, filter_string="tags.`mlflow.project.entryPoint` = 'generate'")
    assert [r.info.status for r in runs] == ["FINISHED"]
    assert runs[0].data.params["config"] == str(config)
