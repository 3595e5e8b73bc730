"""The Spark feature engine against the DuckDB engine on the same generated data: every feature
column and every label equal (floats within 1e-9), on a full build and on an incremental rebuild
after new days of data; and `churn features build --engine spark` from the CLI."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from core import names
from core.io import write_atomic_parquet
from core.settings import Settings, parse_settings
from features.generator.dataset import generate, write_generated
from features.ingest import ingest
from features.labels import compute_labels
from features.paths import BuildResult, FeaturePaths
from features.pipeline import build_features

KEYS = [names.EVENT_TIMESTAMP, names.CUSTOMER_ID]


def _settings(workspace: Path, engine: str) -> Settings:
    tree = {"workspace": str(workspace), "features": {"first_observation_after_days": 28, "engine": engine}}
    return parse_settings(tree, source="test", env={})


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Clean (ingested) data of 200 customers over 100 days, seeded."""
    root = tmp_path_factory.mktemp("generated")
    customers, events = write_generated(generate(200, 100, seed=7), root / "raw")
    ingest(_settings(root, "duckdb"), customers_path=customers, events_path=events)
    return root / "clean"


def _truncate(clean: Path, out: Path, last_day: dt.date) -> None:
    """The data as it looked when `last_day` was the newest day."""
    cut = pd.Timestamp(last_day + dt.timedelta(days=1), tz="UTC")
    events = pd.read_parquet(clean / "events.parquet")
    write_atomic_parquet(events[events[names.EVENT_TIMESTAMP] < cut], out / "events.parquet")
    customers = pd.read_parquet(clean / "customers.parquet")
    customers = customers[customers[names.SIGNUP_DATE] < cut.tz_localize(None)].copy()
    customers.loc[customers[names.CHURN_DATE] >= cut.tz_localize(None), names.CHURN_DATE] = pd.NaT
    write_atomic_parquet(customers, out / "customers.parquet")


def _assert_same(duck: pd.DataFrame, spark: pd.DataFrame, what: str) -> None:
    """Same columns in the same order, same keys, every value equal (floats within 1e-9, nulls alike)."""
    assert list(spark.columns) == list(duck.columns), what
    duck = duck.sort_values(KEYS).reset_index(drop=True)
    spark = spark.sort_values(KEYS).reset_index(drop=True)
    assert len(duck) == len(spark) > 0, what
    for column in duck.columns:
        a, b = duck[column], spark[column]
        if a.dtype.kind == "f":
            assert b.dtype.kind == "f", (what, column, b.dtype)
            np.testing.assert_allclose(b.to_numpy(), a.to_numpy(), rtol=1e-9, atol=1e-9, err_msg=f"{what}: {column}")
        else:
            assert a.dtype == b.dtype, (what, column, a.dtype, b.dtype)
            assert a.isna().equals(b.isna()) and a[a.notna()].equals(b[b.notna()]), (what, column)


def _compare_builds(duck: Settings, spark: Settings, what: str) -> None:
    for file in ("snapshots", "labels"):
        _assert_same(
            pd.read_parquet(getattr(FeaturePaths.of(duck), file)),
            pd.read_parquet(getattr(FeaturePaths.of(spark), file)),
            f"{what} {file}",
        )


def test_spark_engine_equals_duckdb_full_and_incremental(tmp_path: Path, generated: Path, spark: Any) -> None:
    last = pd.read_parquet(generated / "events.parquet")[names.EVENT_TIMESTAMP].max().date()
    engines = {e: _settings(tmp_path / e, e) for e in ("duckdb", "spark")}
    first: dict[str, BuildResult] = {}
    for engine, settings in engines.items():
        _truncate(generated, tmp_path / engine / "clean", last - dt.timedelta(days=10))
        first[engine] = build_features(settings)
    assert first["spark"].features == first["duckdb"].features
    # Every family of the generated data is there: windows, trends, RFM, categories, BG/NBD, attributes.
    assert {"purchases_categories_30d", "purchases_rfm_monetary", "purchases_btyd_p_alive", "profile_plan"} <= set(
        first["spark"].features
    )
    _compare_builds(engines["duckdb"], engines["spark"], "full build")

    # Ten more days of events, signups and churns: each engine rebuilds only the dates they touch.
    again: dict[str, BuildResult] = {}
    for engine, settings in engines.items():
        shutil.rmtree(tmp_path / engine / "clean")
        shutil.copytree(generated, tmp_path / engine / "clean")
        again[engine] = build_features(settings)
    assert again["spark"].recomputed_dates == again["duckdb"].recomputed_dates
    assert 0 < len(again["spark"].recomputed_dates) < len(again["spark"].observation_dates)
    _compare_builds(engines["duckdb"], engines["spark"], "incremental rebuild")
    assert (again["spark"].rows, again["spark"].labelled_rows) == (again["duckdb"].rows, again["duckdb"].labelled_rows)

    # Activity labels (the build above labels by contract) from the same keys.
    from features.spark.labels import compute_labels as spark_labels

    paths = FeaturePaths.of(engines["spark"])
    keys = pd.read_parquet(paths.snapshots, columns=[names.CUSTOMER_ID, names.EVENT_TIMESTAMP])
    options: dict[str, Any] = {"kind": "activity", "horizon_days": 30, "last_event_day": last}
    expected = compute_labels(keys, pd.read_parquet(paths.clean_customers), paths.clean_events, **options)
    got = spark_labels(spark, paths.snapshots, paths.clean_customers, paths.clean_events, **options)
    _assert_same(expected, got, "activity labels")
    assert 0 < expected[names.LABEL].mean() < 1


def test_cli_builds_features_on_spark(tmp_path: Path, generated: Path, spark: Any) -> None:
    from churn.cli import app

    shutil.copytree(generated, tmp_path / "clean")
    config = tmp_path / "tiny.yaml"
    config.write_text(f"workspace: {tmp_path}\nfeatures:\n  first_observation_after_days: 28\n")
    runner = CliRunner()
    args = ["features", "build", "--config", str(config)]
    result = runner.invoke(app, [*args, "--engine", "spark"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "snapshot rows" in result.output and "labelled" in result.output
    built = pd.read_parquet(tmp_path / "features/snapshots.parquet")
    assert built[names.CUSTOMER_ID].nunique() > 100 and "purchases_btyd_p_silent" in built.columns
    # Unchanged data: nothing to recompute, on either engine.
    result = runner.invoke(app, [*args, "--engine", "spark"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "(0 computed" in result.output, result.output
    result = runner.invoke(app, [*args, "--engine", "sparkle"], env={"COLUMNS": "200"})
    assert result.exit_code != 0 and "features.engine" in result.output and "Traceback" not in result.output
