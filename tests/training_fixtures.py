"""A small real training workspace (generated CRM data -> ingest -> features -> Feast), shared by training tests.

Build it once per module with `build_workspace` and derive per-test settings with `settings_for`
(another Optuna storage, another model name) without rebuilding the data. Worker processes read
their settings from a YAML file: `write_config` writes one that loads back to the same settings.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from core.settings import Settings, load_settings, parse_settings

SMALL_TRAINING: dict[str, Any] = {"n_trials": 6, "max_rounds": 80, "gate": {"must_beat_baselines": False}}
"""Training settings of the small workspace: few trials, few rounds (seconds per trial). On 600
generated customers the test rows are too few for a model to beat the logistic regression reliably,
so the baseline rule is off here: the tests using this workspace need a champion for other reasons
(the rule itself is tested in tests/integration/test_training.py)."""


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else value
        )
    return out


def settings_for(ws: Path, **training: Any) -> Settings:
    """Settings of the workspace `ws`, with `training` keys on top of `SMALL_TRAINING`.

    No `CHURN_*` environment overrides apply, so a developer's environment cannot redirect tests.
    """
    raw = {"workspace": str(ws), "training": _merge(SMALL_TRAINING, training)}
    return parse_settings(raw, source="test", env={})


def build_workspace(ws: Path, customers: int = 600, days: int = 220, seed: int = 3) -> Settings:
    """Generate, ingest and featurize a small CRM data set in `ws`, and apply it to Feast.

    220 days give the default split enough labelled observation dates.

    Returns:
        The workspace's settings (`settings_for(ws)`).
    """
    from features.generator.dataset import generate, write_generated
    from features.ingest import ingest
    from features.pipeline import apply_features, build_features

    settings = settings_for(ws)
    customers_path, events_path = write_generated(generate(customers, days, seed=seed), ws / "raw")
    ingest(settings, customers_path=customers_path, events_path=events_path)
    build_features(settings)
    apply_features(settings)
    return settings


def write_config(settings: Settings, path: Path) -> Path:
    """Write `settings` as a config file a `churn` process loads back to equal settings."""
    data = settings.model_dump(mode="json")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    loaded = load_settings(path, env={})
    if loaded != settings:
        raise AssertionError(f"{path} does not load back to the settings it was written from")
    return path


def unique_name(prefix: str) -> str:
    """A study or model name no other test (or test run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def churn_env(**extra: str) -> dict[str, str]:
    """Environment of a `churn` subprocess: this one without `CHURN_*` variables that would redirect it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_") and k != "MLFLOW_RUN_ID"}
    return {**env, "COLUMNS": "200", **extra}


def churn_command(*args: str) -> list[str]:
    """`python -m churn ARGS` with this interpreter."""
    return [sys.executable, "-m", "churn", *args]
