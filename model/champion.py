"""Loading registered models: the champion, or any version, with its registry facts.

The one loader that serving, batch scoring, monitoring and the promotion gate share. MLflow is
imported inside the functions: the service imports this module before its workers start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core import names

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from model.bundle import ModelBundle


class NoChampionError(RuntimeError):
    """The registry has no usable champion; the message says what to run."""


@dataclass(frozen=True, eq=False)
class RegisteredModel:
    """One registered version: its bundle and what the registry knows of it."""

    name: str
    version: str
    run_id: str
    bundle: ModelBundle
    info: dict[str, Any] = field(default_factory=dict)
    """For GET /model and reports: name, version, run_id, trained_at, metrics (valid_* and test_*),
    feature_service."""

    @property
    def metrics(self) -> dict[str, float]:
        """The training run's validation and test metrics."""
        return dict(self.info.get("metrics", {}))


def champion_version(tracking_uri: str, model_name: str) -> tuple[str, str]:
    """The champion's version and run id.

    Raises:
        NoChampionError: No version has the champion alias; the message says how to train one.
    """
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        version = client.get_model_version_by_alias(model_name, names.CHAMPION_ALIAS)
    except MlflowException:
        where = f"no '{names.CHAMPION_ALIAS}' version of model '{model_name}' at {tracking_uri}"
        raise NoChampionError(f"{where}: {_next_step(client, model_name)}") from None
    return str(version.version), str(version.run_id)


def _next_step(client: MlflowClient, model_name: str) -> str:
    """What to run without a champion: train one, or, when the gate kept the newest version, why and how to override."""
    from mlflow.exceptions import MlflowException

    try:
        kept = [
            v for v in client.search_model_versions(f"name = '{model_name}'") if v.tags.get("gate.decision") == "keep"
        ]
    except MlflowException:
        kept = []
    if not kept:
        return "run `churn train` (or `churn quickstart`) first"
    newest = max(kept, key=lambda v: int(v.version))
    why = json.loads(newest.tags.get("gate.evidence", "{}")).get("reason", "see `churn champions`")
    return (
        f"the gate kept v{newest.version} out ({why}); improve the model and run `churn train`, or serve it "
        f'anyway with `churn promote {newest.version} --reason "..."`'
    )


def load_version(tracking_uri: str, model_name: str, version: str) -> RegisteredModel:
    """One registered version with its bundle and registry facts.

    Raises:
        NoChampionError: The version was not logged as a model bundle (an older platform logged
            the booster alone); the message says to retrain.
    """
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from model.pyfunc import load_bundle

    mlflow.set_tracking_uri(tracking_uri)
    client = _client(tracking_uri)
    registered = client.get_model_version(model_name, version)
    run_id = str(registered.run_id)
    try:
        bundle = load_bundle(f"models:/{model_name}/{version}")
    except (MlflowException, TypeError, KeyError, OSError) as exc:
        raise NoChampionError(
            f"model '{model_name}' v{version} is not a model bundle of this platform ({exc}): "
            "retrain with `churn train`"
        ) from None
    run = client.get_run(run_id)
    info = {
        "name": model_name,
        "version": version,
        "run_id": run_id,
        "trained_at": pd.Timestamp(run.info.start_time, unit="ms", tz="UTC").isoformat(),
        "metrics": {k: v for k, v in run.data.metrics.items() if k.startswith(("test_", "valid_"))},
        "feature_service": run.data.tags.get("feature_service", names.FEATURE_SERVICE),
    }
    return RegisteredModel(model_name, version, run_id, bundle, info)


def load_champion(tracking_uri: str, model_name: str) -> RegisteredModel:
    """`models:/<name>@champion` with its bundle and registry facts.

    Raises:
        NoChampionError: There is no champion, or it is not a model bundle; the message says what to run.
    """
    version, _ = champion_version(tracking_uri, model_name)
    return load_version(tracking_uri, model_name, version)


def _client(tracking_uri: str) -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri)
