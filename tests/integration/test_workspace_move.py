"""A workspace moved after MLflow wrote to it: detected, and relocated so that nothing reads the old place."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient

from churn.workspace import moved_from, relocate
from core.settings import Settings, parse_settings


class _Doubler(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    def predict(self, context: object, model_input: pd.DataFrame) -> pd.DataFrame:
        return model_input * 2


def _settings(ws: Path) -> Settings:
    return parse_settings({"workspace": str(ws)}, "test", env={})


def _fill(settings: Settings) -> None:
    """An experiment at the workspace's artifact root, as training creates it: a run with a file, a registered model."""
    settings.path("mlflow").mkdir(parents=True)
    mlflow.set_tracking_uri(settings.mlflow_uri)
    experiment = mlflow.create_experiment("churn", artifact_location=settings.mlflow_artifacts)
    with mlflow.start_run(experiment_id=experiment):
        mlflow.log_text("hello", "notes/hello.txt")
        mlflow.pyfunc.log_model(name="model", python_model=_Doubler(), registered_model_name="m", pip_requirements=[])


def test_a_moved_workspace_is_detected_and_relocated(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    _fill(_settings(old))
    assert moved_from(_settings(old)) == ()

    shutil.move(old, new)
    settings = _settings(new)
    assert moved_from(settings) == ((old / "mlflow" / "artifacts").as_uri(),)

    done = relocate(settings)
    assert done.old_roots == ((old / "mlflow" / "artifacts").as_uri(),)
    assert done.new_root == settings.mlflow_artifacts
    assert done.rows >= 4  # the experiment, the run, the logged model, the model version
    assert moved_from(settings) == ()
    assert relocate(settings).rows == 0  # a second run changes nothing

    # Everything resolves under the new place; the old one does not exist.
    assert not old.exists()
    client = MlflowClient(settings.mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("churn").experiment_id])
    assert run.info.artifact_uri.startswith(settings.mlflow_artifacts + "/")
    assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/notes/hello.txt") == "hello"
    assert client.get_model_version_download_uri("m", "1").startswith(settings.mlflow_artifacts + "/")
    model = mlflow.pyfunc.load_model("models:/m/1")
    assert model.predict(pd.DataFrame({"x": [1.0, 2.0]}))["x"].tolist() == [2.0, 4.0]


def test_a_store_elsewhere_is_never_relocated(tmp_path: Path) -> None:
    settings = parse_settings(
        {"workspace": str(tmp_path), "training": {"tracking_uri": f"sqlite:///{tmp_path / 'other.db'}"}}, "test", env={}
    )
    assert moved_from(settings) == ()
