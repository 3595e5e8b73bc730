"""The prediction log's format and its reader: what serving writes and monitoring reads.

The log is a folder of Parquet part files `date=YYYY-MM-DD/part-<time>-<id>.parquet`, one row per
scored customer (`serving.prediction_log` writes them). Monitoring reads them here, so it needs
nothing of serving.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd

from core import names

LOGGED_AT = "logged_at"
MODEL_VERSION = "model_version"
FEATURE_PREFIX = "feature."
"""A part file holds each scored feature in a column of its own, `feature.<name>` (the features of
the rows in that file: feature sets differ between models)."""
FEATURES = "features"
"""Where parts written before FEATURE_PREFIX held the scored feature row, as JSON text."""


def read_prediction_log(root: Path, start: dt.datetime | None = None, end: dt.datetime | None = None) -> pd.DataFrame:
    """Logged rows with `start <= logged_at < end`, features expanded into columns.

    Returns:
        logged_at, customer_id, model_version, churn_probability and one column per feature;
        empty when nothing was logged in the window.
    """
    files = sorted(Path(root).glob("date=*/part-*.parquet"))
    if start is not None:
        first = start.date().isoformat()
        files = [f for f in files if f.parent.name.removeprefix("date=") >= first]
    if end is not None:
        last = end.date().isoformat()
        files = [f for f in files if f.parent.name.removeprefix("date=") <= last]
    if not files:
        return pd.DataFrame(columns=[LOGGED_AT, names.CUSTOMER_ID, MODEL_VERSION, names.PREDICTION])
    frame = pd.concat([_features_expanded(pd.read_parquet(f)) for f in files], ignore_index=True)
    if start is not None:
        frame = frame[frame[LOGGED_AT] >= pd.Timestamp(start)]
    if end is not None:
        frame = frame[frame[LOGGED_AT] < pd.Timestamp(end)]
    return frame.reset_index(drop=True)


def _features_expanded(part: pd.DataFrame) -> pd.DataFrame:
    """A part file's rows with one column per feature, named as the feature.

    Parts written before the features had columns of their own hold them as JSON text (`features`).
    """
    if FEATURES in part.columns:
        expanded = pd.DataFrame([json.loads(f) for f in part[FEATURES]], index=part.index)
        return pd.concat([part.drop(columns=FEATURES), expanded], axis=1)
    return part.rename(columns=lambda c: c.removeprefix(FEATURE_PREFIX))
