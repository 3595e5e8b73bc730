"""Shared fixtures: small seeded data, and the services guard for the scale-out profile."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REQUIRE_SERVICES_ENV = "CHURN_REQUIRE_SERVICES"
"""Set by .ci/run: a test that needs PostgreSQL or Redis fails instead of skipping when they are down."""


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip (or fail, under CHURN_REQUIRE_SERVICES=1) when a service of the scale-out profile is down."""
    if _reachable(host, port):
        return
    message = f"needs {name} at {host}:{port} (scale-out profile service), which is not reachable"
    if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
        pytest.fail(f"{message}; {REQUIRE_SERVICES_ENV}=1 makes this a failure")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """SQLAlchemy URL of the machine's PostgreSQL `test` database (trust auth)."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def redis_address() -> str:
    """host:port of the machine's Redis."""
    require_service("Redis", "127.0.0.1", 6379)
    return "127.0.0.1:6379"


@pytest.fixture(scope="session")
def served_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with features in the online store and a trained champion, shared by the service tests.

    Built once per run: generating, featurizing and training it takes about 20 s here. Tests may
    add to it (model versions, prediction logs, config files of their own) but remove nothing.
    """
    from training_fixtures import build_workspace, settings_for

    from features.pipeline import materialize
    from training.pipeline import train

    ws = tmp_path_factory.mktemp("served")
    build_workspace(ws)
    settings = settings_for(ws, n_trials=2, max_rounds=60)
    train(settings)
    materialize(settings)
    return ws


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """The test session's one SparkSession (`local[2]`), for the Spark feature engine's tests.

    Skips when pyspark or Java is missing (the default install has no Spark), or fails under
    CHURN_REQUIRE_SERVICES=1, as CI sets it: there the spark extra and Java are required.
    """
    from core.feature_engine_settings import SparkSettings
    from features.spark.session import missing, spark_session

    reason = missing()
    if reason:
        message = f"needs the Spark feature engine: {reason}"
        if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
            pytest.fail(f"{message}; {REQUIRE_SERVICES_ENV}=1 makes this a failure")
        pytest.skip(message)
    session = spark_session(SparkSettings(master="local[2]", driver_memory="1g", shuffle_partitions=2))
    yield session
    session.stop()
