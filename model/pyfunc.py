"""The model bundle as an MLflow pyfunc model: logged by training, loaded by everything else.

The model is logged "from code" (`model/mlflow_entry.py`), so loading it runs no unpickling; a
consumer needs this package installed (`pip install` the platform's wheel) beside MLflow. Kept
apart from `model.bundle` because it imports MLflow, which takes seconds to import.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import mlflow
import pandas as pd
import xgboost as xgb
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.types import ColSpec, Schema

from core import names
from model.bundle import ModelBundle, read_bundle, write_bundle

ARTIFACT_PATH = "model"
"""The bundle's name inside a training run (`runs:/<run>/model`)."""


class ChurnModel(PythonModel):
    """Calibrated churn probabilities from feature rows; the bundle itself is `.bundle`."""

    bundle: ModelBundle

    def load_context(self, context: PythonModelContext) -> None:
        """Read the bundle's files."""
        self.bundle = read_bundle(context.artifacts)

    def predict(self, context: PythonModelContext, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:  # noqa: ANN401
        """One row per input row: `churn_probability`."""
        return pd.DataFrame({names.PREDICTION: self.bundle.probabilities(model_input)}, index=model_input.index)


def signature(bundle: ModelBundle) -> ModelSignature:
    """What callers send and get: each feature (categories as strings, the rest as doubles, all optional)
    and the churn probability."""
    inputs = Schema(
        [ColSpec("string" if f in bundle.categories else "double", f, required=False) for f in bundle.features]
    )
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("double", names.PREDICTION)]))


def input_example(bundle: ModelBundle, frame: pd.DataFrame, rows: int = 3) -> pd.DataFrame:
    """A few rows of `frame` as callers send them: categories as strings, numbers as floats."""
    example = frame.head(rows)[bundle.features].copy()  # the rows first: not a copy of every row's features
    for feature in bundle.features:
        if feature in bundle.categories:
            example[feature] = example[feature].astype("object").where(example[feature].notna(), None)
        else:
            example[feature] = pd.to_numeric(example[feature], errors="coerce").astype("float64")
    return example


def log_bundle(
    bundle: ModelBundle,
    example: pd.DataFrame,
    registered_model_name: str | None = None,
    version_tags: Mapping[str, str] | None = None,
) -> Any:  # noqa: ANN401
    """Log the bundle to the active MLflow run as one pyfunc model, and register it when a name is given.

    Args:
        bundle: The model.
        example: Feature rows; the first few become the logged input example.
        registered_model_name: Register the logged model as a new version of this model; None: do not.
        version_tags: Tags of the new version, set as it is created (one registry write, not one per tag).

    Returns:
        MLflow's `ModelInfo` (its `registered_model_version` is the new version).
    """
    with TemporaryDirectory() as tmp:
        artifacts = write_bundle(bundle, Path(tmp))
        info = mlflow.pyfunc.log_model(
            name=ARTIFACT_PATH,
            python_model=str(Path(__file__).with_name("mlflow_entry.py")),
            artifacts=artifacts,
            signature=signature(bundle),
            input_example=input_example(bundle, example),
            # Stated, not inferred: inference runs `uv export` / scans the environment on every log.
            pip_requirements=[
                f"mlflow=={mlflow.__version__}",
                f"xgboost=={xgb.__version__}",
                f"pandas=={pd.__version__}",
            ],
        )
    if registered_model_name is not None:
        version = mlflow.register_model(info.model_uri, registered_model_name, tags=dict(version_tags or {}))
        info.registered_model_version = int(version.version)
    return info


def load_bundle(uri: str) -> ModelBundle:
    """The bundle of a logged model (`models:/<name>/<version>`, `runs:/<run>/model`, ...)."""
    model = mlflow.pyfunc.load_model(uri)
    python_model = model.unwrap_python_model()
    if not isinstance(python_model, ChurnModel):
        raise TypeError(f"{uri} is not a churn model bundle")
    return python_model.bundle
