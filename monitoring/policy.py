"""The drift policy: from a run's figures to ok / warning / drift and to "retrain" or not (pure logic)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from core.monitoring_settings import DriftPolicy
from monitoring.summary import Decision, FeatureDrift, MonitorSummary, Performance, PredictionDrift, Status

_WINDOW = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")
_UNIT_HOURS = {"h": 1, "d": 24, "w": 24 * 7}


def parse_window(text: str) -> dt.timedelta:
    """A window length such as `7d`, `36h` or `2w`.

    Raises:
        ValueError: The text is not a positive number followed by h, d or w.
    """
    match = _WINDOW.match(text.lower())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"window {text!r}: expected a positive number of hours, days or weeks, e.g. 7d, 36h, 2w")
    return dt.timedelta(hours=int(match.group(1)) * _UNIT_HOURS[match.group(2)])


def fired_rules(
    policy: DriftPolicy,
    features: FeatureDrift,
    prediction: PredictionDrift | None,
    performance: Performance | None,
) -> list[str]:
    """Each rule of `policy` that the figures trip, in words (empty when none does)."""
    reasons = []
    if features.n_columns and features.drifted_share >= policy.drifted_share:
        reasons.append(
            f"{features.drifted_columns} of {features.n_columns} features drifted "
            f"(share {features.drifted_share:.2f} >= policy.drifted_share {policy.drifted_share})"
        )
    if policy.prediction_drift and prediction is not None and prediction.drifted:
        reasons.append(
            f"prediction drift: {prediction.method} {prediction.value:.3g} (threshold {prediction.threshold}); "
            f"mean probability {prediction.reference_mean:.3f} -> {prediction.current_mean:.3f}"
        )
    drop = performance.auc_drop if performance is not None else None
    if (
        policy.auc_drop is not None
        and performance is not None
        and drop is not None
        and drop >= policy.auc_drop
        and performance.positives >= policy.auc_min_positives
    ):
        reasons.append(
            f"ROC AUC on matured labels {performance.roc_auc:.3f} is {drop:.3f} below the "
            f"champion's test AUC {performance.reference_roc_auc:.3f} (policy.auc_drop {policy.auc_drop})"
        )
    return reasons


def last_retraining(history: Sequence[MonitorSummary]) -> MonitorSummary | None:
    """The newest earlier run that started a retraining (whatever the gate then decided)."""
    started = [s for s in history if s.retraining is not None]
    return max(started, key=lambda s: s.window_end) if started else None


def decide(
    policy: DriftPolicy,
    features: FeatureDrift,
    prediction: PredictionDrift | None,
    performance: Performance | None,
    *,
    current_rows: int,
    window_end: dt.datetime,
    history: Sequence[MonitorSummary] = (),
) -> Decision:
    """Whether this run should retrain, and why.

    Args:
        policy: The configured policy.
        features: The features' drift.
        prediction: The prediction drift, if measured.
        performance: The champion's performance on matured labels, if any.
        current_rows: Rows in the window: below `policy.min_rows` nothing is decided.
        window_end: The end of this run's window, the clock of the cool-down.
        history: Earlier runs' summaries (for the cool-down).
    """
    if current_rows < policy.min_rows:
        return Decision(
            retrain=False,
            reasons=[f"only {current_rows} rows in the window, fewer than policy.min_rows={policy.min_rows}"],
        )
    reasons = fired_rules(policy, features, prediction, performance)
    if not reasons:
        return Decision(retrain=False, reasons=[])
    last = last_retraining(history)
    if last is not None and policy.cooldown_days:
        until = last.window_end + dt.timedelta(days=policy.cooldown_days)
        if window_end < until:
            return Decision(retrain=False, reasons=reasons, cooldown_until=until)
    return Decision(retrain=True, reasons=reasons)


def status_of(features: FeatureDrift, prediction: PredictionDrift | None, decision: Decision, fired: bool) -> Status:
    """drift: a policy rule fired (retraining or not); warning: something drifted or too few rows; else ok."""
    if fired:
        return "drift"
    if features.drifted_columns or (prediction is not None and prediction.drifted) or decision.reasons:
        return "warning"
    return "ok"
