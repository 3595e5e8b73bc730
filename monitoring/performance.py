"""The champion's performance on matured labels: the run's window moved back by the label horizon.

A customer's label is known only once the horizon after the prediction has passed, so a run scores
the champion on the window one horizon earlier, with the labels known at the run's window end,
and compares that ROC AUC with the champion's test AUC.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from core import names
from core.settings import Settings
from features.labels import compute_labels, known_at
from features.paths import FeaturePaths
from model.champion import RegisteredModel
from monitoring.current import Window, batch_rows, serving_rows, snapshot_keys
from monitoring.summary import Performance


def matured_labels(settings: Settings, keys: pd.DataFrame, now: dt.datetime) -> pd.DataFrame:
    """Labels of (customer_id, event_timestamp) keys that are known at `now`.

    A key's observation date is the day its event_timestamp falls on (a prediction at 14:00
    predicts the horizon from that day). Keys whose horizon has not passed are dropped.
    """
    if keys.empty:
        return pd.DataFrame(columns=[names.CUSTOMER_ID, names.EVENT_TIMESTAMP, names.LABEL])
    paths = FeaturePaths.of(settings)
    day_keys = keys[[names.CUSTOMER_ID]].assign(
        **{names.EVENT_TIMESTAMP: pd.to_datetime(keys[names.EVENT_TIMESTAMP], utc=True).dt.floor("D")}
    )
    day_keys = day_keys.drop_duplicates().reset_index(drop=True)
    events = pd.read_parquet(paths.clean_events, columns=[names.CUSTOMER_ID, names.EVENT_TIMESTAMP, names.EVENT_TYPE])
    last_day = pd.to_datetime(events[names.EVENT_TIMESTAMP], utc=True).max().date()
    labels = compute_labels(
        day_keys,
        pd.read_parquet(paths.clean_customers),
        events,
        kind=settings.labels.kind,
        horizon_days=settings.labels.horizon_days,
        last_event_day=last_day,
        activity_event_types=settings.labels.activity_event_types,
    )
    # known_at takes a day: a label is known on the day its horizon ends, so the day of `now`.
    return known_at(labels, now.date(), settings.labels.horizon_days)


def performance_of(
    scored: pd.DataFrame, labels: pd.DataFrame, reference_auc: float | None, window: Window
) -> Performance | None:
    """The champion's performance on scored rows that have a matured label (None when none has)."""
    if scored.empty or labels.empty:
        return None
    day = pd.to_datetime(scored[names.EVENT_TIMESTAMP], utc=True).dt.floor("D")
    joined = scored.assign(_day=day).merge(
        labels.rename(columns={names.EVENT_TIMESTAMP: "_day"}), on=[names.CUSTOMER_ID, "_day"], how="inner"
    )
    if joined.empty:
        return None
    y = joined[names.LABEL].to_numpy()
    p = np.clip(joined[names.PREDICTION].to_numpy(dtype=float), 1e-6, 1 - 1e-6)
    both = 0 < y.sum() < len(y)
    auc = float(roc_auc_score(y, p)) if both else None
    return Performance(
        window_start=window.start,
        window_end=window.end,
        labelled_rows=len(joined),
        positives=int(y.sum()),
        roc_auc=auc,
        pr_auc=float(average_precision_score(y, p)) if both else None,
        log_loss=float(log_loss(y, p, labels=[0, 1])),
        reference_roc_auc=reference_auc,
        auc_drop=(reference_auc - auc) if auc is not None and reference_auc is not None else None,
    )


def matured_performance(settings: Settings, champion: RegisteredModel, mode: str, window: Window) -> Performance | None:
    """Performance on `window` moved back by the label horizon, with the labels known at the window's end.

    Args:
        settings: The profile.
        champion: The model monitored (scores batch rows; its test ROC AUC is the baseline).
        mode: The run's mode, serving or batch: where the earlier window's scored rows come from.
        window: The run's window.

    Returns:
        None when the earlier window has no scored row or none of its labels has matured.
    """
    horizon = dt.timedelta(days=settings.labels.horizon_days)
    matured = window.shifted(-horizon)
    if mode == "serving":
        scored = serving_rows(settings, matured)
    else:
        scored = batch_rows(settings, champion, snapshot_keys(settings, matured))
    if scored.empty:
        return None
    labels = matured_labels(settings, scored[[names.CUSTOMER_ID, names.EVENT_TIMESTAMP]], window.end)
    return performance_of(scored, labels, champion.metrics.get("test_roc_auc"), matured)
