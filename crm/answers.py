"""Answers to a scoring call: probability, risk tier, reasons, then the early-warning layer.

Serving answers requests with these, and batch scoring shares the early-warning part
(`crm.alerts`).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from core import names
from core.settings import Settings
from crm.columns import Frame
from crm.early_warning import early_warning_columns
from crm.segments import layer_bounds
from crm.tiers import risk_tiers
from model.calibration import calibrate
from model.predictor import Method, Predictor, Rows, row_count

_BOUNDS: weakref.WeakKeyDictionary[Predictor, dict[str, np.ndarray]] = weakref.WeakKeyDictionary()
"""Per predictor, the CRM layers' bin edges against its training sample (one process, one CRM config)."""


def answers(
    predictor: Predictor,
    rows: Rows,
    outputs: np.ndarray,
    tiers: Mapping[str, float],
    method: Method | None = None,
) -> list[dict[str, Any]]:
    """Turn `predictor.model_outputs(rows)` into answers: calibrated probability, risk tier, reasons, version.

    Args:
        predictor: The model that computed `outputs`.
        rows: The feature rows that were scored, in the same order.
        outputs: `model_outputs` of `rows` (extra columns past the model's features are ignored).
        tiers: Risk tier -> lowest probability in it.
        method: How `outputs` were computed; default `predictor.method(len(rows))`, as `model_outputs` does.
    """
    method = method or predictor.method(row_count(rows))
    proba = calibrate(predictor.calibration, outputs[:, 0])
    reasons = predictor.reasons(rows, outputs[:, 1 : 1 + len(predictor.features)])
    return [
        {
            "churn_probability": p,
            "risk_tier": tier,
            "reasons": r,
            "reasons_method": method,
            "model_version": predictor.version,
        }
        for p, tier, r in zip(proba.tolist(), risk_tiers(proba, tiers).tolist(), reasons, strict=True)
    ]


def score(predictor: Predictor, rows: Rows, tiers: Mapping[str, float]) -> list[dict[str, Any]]:
    """Score feature rows.

    Args:
        predictor: The model.
        rows: One row per customer with (at least) the model's features; missing values allowed.
        tiers: Risk tier -> lowest probability in it.

    Returns:
        Per row: churn_probability, risk_tier, reasons (feature, value, contribution, phrase),
        reasons_method (`predictor.method` of this call) and model_version.
    """
    method = predictor.method(row_count(rows))
    return answers(predictor, rows, predictor.model_outputs(rows, method=method), tiers, method)


def crm_bounds(settings: Settings, predictor: Predictor) -> dict[str, np.ndarray] | None:
    """The CRM layers' bin edges against the model's training sample, computed once per model.

    None when the model has no training sample: quantile layers then come from the scored rows.
    """
    if predictor.reference is None:
        return None
    bounds = _BOUNDS.get(predictor)
    if bounds is None:
        bounds = _BOUNDS[predictor] = layer_bounds(settings.crm, predictor.reference)
    return bounds


def with_early_warning(
    settings: Settings, predictor: Predictor, rows: Rows, scored: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Add segment, layers, rule hits, action, customer value and expected loss to scored answers.

    Args:
        settings: The profile with the CRM config.
        predictor: The model that scored `rows` (its training sample sets quantile layers).
        rows: The feature rows that were scored (customer_id optional): a DataFrame or columns.
        scored: `score(predictor, rows, tiers)`, one answer per row.

    Returns:
        The answers, each extended in place and returned.
    """
    frame: Frame
    if isinstance(rows, pd.DataFrame):
        plain_index = isinstance(rows.index, pd.RangeIndex) and rows.index.start == 0 and rows.index.step == 1
        frame = rows if plain_index else rows.reset_index(drop=True)
    else:  # columns, as the request path has them
        frame = rows
    if names.CUSTOMER_ID not in frame:
        ids = [str(i) for i in range(len(scored))]
        frame = (
            frame.assign(**{names.CUSTOMER_ID: ids})
            if isinstance(frame, pd.DataFrame)
            else {**frame, names.CUSTOMER_ID: ids}
        )
    proba = [s["churn_probability"] for s in scored]
    tiers = [s["risk_tier"] for s in scored]
    crm = early_warning_columns(
        settings.crm, frame, proba, tiers, reference=predictor.reference, bounds=crm_bounds(settings, predictor)
    )
    keep = [*settings.crm.layers, "segment", "rule_hits", "action", "customer_value", "expected_loss"]
    columns = [_plain_list(crm[k]) for k in keep]
    for answer, values in zip(scored, zip(*columns, strict=True), strict=True):
        answer.update(zip(keep, values, strict=True))
    return scored


def _plain_list(values: Any) -> list[Any]:  # noqa: ANN401
    """A column as a list of plain Python values (what `DataFrame.to_dict` would give)."""
    return values.tolist() if isinstance(values, np.ndarray) else list(values)
