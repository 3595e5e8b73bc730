"""Feature rows as model input: numeric columns as floats, static attributes as categories.

Training, serving and monitoring all turn feature frames into XGBoost matrices here, so a
string attribute (plan, region, ...) is encoded the same way everywhere: as a pandas category
whose categories are those the model was trained with. A value the model never saw becomes
missing instead of an error, and XGBoost routes it like any missing value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xgboost as xgb


def is_categorical(series: pd.Series) -> bool:
    """Whether a feature column holds categories (strings) rather than numbers."""
    return bool(
        isinstance(series.dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(series.dtype)
        or pd.api.types.is_object_dtype(series.dtype)
    )


def known_categories(column: pd.Series) -> list[str]:
    """The distinct values of a categorical feature column, as sorted strings (missing values left out)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        present = column.dropna().unique()
    else:  # distinct values first: finding the missing ones among every row costs more than the hashing
        present = pd.unique(column.to_numpy())
        present = present[~pd.isna(present)]
    return sorted(str(v) for v in present)


def model_frame(
    frame: pd.DataFrame,
    features: Sequence[str],
    categories: Mapping[str, Sequence[str]] | None = None,
    *,
    copy: bool = True,
) -> pd.DataFrame:
    """The model's columns of `frame`, typed for XGBoost.

    Args:
        frame: Feature rows (extra columns are ignored).
        features: The model's features, in the model's order.
        categories: Categorical feature -> its known values (from training). None infers them
            from `frame` (training); a feature listed here is categorical even if `frame` holds
            no strings for it (e.g. all missing).
        copy: False: a float64 column of `frame` is taken as it is, not copied (XGBoost reads a
            frame column by column), so the result is for reading: change it and `frame` changes.

    Returns:
        A new frame: categorical features as `pd.Categorical`, the rest as float64.
    """
    categorical = {
        name for name in features if (name in categories if categories is not None else is_categorical(frame[name]))
    }
    columns: dict[str, np.ndarray | pd.Categorical] = {}
    for name in features:
        column = frame[name]
        if name in categorical:
            if categories is not None:
                # Strings as Arrow gives them to pandas (object, None for missing) are taken as they are.
                values = (
                    column.to_numpy() if column.dtype == object else column.astype("object").where(column.notna(), None)
                )
                columns[name] = pd.Categorical(values, categories=list(categories[name]))
            else:
                columns[name] = pd.Categorical(column.astype("object"), categories=known_categories(column))
        elif column.dtype == np.float64:
            columns[name] = column.to_numpy(copy=copy)
        else:
            columns[name] = pd.to_numeric(column, errors="coerce").astype("float64").to_numpy()
    # Each array becomes a column of its own (a frame built with copy=True would stack them into a block).
    return pd.DataFrame(columns, index=frame.index, columns=list(features), copy=False)


def dmatrix(frame: pd.DataFrame, label: pd.Series | np.ndarray | None = None) -> xgb.DMatrix:
    """An XGBoost matrix from a `model_frame` result (categories enabled)."""
    return xgb.DMatrix(frame, label=label, enable_categorical=True)


CATEGORIES_ATTR = "churn_categories"
"""Booster attribute (saved with the model) holding the category lists the booster was trained with."""


def remember_categories(booster: xgb.Booster, categories: Mapping[str, Sequence[str]]) -> xgb.Booster:
    """Store the training category lists in the booster itself.

    XGBoost codes a pandas category by its position in the category list; a saved and reloaded
    model (UBJSON through MLflow) keeps the 'categorical' feature types but not the lists, so
    serving must rebuild exactly the training lists from this attribute.
    """
    booster.set_attr(**{CATEGORIES_ATTR: json.dumps({k: list(v) for k, v in categories.items()})})
    return booster


def booster_categories(booster: xgb.Booster) -> dict[str, list[str]]:
    """The categorical features of a trained booster and the values it was trained with."""
    stored = booster.attr(CATEGORIES_ATTR)
    if stored:
        return {str(k): [str(v) for v in values] for k, values in json.loads(stored).items()}
    pairs = booster.get_categories(export_to_arrow=True).to_arrow() or []
    found = {name: [str(v) for v in values.to_pylist()] for name, values in pairs if values is not None}
    missing = [
        f for f, kind in zip(booster.feature_names or [], booster.feature_types or [], strict=False) if kind == "c"
    ]
    if set(missing) - set(found):
        raise ValueError(
            f"the model has categorical features {sorted(set(missing) - set(found))} without their categories: "
            "retrain it with this version of the platform"
        )
    return found


def booster_input(booster: xgb.Booster, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` typed as the booster was trained: its features, its categories (its float columns are
    `frame`'s own, `model_frame(copy=False)`: for reading)."""
    if not booster.feature_names:
        raise ValueError("the model has no feature names: train it on a DataFrame")
    return model_frame(frame, list(booster.feature_names), booster_categories(booster), copy=False)


def predict(booster: xgb.Booster, frame: pd.DataFrame) -> np.ndarray:
    """Churn probabilities of `frame`'s rows (the booster picks and types its own columns)."""
    return np.asarray(booster.predict(dmatrix(booster_input(booster, frame))))


def input_array(booster: xgb.Booster, frame: pd.DataFrame) -> np.ndarray:
    """`frame` as the model's input array: one column per feature in the booster's order, numbers as
    floats and categories as their code in the booster's training list (NaN when missing or unknown)."""
    typed = booster_input(booster, frame)
    columns = [
        np.where(typed[name].cat.codes < 0, np.nan, typed[name].cat.codes).astype(np.float64)
        if isinstance(typed[name].dtype, pd.CategoricalDtype)
        else typed[name].to_numpy(dtype=np.float64)
        for name in typed.columns
    ]
    return np.column_stack(columns) if columns else np.empty((len(frame), 0))
