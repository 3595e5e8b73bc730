"""The drift loop's wiring: monitoring decides, features and training act (the CLI's layer).

Monitoring never imports training; `churn monitor --retrain-on-drift` hands `run_monitor` a
retrainer made here, which builds fresh features, trains a challenger and runs the promotion gate.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from mlflow import MlflowClient

from core.settings import Settings, parse_settings
from monitoring.summary import Retraining

log = logging.getLogger(__name__)

MONITOR_TAG = "churn.monitor.run_id"
"""Tag on a training run (and its model version) naming the MLflow monitoring run that started it."""


def retrainer_for(settings: Settings) -> Callable[[str, dt.date | None], Retraining]:
    """The retrainer `monitoring.jobs.run_monitor` calls on a "retrain" decision."""
    return lambda monitor_run, as_of: retrain_champion(settings, monitor_run, as_of)


def retrain_champion(settings: Settings, monitor_run: str, as_of: dt.date | None = None) -> Retraining:
    """Fresh features, a challenger, the promotion gate; the champion is unchanged on any failure.

    Args:
        settings: The profile.
        monitor_run: The MLflow monitoring run asking for it (tagged on the training run).
        as_of: Train as of this date (`training.as_of`, backtests); None for today.
    """
    from features.pipeline import apply_features, build_features, materialize_incremental
    from training.pipeline import train
    from training.registry import champion_version

    client = MlflowClient(settings.mlflow_uri)
    name = settings.training.model_name
    before = champion_version(client, name)
    try:
        build_features(settings)
        apply_features(settings)
        if as_of is not None:
            tree = settings.model_dump(mode="json")
            tree["training"]["as_of"] = as_of.isoformat()
            settings = parse_settings(tree, "monitoring retrain (as of the window's end)", env={})
        else:
            materialize_incremental(settings)
        result = train(settings, tags={MONITOR_TAG: monitor_run})
    except Exception as exc:  # the loop reports the failure; the champion stays as it was
        log.exception("retraining failed")
        return Retraining(
            training_run_id=None,
            challenger_version=None,
            promoted=False,
            gate_reason="retraining failed",
            champion_before=before,
            champion_after=champion_version(client, name),
            error=f"{type(exc).__name__}: {exc}",
        )
    gate = result.decision
    return Retraining(
        training_run_id=result.run_id,
        challenger_version=result.version,
        promoted=gate.promote,
        gate_reason=gate.reason,
        champion_before=before,
        champion_after=champion_version(client, name),
        metric=gate.metric,
        challenger_score=gate.challenger.get(gate.metric),
        champion_score=gate.champion.get(gate.metric) if gate.champion else None,
    )
