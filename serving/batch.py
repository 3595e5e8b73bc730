"""Batch scoring: the CRM alert list for every active customer at a date.

Offline features through Feast (point in time), the champion's probability, tier and reasons, and
the early-warning layer (rule hits, segment, layers, recommended action, expected loss), sorted by
expected loss so the CRM works the list from the top.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from churn import names
from churn.settings import Settings
from features.crm import EXPECTED_LOSS, RISK_TIER, early_warning
from features.io import write_atomic_csv, write_atomic_parquet
from features.pipeline import FeaturePaths, historical_features, open_store
from serving.predictor import Predictor

CHUNK = 5_000
REASONS = "reasons"
AS_OF = "as_of"
MODEL_VERSION = "model_version"


def snapshot_date(settings: Settings, as_of: dt.date | None) -> pd.Timestamp:
    """The newest observation date not after `as_of` (the newest of all when None).

    Raises:
        FileNotFoundError: No snapshots yet.
        ValueError: Every snapshot is after `as_of`.
    """
    path = FeaturePaths.of(settings).snapshots
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `churn features build` first")
    stamps = pd.read_parquet(path, columns=[names.EVENT_TIMESTAMP])[names.EVENT_TIMESTAMP].drop_duplicates()
    if as_of is not None:
        stamps = stamps[stamps <= pd.Timestamp(as_of, tz="UTC")]
        if stamps.empty:
            raise ValueError(f"no feature snapshot on or before {as_of}: the data starts later")
    return stamps.max()


def active_customers(settings: Settings, date: pd.Timestamp) -> pd.DataFrame:
    """customer_id and event_timestamp of every customer in the snapshot of `date`."""
    path = FeaturePaths.of(settings).snapshots
    keys = pd.read_parquet(path, columns=[names.CUSTOMER_ID], filters=[(names.EVENT_TIMESTAMP, "==", date)])
    return keys.assign(**{names.EVENT_TIMESTAMP: date})


def score_alerts(
    settings: Settings,
    predictor: Predictor,
    as_of: dt.date | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """The alert list for every active customer at `as_of` (default: the newest snapshot).

    Args:
        settings: The profile (CRM rules, segments and playbook come from it).
        predictor: The champion.
        as_of: Score the newest snapshot on or before this date.
        progress: Called with (rows done, rows in all) after each chunk.

    Returns:
        One row per customer, sorted by expected loss (highest first): customer_id, as_of,
        churn_probability, risk_tier, reasons, segment, the layers, rule_hits, action,
        action_priority, customer_value, expected_loss, model_version.
    """
    date = snapshot_date(settings, as_of)
    keys = active_customers(settings, date)
    features = historical_features(open_store(settings), keys)
    scored: list[dict[str, Any]] = []
    for start in range(0, len(features), CHUNK):
        scored += predictor.score(features.iloc[start : start + CHUNK])
        if progress:
            progress(min(start + CHUNK, len(features)), len(features))
    proba = [s["churn_probability"] for s in scored]
    tiers = [s["risk_tier"] for s in scored]
    alerts = early_warning(settings.crm, features, proba, tiers, reference=predictor.reference)
    alerts.insert(1, AS_OF, date.date())
    alerts[REASONS] = [s["reasons"] for s in scored]
    alerts[MODEL_VERSION] = predictor.version
    order = [names.CUSTOMER_ID, AS_OF, names.PREDICTION, RISK_TIER, REASONS]
    alerts = alerts[order + [c for c in alerts.columns if c not in order]]
    return alerts.sort_values([EXPECTED_LOSS, names.PREDICTION], ascending=False, kind="stable").reset_index(drop=True)


def with_early_warning(
    settings: Settings, predictor: Predictor, rows: pd.DataFrame, scored: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Add segment, layers, rule hits, action, customer value and expected loss to scored answers.

    Args:
        settings: The profile with the CRM config.
        predictor: The model that scored `rows` (its training sample sets quantile layers).
        rows: The feature rows that were scored (customer_id optional).
        scored: `predictor.score(rows)`, one answer per row.

    Returns:
        The answers, each extended in place and returned.
    """
    frame = rows.reset_index(drop=True)
    if names.CUSTOMER_ID not in frame:
        frame = frame.assign(**{names.CUSTOMER_ID: [str(i) for i in range(len(frame))]})
    proba = [s["churn_probability"] for s in scored]
    tiers = [s["risk_tier"] for s in scored]
    crm = early_warning(settings.crm, frame, proba, tiers, reference=predictor.reference)
    keep = [*settings.crm.layers, "segment", "rule_hits", "action", "customer_value", "expected_loss"]
    for answer, extra in zip(scored, crm[keep].to_dict("records"), strict=True):
        answer.update(extra)
    return scored


def write_alerts(alerts: pd.DataFrame, out: Path) -> Path:
    """Write the alert list atomically: Parquet (nested reasons and hits) or CSV (them as JSON text)."""
    if out.suffix == ".parquet":
        return write_atomic_parquet(alerts, out)
    if out.suffix != ".csv":
        raise ValueError(f"--out must end in .csv or .parquet, got '{out.name}'")
    flat = alerts.copy()
    for column in ("reasons", "rule_hits"):
        flat[column] = flat[column].map(lambda v: json.dumps(v, default=str))
    return write_atomic_csv(flat, out)
