"""The model bundle: everything that scores a customer, as one MLflow model.

Training logs one bundle per model version; serving, batch scoring, monitoring and the promotion
gate all load it (`model.champion`). It holds:

- the XGBoost booster (its feature names and the category lists it was trained with inside it);
- the probability calibration training chose, if any (`model.calibration`);
- a sample of the training features with the model's probabilities: the reference that drift
  reports compare against and that quantile CRM layers cut;
- the logistic regression blended with the trees, when training chose to blend (`model.linear`).

On disk it is a folder of plain files (`write_bundle`, `read_bundle`). In MLflow it is a pyfunc
model (`model.pyfunc`) whose artifacts are those files, so `models:/<name>@champion` alone is
enough for any MLflow consumer: `mlflow.pyfunc.load_model(uri).predict(frame)` gives calibrated
churn probabilities.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from core import names
from model.calibration import calibrate
from model.linear import CompiledLinear, LinearPart, blend_margin, sigmoid
from model.matrix import booster_categories, booster_input, dmatrix, input_array

BOOSTER = "booster"
CALIBRATION = "calibration"
REFERENCE = "reference"
LINEAR = "linear"
FILES = {
    BOOSTER: "booster.ubj",
    CALIBRATION: "calibration.json",
    REFERENCE: "reference.parquet",
    LINEAR: "linear.json",
}
"""The bundle's artifacts: name -> file name (the pyfunc's `artifacts` keys are the names)."""


@dataclass(eq=False)
class ModelBundle:
    """A trained churn model with its calibration and training reference sample."""

    booster: xgb.Booster
    calibration: dict[str, Any] | None = None
    """The calibration spec (`model.calibration.calibrator_spec`), or None: the booster's probabilities."""
    reference: pd.DataFrame | None = None
    """Training rows' features and `churn_probability` (None only for bundles made in tests)."""
    linear: LinearPart | None = None
    """The logistic regression blended with the trees (`model.linear`), or None: the trees alone."""
    categories: dict[str, list[str]] = field(init=False)
    """Categorical feature -> the values the booster was trained with."""
    compiled: CompiledLinear | None = field(init=False)
    """`linear` laid out for the model's input array."""

    def __post_init__(self) -> None:
        if not self.booster.feature_names:
            raise ValueError("the model has no feature names: train it on a DataFrame")
        self.categories = booster_categories(self.booster)
        self.compiled = CompiledLinear(self.linear, self.features, self.categories) if self.linear else None

    @property
    def features(self) -> list[str]:
        """The model's features, in its order."""
        return list(self.booster.feature_names or [])

    def raw_probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's churn probabilities of feature rows before calibration (trees, blended with the
        linear part when there is one)."""
        matrix = dmatrix(booster_input(self.booster, frame))
        if self.compiled is None:
            return np.asarray(self.booster.predict(matrix))
        trees = self.booster.predict(matrix, output_margin=True)
        linear = self.compiled.margin(input_array(self.booster, frame))
        return sigmoid(blend_margin(trees, linear, self.compiled.tree_weight))

    def probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated churn probabilities of feature rows, as every consumer of the model computes them.

        Args:
            frame: One row per customer with at least the model's features (extra columns ignored);
                categorical features as strings, numbers as numbers, missing values allowed.
        """
        return calibrate(self.calibration, self.raw_probabilities(frame))


def reference_sample(features: pd.DataFrame, probabilities: np.ndarray, size: int, seed: int) -> pd.DataFrame:
    """At most `size` training rows, their features and the model's `churn_probability`, drawn with `seed`."""
    n = min(size, len(features))
    return features.assign(**{names.PREDICTION: probabilities}).sample(n=n, random_state=seed)


def write_bundle(bundle: ModelBundle, folder: Path) -> dict[str, str]:
    """Write the bundle's files into `folder`.

    Returns:
        Artifact name -> file path (the `artifacts` of `mlflow.pyfunc.log_model`); a bundle without
        calibration or reference writes no file for it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = {BOOSTER: folder / FILES[BOOSTER]}
    bundle.booster.save_model(paths[BOOSTER])
    if bundle.calibration is not None:
        paths[CALIBRATION] = folder / FILES[CALIBRATION]
        paths[CALIBRATION].write_text(json.dumps(bundle.calibration), encoding="utf-8")
    if bundle.reference is not None:
        paths[REFERENCE] = folder / FILES[REFERENCE]
        bundle.reference.to_parquet(paths[REFERENCE], index=False)
    if bundle.linear is not None:
        paths[LINEAR] = folder / FILES[LINEAR]
        paths[LINEAR].write_text(json.dumps(bundle.linear.to_dict()), encoding="utf-8")
    return {k: str(v) for k, v in paths.items()}


def read_bundle(artifacts: Mapping[str, str]) -> ModelBundle:
    """The bundle whose files `artifacts` names (artifact name -> local path), as `write_bundle` wrote them."""
    booster = xgb.Booster()
    booster.load_model(artifacts[BOOSTER])
    calibration = None
    if CALIBRATION in artifacts:
        calibration = json.loads(Path(artifacts[CALIBRATION]).read_text(encoding="utf-8"))
    reference = pd.read_parquet(artifacts[REFERENCE]) if REFERENCE in artifacts else None
    linear = None
    if LINEAR in artifacts:
        linear = LinearPart.from_dict(json.loads(Path(artifacts[LINEAR]).read_text(encoding="utf-8")))
    return ModelBundle(booster, calibration, reference, linear)
