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

import numpy as np
import pandas as pd

from core import names
from core.io import write_atomic_csv, write_atomic_parquet
from core.settings import Settings
from crm.answers import crm_bounds
from crm.early_warning import EXPECTED_LOSS, RISK_TIER, early_warning_columns, gc_paused
from crm.tiers import risk_tiers
from features.paths import FeaturePaths
from features.pipeline import historical_features, open_store
from model.predictor import Predictor

CHUNK = 100_000
"""Rows per probability step (one progress update each)."""
EXPLAIN_CHUNK = 2_000
"""Rows per reasons step with exact SHAP: its contributions cost a few hundred times a prediction."""
APPROX_CHUNK = 10_000
"""Rows per reasons step with XGBoost's approximate contributions (a few predictions' worth each)."""
REASONS = "reasons"
REASONS_METHOD = "reasons_method"
AS_OF = "as_of"
MODEL_VERSION = "model_version"


class Default:
    """The type of `DEFAULT`: "take the value from the settings" where None means something else."""


DEFAULT = Default()


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
    reasons_top: int | None | Default = DEFAULT,
) -> pd.DataFrame:
    """The alert list for every active customer at `as_of` (default: the newest snapshot).

    Probabilities for everyone, then reasons (the costly part) for the top of the list only.

    Args:
        settings: The profile (CRM rules, segments and playbook come from it).
        predictor: The champion.
        as_of: Score the newest snapshot on or before this date.
        progress: Called with (work done, work in all) after each chunk: one unit per row scored
            and one per row explained.
        reasons_top: How many rows from the top get reasons; None: all. Default:
            `serving.batch_reasons_top`.

    Returns:
        One row per customer, sorted by expected loss (highest first): customer_id, as_of,
        churn_probability, risk_tier, reasons (null below the top `reasons_top` rows),
        reasons_method (`shap` or `approx`, see `Predictor.method`; null where no reasons), segment,
        the layers, rule_hits, action, action_priority, customer_value, expected_loss, model_version.
    """
    return scored_features(settings, predictor, as_of, progress, reasons_top)[0]


def scored_features(
    settings: Settings,
    predictor: Predictor,
    as_of: dt.date | None = None,
    progress: Callable[[int, int], None] | None = None,
    reasons_top: int | None | Default = DEFAULT,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`score_alerts`, and the feature rows it scored (one per customer, in Feast's order).

    A campaign keeps its customers' features (`crm.campaigns.store`) and the uplift model scores
    them, without a second read from Feast.
    """
    date = snapshot_date(settings, as_of)
    keys = active_customers(settings, date)
    features = historical_features(open_store(settings), keys)  # any index: alert_list goes by position
    return alert_list(settings, predictor, features, date, progress, reasons_top), features


def alert_list(
    settings: Settings,
    predictor: Predictor,
    features: pd.DataFrame,
    date: pd.Timestamp,
    progress: Callable[[int, int], None] | None = None,
    reasons_top: int | None | Default = DEFAULT,
) -> pd.DataFrame:
    """`score_alerts` of feature rows already read (one per customer, with customer_id; any index).

    Every column is computed once in the rows' order, then taken in the list's order into the
    one frame returned (no frame sorted, re-indexed and reordered on the way). The garbage
    collector waits until the list is built: the rule hits are a few Python objects per row,
    and collections while they pile up would go over all of them again and again.
    """
    with gc_paused():
        return _alert_list(settings, predictor, features, date, progress, reasons_top)


def _alert_list(
    settings: Settings,
    predictor: Predictor,
    features: pd.DataFrame,
    date: pd.Timestamp,
    progress: Callable[[int, int], None] | None,
    reasons_top: int | None | Default,
) -> pd.DataFrame:
    """`alert_list`, the garbage collector paused."""
    n = len(features)
    top = settings.serving.batch_reasons_top if isinstance(reasons_top, Default) else reasons_top
    explained = n if top is None else min(top, n)
    total = n + explained
    proba = np.empty(n, dtype=float)
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        proba[start:stop] = predictor.probabilities(features.iloc[start:stop])
        if progress:
            progress(stop, total)
    tiers = risk_tiers(proba, settings.serving.risk_tiers)
    crm = early_warning_columns(
        settings.crm, features, proba, tiers, reference=predictor.reference, bounds=crm_bounds(settings, predictor)
    )
    order = sort_order(crm[EXPECTED_LOSS], crm[names.PREDICTION])  # positions in `features`, list order
    reasons = np.full(n, None, dtype=object)
    method = predictor.method(explained)  # one method for the whole list
    chunk = EXPLAIN_CHUNK if method == "shap" else APPROX_CHUNK
    for start in range(0, explained, chunk):
        stop = min(start + chunk, explained)
        explanations = predictor.reasons(features.iloc[order[start:stop]], method=method)
        reasons[start:stop] = np.fromiter(explanations, dtype=object, count=stop - start)
        if progress:
            progress(n + stop, total)
    methods = np.full(n, None, dtype=object)
    methods[:explained] = method
    first = {
        names.CUSTOMER_ID: crm.pop(names.CUSTOMER_ID)[order],
        AS_OF: date.date(),
        names.PREDICTION: crm.pop(names.PREDICTION)[order],
        RISK_TIER: _listed(tiers[order]),
        REASONS: _listed(reasons),
        REASONS_METHOD: _listed(methods),
    }
    del crm[RISK_TIER]  # `tiers` as a list
    rest = {name: _in_order(values, order) for name, values in crm.items()}
    # copy=False: each column its own block, as made here (no copy of all the object columns into one).
    return pd.DataFrame({**first, **rest, MODEL_VERSION: predictor.version}, index=pd.RangeIndex(n), copy=False)


def sort_order(loss: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """Positions of the rows by expected loss, then probability, highest first; ties keep their order.

    The order of `DataFrame.sort_values([loss, probability], ascending=False, kind="stable")`,
    missing values last.
    """
    return np.lexsort((-np.asarray(probability, dtype=float), -np.asarray(loss, dtype=float)))


def _in_order(values: Any, order: np.ndarray) -> Any:  # noqa: ANN401
    """A column of `early_warning_columns` taken in `order` (an array, or a list as a list)."""
    if isinstance(values, list):
        return [values[i] for i in order.tolist()]
    return values[order]


def _listed(values: np.ndarray) -> np.ndarray | list[Any]:
    """An object column, or with no rows an empty list (which pandas types float64, as the list it was)."""
    return values if len(values) else []


def write_alerts(alerts: pd.DataFrame, out: Path) -> Path:
    """Write the alert list atomically: Parquet or CSV.

    Parquet keeps rule hits nested; reasons go in as JSON text (null where a row has none), since a
    reason's value is a number or, for an attribute, a string, which one Parquet column cannot hold.
    CSV holds both as JSON text.
    """
    if out.suffix == ".parquet":
        reasons = alerts[REASONS].map(lambda v: None if v is None else json.dumps(v, default=str))
        return write_atomic_parquet(alerts.assign(**{REASONS: reasons}), out)
    if out.suffix != ".csv":
        raise ValueError(f"--out must end in .csv or .parquet, got '{out.name}'")
    flat = alerts.copy()
    for column in ("reasons", "rule_hits"):
        flat[column] = flat[column].map(lambda v: json.dumps(v, default=str))
    return write_atomic_csv(flat, out)
