"""The SparkSession of the Spark feature engine, and the checks that say why it cannot start."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from typing import TYPE_CHECKING

from core.feature_engine_settings import SparkSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

BASE_CONF = {
    # Naive timestamps mean UTC, as in the DuckDB engine, whatever the machine's zone.
    "spark.sql.session.timeZone": "UTC",
    # Microsecond timestamps, zoned (isAdjustedToUTC): what DuckDB writes and Feast reads.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


def missing() -> str | None:
    """Why the Spark engine cannot run here (no pyspark, no Java), or None when it can."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed: install the spark extra (`uv sync --extra spark`, `make setup-full`)"
    if shutil.which("java") is None:
        return "Java is not on PATH: the Spark engine needs a Java 17+ runtime (e.g. apt-get install openjdk-17-jre)"
    return None


def spark_session(settings: SparkSettings) -> SparkSession:
    """The process's SparkSession, started from `settings` if none is running.

    A running session is reused as it is (Spark allows one per process): its master and memory were
    fixed when it started; the SQL settings the engine relies on are set on it again.

    Raises:
        RuntimeError: pyspark or Java is missing (the message says what to install).
    """
    reason = missing()
    if reason:
        raise RuntimeError(f"features.engine is spark but {reason}")
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is None:
        builder = SparkSession.builder.master(settings.master).appName("churn-features")
        # The BG/NBD fit runs in Python workers: this interpreter (its venv), unless PYSPARK_PYTHON
        # names another (a cluster's executors name their own).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        conf = {
            **BASE_CONF,
            "spark.driver.memory": settings.driver_memory,
            "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
            **settings.conf,
        }
        for key, value in conf.items():
            builder = builder.config(key, value)
        active = builder.getOrCreate()
        active.sparkContext.setLogLevel("ERROR")
    for key in ("spark.sql.session.timeZone", "spark.sql.parquet.outputTimestampType"):
        active.conf.set(key, BASE_CONF[key])
    return active
