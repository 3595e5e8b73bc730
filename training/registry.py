"""Model registry: versions, aliases and the promotion gate.

A new version gets alias `challenger`; it becomes `champion` only through `gate`, whose decision
and evidence are written as tags on the version.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from churn import names
from training.tune import MAXIMISE


@dataclass(frozen=True)
class GateDecision:
    """Whether a challenger replaces the champion, and the evidence."""

    promote: bool
    reason: str
    metric: str
    challenger_value: float
    champion_value: float | None
    champion_version: str | None


def gate(
    metric: str,
    challenger_value: float,
    champion_value: float | None,
    champion_version: str | None,
    margin: float,
) -> GateDecision:
    """Decide promotion from both models' metric on the same held-out data.

    Args:
        metric: Metric name; higher is better except for log_loss.
        challenger_value: The challenger's value.
        champion_value: The champion's value on the same data; None when there is no champion.
        champion_version: The champion's version, for the evidence.
        margin: Required improvement.

    Returns:
        The decision with a one-line reason.
    """
    if champion_value is None:
        return GateDecision(True, "no champion yet", metric, challenger_value, None, champion_version)
    gain = challenger_value - champion_value if MAXIMISE[metric] else champion_value - challenger_value
    if gain >= margin:
        reason = f"{metric} improves by {gain:+.4f} (margin {margin})"
        return GateDecision(True, reason, metric, challenger_value, champion_value, champion_version)
    reason = f"{metric} changes by {gain:+.4f}, below the margin {margin}: champion kept"
    return GateDecision(False, reason, metric, challenger_value, champion_value, champion_version)


def champion_version(client: MlflowClient, model_name: str) -> str | None:
    """The version the `champion` alias points at, or None."""
    try:
        return str(client.get_model_version_by_alias(model_name, names.CHAMPION_ALIAS).version)
    except MlflowException:
        return None


def record_and_apply(client: MlflowClient, model_name: str, version: str, decision: GateDecision) -> None:
    """Tag the version with the decision and move `champion` if it promotes."""
    client.set_model_version_tag(model_name, version, "gate.decision", "promote" if decision.promote else "keep")
    client.set_model_version_tag(model_name, version, "gate.evidence", json.dumps(asdict(decision)))
    if decision.promote:
        client.set_registered_model_alias(model_name, names.CHAMPION_ALIAS, version)
