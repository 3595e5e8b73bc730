"""Typed configs: unknown keys and wrong types are errors naming the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import DEFAULT_CONFIG, ConfigError, Settings, load_settings, parse_settings, resolved_yaml

REPO = Path(__file__).resolve().parents[3]


def test_default_config_loads_and_matches_model_defaults() -> None:
    settings = load_settings(DEFAULT_CONFIG, env={})
    assert settings == Settings()
    assert settings.feast.online_store.type == "sqlite"
    assert settings.mlflow_uri.startswith("sqlite:///") and settings.mlflow_uri.endswith("workspace/mlflow/mlflow.db")


def test_every_config_in_configs_loads() -> None:
    for path in sorted((REPO / "configs").glob("*.yaml")):
        load_settings(path, env={})


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("training:\n  n_trails: 5\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, env={})
    assert "training.n_trails" in str(err.value)
    assert str(cfg) in str(err.value)
    assert "unknown key" in str(err.value)


def test_nested_unknown_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("feast:\n  online_store:\n    typ: redis\n")
    with pytest.raises(ConfigError, match=r"feast\.online_store\.typ"):
        load_settings(cfg, env={})


def test_wrong_type_names_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("generator:\n  customers: many\n")
    with pytest.raises(ConfigError, match=r"generator\.customers"):
        load_settings(cfg, env={})


def test_out_of_range_value_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"labels\.horizon_days"):
        parse_settings({"labels": {"horizon_days": 0}}, "inline", env={})
    with pytest.raises(ConfigError, match=r"labels\.kind"):
        parse_settings({"labels": {"kind": "sometimes"}}, "inline", env={})


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_settings(tmp_path / "nope.yaml", env={})
    cfg = tmp_path / "list.yaml"
    cfg.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(cfg, env={})


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.training.n_trials = 3  # type: ignore[misc]


def test_env_overrides_uris_and_secrets(tmp_path: Path) -> None:
    env = {
        "CHURN_MLFLOW_TRACKING_URI": "postgresql://u@127.0.0.1/mlflow",
        "CHURN_FEAST_ONLINE_STORE": "127.0.0.1:6379",
        "CHURN_API_KEY": "s3cret",
        "CHURN_WORKSPACE": str(tmp_path),
    }
    settings = load_settings(DEFAULT_CONFIG, env=env)
    assert settings.mlflow_uri == "postgresql://u@127.0.0.1/mlflow"
    assert settings.feast.online_store.connection_string == "127.0.0.1:6379"
    assert settings.serving.api_key == "s3cret"
    assert settings.path("raw") == tmp_path / "raw"
    dumped = resolved_yaml(settings)
    assert "s3cret" not in dumped and "***" in dumped


def test_config_env_selects_file(tmp_path: Path) -> None:
    cfg = tmp_path / "small.yaml"
    cfg.write_text("generator:\n  customers: 10\n")
    assert load_settings(env={"CHURN_CONFIG": str(cfg)}).generator.customers == 10
