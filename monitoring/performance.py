"""The champion's performance on matured labels: the run's window moved back by the label horizon.

A customer's label is known only once the horizon after the prediction has passed, so a run scores
the champion on the window one horizon earlier, with the labels known at the run's window end,
and compares that ROC AUC with the champion's test AUC. `performance_report` puts the same figures
in an Evidently report (the adapter's `MaturedLabels` heading, Evidently's `RocAuc` with its ROC
curve and a test against the champion's test AUC, the adapter's `PrAuc`, Evidently's `LogLoss`),
which the run's report then holds before the drift.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from evidently import BinaryClassification, DataDefinition, Dataset, Report, Run
from evidently.metrics import LogLoss, RocAuc
from evidently.tests import gte
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from core import names
from core.settings import Settings
from features.labels import compute_labels, known_at
from features.paths import FeaturePaths
from model.champion import RegisteredModel
from monitoring.current import Window, batch_rows, serving_rows, snapshot_keys
from monitoring.evidently_adapter import MaturedLabels, PrAuc
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


def labelled(scored: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The scored rows that have a matured label, with it: each row joined on customer and observation day."""
    if scored.empty or labels.empty:
        return pd.DataFrame(columns=[*scored.columns, names.LABEL])
    day = pd.to_datetime(scored[names.EVENT_TIMESTAMP], utc=True).dt.floor("D")
    joined = scored.assign(_day=day).merge(
        labels.rename(columns={names.EVENT_TIMESTAMP: "_day"}), on=[names.CUSTOMER_ID, "_day"], how="inner"
    )
    return joined.drop(columns="_day")


def performance_of(rows: pd.DataFrame, reference_auc: float | None, window: Window) -> Performance | None:
    """The champion's performance on labelled rows (`labelled`); None when there is none."""
    if rows.empty:
        return None
    y = rows[names.LABEL].to_numpy()
    p = np.clip(rows[names.PREDICTION].to_numpy(dtype=float), 1e-6, 1 - 1e-6)
    both = 0 < y.sum() < len(y)
    auc = float(roc_auc_score(y, p)) if both else None
    return Performance(
        window_start=window.start,
        window_end=window.end,
        labelled_rows=len(rows),
        positives=int(y.sum()),
        roc_auc=auc,
        pr_auc=float(average_precision_score(y, p)) if both else None,
        log_loss=float(log_loss(y, p, labels=[0, 1])),
        reference_roc_auc=reference_auc,
        auc_drop=(reference_auc - auc) if auc is not None and reference_auc is not None else None,
    )


@dataclass(frozen=True)
class Matured:
    """The matured window: the champion's scored rows that have a label, and its performance on them.

    Attributes:
        window: The run's window moved back by the label horizon.
        labels_known: When the labels were taken: the run's window end.
        rows: customer_id, event_timestamp, the features, churn_probability and churned.
        performance: The figures (None when no row has a label).
    """

    window: Window
    labels_known: dt.datetime
    rows: pd.DataFrame
    performance: Performance | None


def matured_performance(settings: Settings, champion: RegisteredModel, mode: str, window: Window) -> Matured:
    """Performance on `window` moved back by the label horizon, with the labels known at the window's end.

    Args:
        settings: The profile.
        champion: The model monitored (scores batch rows; its test ROC AUC is the baseline).
        mode: The run's mode, serving or batch: where the earlier window's scored rows come from.
        window: The run's window.

    Returns:
        The matured window; its performance is None when the window has no scored row or none of
        its labels has matured.
    """
    horizon = dt.timedelta(days=settings.labels.horizon_days)
    matured = window.shifted(-horizon)
    if mode == "serving":
        scored = serving_rows(settings, matured)
    else:
        scored = batch_rows(settings, champion, snapshot_keys(settings, matured))
    if scored.empty:
        return Matured(matured, window.end, scored, None)
    labels = matured_labels(settings, scored[[names.CUSTOMER_ID, names.EVENT_TIMESTAMP]], window.end)
    rows = labelled(scored, labels)
    return Matured(matured, window.end, rows, performance_of(rows, champion.metrics.get("test_roc_auc"), matured))


def performance_report(matured: Matured, auc_drop: float | None) -> Run | None:
    """The matured window's performance as an Evidently report; None unless its labels hold both classes.

    Args:
        matured: The matured window (`matured_performance`).
        auc_drop: The policy's AUC drop (`monitoring.policy.auc_drop`): with the champion's test
            AUC it sets the report's test on ROC AUC (None: no test).
    """
    performance = matured.performance
    if performance is None or performance.roc_auc is None:
        return None
    baseline = performance.reference_roc_auc
    tests = None
    if baseline is not None and auc_drop is not None:
        alias = (
            f"ROC AUC on the labels of {matured.window} vs the champion's test AUC {baseline:.3f} "
            f"less policy.auc_drop {auc_drop:g}"
        )
        tests = [gte(baseline - auc_drop, alias=alias)]
    definition = DataDefinition(
        numerical_columns=[names.PREDICTION],
        categorical_columns=[names.LABEL],
        classification=[BinaryClassification(target=names.LABEL, prediction_probas=names.PREDICTION, pos_label=1)],
    )
    data = matured.rows[[names.LABEL, names.PREDICTION]].astype({names.LABEL: int, names.PREDICTION: float})
    heading = MaturedLabels(
        target=names.LABEL,
        window=str(matured.window),
        known_at=f"{matured.labels_known:%Y-%m-%d %H:%M}",
        champion_roc_auc=baseline,
    )
    metrics = [
        heading,
        RocAuc(tests=tests),
        PrAuc(target=names.LABEL, probability=names.PREDICTION),
        LogLoss(),
    ]
    return Report(metrics).run(Dataset.from_pandas(data, data_definition=definition), None)
