"""The model bundle: everything that scores a customer, as one MLflow model.

Training logs one bundle per model version; serving, batch scoring, monitoring and the promotion
gate all load it (`model.champion`). It holds:

- the XGBoost booster (its feature names and the category lists it was trained with inside it);
- the probability calibration training chose, if any (`model.calibration`);
- a sample of the newest labelled rows' features with the model's probabilities
  (`reference_sample`): the reference that drift reports compare against and that quantile CRM
  layers cut;
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
    """A trained churn model with its calibration and drift reference sample."""

    booster: xgb.Booster
    calibration: dict[str, Any] | None = None
    """The calibration spec (`model.calibration.calibrator_spec`), or None: the booster's probabilities."""
    reference: pd.DataFrame | None = None
    """The newest labelled rows' features and `churn_probability` (`reference_sample`; None only in tests)."""
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


def reference_dates(stamps: pd.Series, size: int) -> pd.Index:
    """The observation dates the drift reference is drawn from: whole dates among `stamps`, from the
    newest back until they hold at least `size` rows (every date when there are fewer)."""
    per_date = stamps.value_counts().sort_index(ascending=False)
    return per_date.index[: int(np.searchsorted(per_date.cumsum().to_numpy(), size)) + 1]


def reference_sample(bundle: ModelBundle, rows: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """The drift reference: `size` rows of the newest observation dates, their features and churn probabilities.

    Whole observation dates are taken from the newest back until they hold at least `size` rows;
    `size` of those rows are drawn with `seed` and scored by `bundle`. The newest dates, not the
    whole training period: features such as 90-day counts, purchase gaps and tenure grow with the
    history behind an observation date, so early dates differ from what the model scores in
    production for reasons that are not drift, and a reference drawn from them flags drift on
    data that has none.

    Args:
        bundle: The model that scores the rows.
        rows: Labelled rows with `event_timestamp` and the model's features (the training set,
            every part of its split).
        size: Rows to keep (fewer when `rows` has fewer).
        seed: Seed of the draw.

    Returns:
        The model's features and `churn_probability`.
    """
    stamps = rows[names.EVENT_TIMESTAMP]
    dates = reference_dates(stamps, size)
    # The draw over positions of the newest rows (the same rows `sample` of their frame draws), and then
    # only the drawn rows copied: not every column of the newest dates' rows first.
    newest = np.flatnonzero(stamps.isin(dates).to_numpy())
    drawn = pd.Series(newest).sample(n=min(size, len(newest)), random_state=seed).to_numpy()
    sample = rows.iloc[drawn][bundle.features]
    return sample.assign(**{names.PREDICTION: bundle.probabilities(sample)}).reset_index(drop=True)


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
