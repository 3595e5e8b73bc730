"""Training sets: point-in-time feature rows from Feast joined to labels, and out-of-time splits."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
from feast import FeatureStore

from churn import names
from features.matrix import model_frame
from features.pipeline import historical_features


@dataclass(frozen=True)
class Split:
    """An out-of-time split: earlier observation dates train, later ones validate."""

    train: pd.DataFrame
    valid: pd.DataFrame
    features: tuple[str, ...]
    categories: dict[str, list[str]] = field(default_factory=dict)
    """Categorical feature -> the values seen in `train` (others become missing)."""

    def xy(self, part: str) -> tuple[pd.DataFrame, pd.Series]:
        """Model-typed features (see `features.matrix`) and label of `train` or `valid`."""
        frame = getattr(self, part)
        return model_frame(frame, self.features, self.categories), frame[names.LABEL]


def historical_frame(store: FeatureStore, labels: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time correct feature rows for each labelled (customer, observation date).

    Args:
        store: The Feast store with the churn feature service applied.
        labels: Columns customer_id, event_timestamp, churned (the entity dataframe).

    Returns:
        `labels` plus every feature of the feature service, as Feast joined them.
    """
    return historical_features(store, labels, names.FEATURE_SERVICE)


def out_of_time_split(frame: pd.DataFrame, features: list[str], valid_fraction: float) -> Split:
    """Hold out the latest observation dates for validation.

    Args:
        frame: Columns customer_id, event_timestamp, churned and the features.
        features: Model features.
        valid_fraction: Share of the distinct observation dates (the latest) used for validation.

    Returns:
        The split, each part sorted by time then customer.
    """
    dates = sorted(frame[names.EVENT_TIMESTAMP].unique())
    if len(dates) < 2:
        raise ValueError(f"an out-of-time split needs at least 2 labelled observation dates, got {len(dates)}")
    n_valid = min(len(dates) - 1, max(1, math.ceil(len(dates) * valid_fraction)))
    first_valid = dates[-n_valid]
    ordered = frame.sort_values([names.EVENT_TIMESTAMP, names.CUSTOMER_ID]).reset_index(drop=True)
    is_valid = ordered[names.EVENT_TIMESTAMP] >= first_valid
    train = ordered[~is_valid].reset_index(drop=True)
    typed = model_frame(train, features)
    categories = {c: list(typed[c].cat.categories) for c in features if isinstance(typed[c].dtype, pd.CategoricalDtype)}
    return Split(train, ordered[is_valid].reset_index(drop=True), tuple(features), categories)
