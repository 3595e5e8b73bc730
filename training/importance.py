"""Global feature importance of a booster from its SHAP values (an explanation, no plotting).

`training.plots` draws it and `training.report` lists its top features; both show the same
`top_features`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xgboost as xgb

from model import treeshap
from model.matrix import booster_input, dmatrix, input_array

TOP_FEATURES = 20
"""Features shown in the importance chart and in the report."""
EXPLAINED_ROWS = 5_000
"""A training run's importance explains at most this many held-out rows (a seeded sample): a mean
|SHAP| settles long before, and the cost grows with the rows."""


def shap_importance(booster: xgb.Booster, data: xgb.DMatrix | pd.DataFrame) -> pd.Series:
    """Global SHAP importance: each feature's mean |contribution| to the margin (XGBoost `pred_contribs`).

    Args:
        booster: A trained binary booster (categorical features are fine).
        data: Rows to explain: a DMatrix, or a frame that is typed as the booster was trained
            (`model.matrix.booster_input`, extra columns ignored).

    Returns:
        Feature -> mean |SHAP value| in log-odds, the bias excluded, sorted descending.
    """
    tables = treeshap.build(booster) if isinstance(data, pd.DataFrame) and len(data) else None
    if tables is not None:  # the same numbers as `pred_contribs` (model.treeshap), a fraction of its time
        assert isinstance(data, pd.DataFrame)
        contributions = treeshap.contributions(tables, input_array(booster, data).astype(np.float32))
        names: Sequence[str] = list(booster.feature_names or [])
    else:
        matrix = data if isinstance(data, xgb.DMatrix) else dmatrix(booster_input(booster, data))
        if matrix.num_row() == 0:
            raise ValueError("no rows to explain")
        contributions = np.asarray(booster.predict(matrix, pred_contribs=True), dtype=np.float64)
        if contributions.ndim != 2:
            raise ValueError("SHAP importance supports single-output (binary) boosters only")
        names = matrix.feature_names or booster.feature_names or [f"f{i}" for i in range(contributions.shape[1] - 1)]
    importance = pd.Series(np.abs(contributions[:, :-1]).mean(axis=0), index=list(names), name="mean_abs_shap")
    return importance.sort_values(ascending=False, kind="stable")


def held_out_importance(booster: xgb.Booster, valid: pd.DataFrame, train: pd.DataFrame, seed: int) -> pd.Series:
    """A training run's SHAP importance: of its validation rows, or of its training rows when it has
    none (cross-validated), at most `EXPLAINED_ROWS` of them, sampled with `seed`."""
    explained = valid if len(valid) else train
    if len(explained) > EXPLAINED_ROWS:
        explained = explained.sample(n=EXPLAINED_ROWS, random_state=seed)
    return shap_importance(booster, explained)


def top_features(importance: pd.Series, top: int = TOP_FEATURES) -> pd.Series:
    """The `top` most important features, the most important first (ties keep their order).

    Args:
        importance: Feature -> importance, e.g. `shap_importance`.
        top: How many to keep.
    """
    return importance.sort_values(ascending=False, kind="stable").head(top)
