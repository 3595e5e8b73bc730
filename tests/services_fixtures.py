"""The scale-out profile on this machine's services, isolated per test.

`mlflow_server` starts a real `mlflow server` whose backend store is a fresh PostgreSQL schema (MLflow
and Optuna both keep an `alembic_version` table, so MLflow never shares the Optuna schema) and whose
artifacts go to a folder; `services_settings` maps `configs/services.yaml` onto a test workspace
with its own Feast project and model name; `drop_feast_project` removes that project from the
shared SQL registry afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from training_fixtures import SMALL_TRAINING

from core.settings import Settings, load_settings, parse_settings

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def mlflow_server(postgres_url: str, artifacts: Path, timeout_s: float = 180) -> Iterator[str]:
    """A running `mlflow server` on PostgreSQL (a schema of its own, dropped afterwards); yields its URL."""
    schema = f"mlflow_test_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    port = free_port()
    backend = f"{postgres_url}?options=-csearch_path%3D{schema}"
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    command = [mlflow, "server", "--backend-store-uri", backend, "--artifacts-destination", str(artifacts)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log = artifacts.parent / f"mlflow-server-{port}.log"
    # Without MLflow's job execution (GenAI jobs, trace roll-ups, which nothing here uses): with it,
    # the server starts a job runner and five huey consumers, each importing MLflow, beside the tests.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"mlflow server exited {server.returncode}: {log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not up after {timeout_s} s: {log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


def services_settings(
    ws: Path, *, postgres_url: str, redis_address: str, tracking_uri: str, **training: Any
) -> Settings:
    """`configs/services.yaml` on the test workspace `ws`: this machine's services, a Feast project
    and model name of its own, the small training settings (plus `training`)."""
    tree = load_settings(REPO / "configs/services.yaml", env={}).model_dump(mode="json")
    tree["workspace"] = str(ws)
    tree["feast"].update(project=f"churn_test_{uuid.uuid4().hex[:8]}", registry=postgres_url)
    tree["feast"]["online_store"]["connection_string"] = redis_address
    tree["training"].update(
        SMALL_TRAINING,
        optuna_storage=postgres_url,
        tracking_uri=tracking_uri,
        model_name=f"test-churn-xgb-{uuid.uuid4().hex[:8]}",
        **training,
    )
    return parse_settings(tree, "test", env={})


def drop_feast_project(settings: Settings) -> None:
    """Remove the settings' Feast project from the shared SQL registry (and its online tables)."""
    from features.pipeline import open_store

    store = open_store(settings)
    project = settings.feast.project
    # Not store.teardown(): in Feast 0.67 it deletes every project of the (shared) registry.
    store._get_provider().teardown_infra(project, store.list_feature_views(), store.list_entities())
    registry = store.registry
    for fs in registry.list_feature_services(project):
        registry.delete_feature_service(fs.name, project, commit=True)
    for fv in registry.list_feature_views(project):
        registry.delete_feature_view(fv.name, project, commit=True)
    for ent in registry.list_entities(project):
        registry.delete_entity(ent.name, project, commit=True)
    for src in registry.list_data_sources(project):
        registry.delete_data_source(src.name, project, commit=True)
