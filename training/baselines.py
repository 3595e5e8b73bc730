"""Simple baselines a churn model must beat: a logistic regression and a recency rule.

`baseline_scores` scores the model's test rows with each, so that `training.metrics.evaluate`
measures them on the same rows as the model (the report puts them side by side); BG/NBD, the
third baseline for activity labels, is in `features.btyd` and `training.evaluation`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from model.calibration import as_labels
from model.linear import MISSING
from model.matrix import is_categorical

RECENCY_FALLBACK = "engagement_days_since_last_activity"
"""The recency rule's feature when the requested one is absent."""


def model_columns(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(numeric, categorical) columns; others (dates, ...) are not baseline inputs."""
    numeric, categorical = [], []
    for name in frame.columns:
        column = frame[name]
        if is_categorical(column):
            categorical.append(str(name))
        elif pd.api.types.is_numeric_dtype(column.dtype):
            numeric.append(str(name))
    return numeric, categorical


def baseline_input(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    out = {name: pd.to_numeric(frame[name], errors="coerce").astype("float64") for name in numeric}
    for name in categorical:
        column = frame[name].astype("object")
        out[name] = column.where(column.notna(), MISSING).astype(str)
    return pd.DataFrame(out, index=frame.index)


def column_median(values: np.ndarray) -> float:
    """The median of one column's present values, 0.0 when it has none (`SimpleImputer`'s strategy).

    `SimpleImputer(strategy="median")` takes the median of a masked array, which sorts every
    column with the mask; this is the same number from a partition of the present values.
    """
    return float(np.median(values)) if values.size else 0.0


def logistic_baseline(train_frame: pd.DataFrame, y_train: npt.ArrayLike) -> Pipeline:
    """A fitted logistic regression on every numeric and string/category column of `train_frame`.

    Numeric columns: median imputation (`column_median`), standard scaling. String/category
    columns (missing as its own value): one-hot, unknown values ignored. Other columns (dates,
    ...) are dropped. Fitted by Newton steps with a Cholesky solve (`newton-cholesky`): on many
    more rows than columns it reaches the optimum in a few passes over the rows, where L-BFGS
    stops at its default tolerance short of it.
    """
    numeric, categorical = model_columns(train_frame)
    if not numeric and not categorical:
        raise ValueError("the training frame has no numeric or categorical columns")
    encode = ColumnTransformer(
        [
            (
                "numeric",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy=column_median, keep_empty_features=True)),
                        ("scale", StandardScaler()),
                    ]
                ),
                numeric,
            ),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    model = Pipeline([("encode", encode), ("classify", LogisticRegression(max_iter=1000, solver="newton-cholesky"))])
    rows = baseline_input(train_frame, numeric, categorical)
    # One BLAS thread: the Newton steps' matrix products are small enough that a second thread
    # gains little, and a thread that has to wait for a core (a busy machine) stalls the other.
    with threadpool_limits(limits=1, user_api="blas"):
        return model.fit(rows, as_labels(y_train))


def recency_rule(days_since: pd.Series | npt.ArrayLike) -> np.ndarray:
    """Risk scores of the recency rule: the percentile rank of days since last purchase/activity.

    More days is more risk; a missing value (never purchased) is the highest risk. Ties share
    their average rank, so scores lie in (0, 1].
    """
    days = pd.to_numeric(pd.Series(np.asarray(days_since).ravel()), errors="coerce").astype("float64")
    return np.asarray(days.fillna(np.inf).rank(method="average", pct=True), dtype=np.float64)


def baseline_scores(
    train_frame: pd.DataFrame,
    y_train: npt.ArrayLike,
    test_frame: pd.DataFrame,
    *,
    recency_feature: str = "purchases_days_since_last",
    model: Pipeline | None = None,
) -> dict[str, np.ndarray]:
    """Scores of simple baselines for the test rows, to evaluate on the same data as the model.

    - "logistic_regression": `logistic_baseline` fitted on the train rows (pass feature columns
      only: ids and labels would leak), its probabilities of the test rows.
    - "recency_rule": `recency_rule` of the test rows' `recency_feature`, or of
      `engagement_days_since_last_activity` when that is absent; skipped (no key) when the test
      frame has neither column. Rank-scaled, so it is a ranking, not a calibrated probability.
    - "activity_rule": the same of days since any activity, when the frame has both columns.

    Args:
        train_frame: Feature rows to fit the logistic regression on.
        y_train: Their labels.
        test_frame: Feature rows to score (the model's test rows).
        recency_feature: Days since the last purchase.
        model: The logistic regression already fitted on `train_frame` (fitted here when None).

    Returns:
        Baseline name -> one score in [0, 1] per test row.
    """
    model = model if model is not None else logistic_baseline(train_frame, y_train)
    numeric, categorical = model_columns(train_frame)
    scores = {
        "logistic_regression": np.asarray(
            model.predict_proba(baseline_input(test_frame, numeric, categorical))[:, 1], dtype=np.float64
        )
    }
    for name in (recency_feature, RECENCY_FALLBACK):
        if name in test_frame.columns:
            scores["recency_rule"] = recency_rule(test_frame[name])
            break
    if recency_feature in test_frame.columns and RECENCY_FALLBACK in test_frame.columns:
        scores["activity_rule"] = recency_rule(test_frame[RECENCY_FALLBACK])
    return scores
