"""Typed settings: `configs/*.yaml` mapped onto frozen pydantic models.

`Settings` holds one section per top-level key (the models are in `core.config_sections` and
`core.crm_settings`). Every model forbids unknown keys, so a typo in a config is an error that
names the key and the file. URIs and secrets can be overridden by `CHURN_*` environment variables
(see `ENV_OVERRIDES`). Relative paths in a config are relative to the workspace directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from core.config_sections import (
    DataSettings,
    FeastSettings,
    FeatureSettings,
    GeneratorSettings,
    LabelSettings,
    ServingSettings,
    TrainingSettings,
)
from core.crm_settings import CrmSettings, check_playbook
from core.monitoring_settings import MonitoringSettings
from core.stream_settings import StreamSettings

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"
"""The embedded default config, used when no `--config` is given."""

CONFIG_ENV = "CHURN_CONFIG"
"""Environment variable naming the config file (used by the serving process)."""

ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "CHURN_WORKSPACE": ("workspace",),
    "CHURN_MLFLOW_TRACKING_URI": ("training", "tracking_uri"),
    "CHURN_OPTUNA_STORAGE": ("training", "optuna_storage"),
    "CHURN_FEAST_REGISTRY": ("feast", "registry"),
    "CHURN_FEAST_ONLINE_STORE": ("feast", "online_store", "connection_string"),
    "CHURN_API_KEY": ("serving", "api_key"),
    "CHURN_STREAM_REDIS_URL": ("stream", "redis_url"),
    "CHURN_WEBHOOK_URL": ("stream", "webhook_url"),
    "CHURN_WEBHOOK_SECRET": ("stream", "webhook_secret"),
}
"""Environment variable -> settings path it overrides (URIs and secrets only)."""


class ConfigError(ValueError):
    """A config file that cannot be read or does not match the settings schema."""


class Settings(BaseModel):
    """The whole platform's settings, as loaded from one config file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workspace: str = "workspace"
    """Where data, stores and reports go; relative to the current directory."""
    data: DataSettings = DataSettings()
    generator: GeneratorSettings = GeneratorSettings()
    features: FeatureSettings = FeatureSettings()
    labels: LabelSettings = LabelSettings()
    feast: FeastSettings = FeastSettings()
    training: TrainingSettings = TrainingSettings()
    serving: ServingSettings = ServingSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    crm: CrmSettings = CrmSettings()
    stream: StreamSettings = StreamSettings()

    @model_validator(mode="after")
    def _playbook_matches_tiers(self) -> Settings:
        problems = check_playbook(self.crm, tuple(self.serving.risk_tiers))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def path(self, relative: str | Path) -> Path:
        """Resolve a path from the config against the workspace (absolute paths pass through)."""
        p = Path(relative)
        return p if p.is_absolute() else Path(self.workspace).resolve() / p

    @property
    def mlflow_uri(self) -> str:
        """MLflow tracking URI: the configured one or a SQLite file in the workspace."""
        return self.training.tracking_uri or f"sqlite:///{self.path('mlflow/mlflow.db')}"

    @property
    def mlflow_artifacts(self) -> str:
        """Artifact root of new MLflow experiments in the embedded profile."""
        return self.path("mlflow/artifacts").as_uri()

    @property
    def optuna_uri(self) -> str:
        """Optuna storage URI: the configured one or a SQLite file in the workspace."""
        return self.training.optuna_storage or f"sqlite:///{self.path('optuna/optuna.db')}"


def _set_path(tree: dict[str, Any], keys: tuple[str, ...], value: str) -> None:
    node = tree
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = value


REMOVED_KEYS = {
    "serving.batching": "adaptive batching was removed: it lost to scoring in the API process at every measured "
    "load; delete the key (more throughput: serving.workers)",
}
"""Keys that earlier versions took, with what to do instead: an error names them, not just 'unknown'."""


def _describe(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden" and where in REMOVED_KEYS:
        return f"key '{where}': {REMOVED_KEYS[where]}"
    if error["type"] == "extra_forbidden":
        return f"unknown key '{where}' (check its spelling against configs/default.yaml)"
    return f"key '{where}': {error['msg']}"


def parse_settings(raw: Mapping[str, Any], source: str, env: Mapping[str, str] | None = None) -> Settings:
    """Validate a config mapping, with `CHURN_*` overrides from `env` applied on top.

    Args:
        raw: The parsed YAML mapping.
        source: Where it came from, named in errors.
        env: Environment to read overrides from; `os.environ` when None.

    Returns:
        The frozen settings.

    Raises:
        ConfigError: A key is unknown or a value has the wrong type; the message names both.
    """
    tree: dict[str, Any] = _deep_copy(raw)
    environ = os.environ if env is None else env
    for var, keys in ENV_OVERRIDES.items():
        if environ.get(var):
            _set_path(tree, keys, environ[var])
    try:
        return Settings.model_validate(tree)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


def _deep_copy(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in raw.items()}


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load settings from a YAML file (the embedded default when `path` is None).

    Args:
        path: Config file; None reads `$CHURN_CONFIG` or else `configs/default.yaml`.
        env: Environment for `CHURN_*` overrides; `os.environ` when None.

    Returns:
        The frozen settings.

    Raises:
        ConfigError: The file is missing, is not a YAML mapping, or does not match the schema.
    """
    environ = os.environ if env is None else env
    chosen = Path(path or environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    try:
        text = chosen.read_text()
    except OSError as exc:
        raise ConfigError(f"{chosen}: cannot read config ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{chosen}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{chosen}: expected a mapping of settings at the top level")
    return parse_settings(raw, str(chosen), environ)


def resolved_yaml(settings: Settings) -> str:
    """The resolved settings as YAML, with secrets masked: what every job logs."""
    data = settings.model_dump(mode="json")
    if data["serving"].get("api_key"):
        data["serving"]["api_key"] = "***"
    if data["stream"].get("webhook_secret"):
        data["stream"]["webhook_secret"] = "***"
    return yaml.safe_dump(data, sort_keys=False)
