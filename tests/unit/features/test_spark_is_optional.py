"""The Spark engine is optional: the default install has no pyspark, so nothing imports it unless chosen."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.settings import ConfigError, parse_settings


def test_importing_the_feature_jobs_and_the_cli_does_not_import_pyspark() -> None:
    code = (
        "import sys, features.pipeline, features.feast_repo, features.snapshots.build, churn.cli;"
        "print(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('pyspark', 'py4j') or m.startswith('features.spark')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_engine_defaults_to_duckdb_and_names_its_key_when_wrong() -> None:
    assert parse_settings({}, "test", env={}).features.engine == "duckdb"
    with pytest.raises(ConfigError, match=r"features\.engine"):
        parse_settings({"features": {"engine": "sparkle"}}, "test", env={})
