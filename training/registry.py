"""Model registry: versions, aliases, the promotion gate, manual promotion and champion history.

A new version gets alias `challenger`; it becomes `champion` only through `gate` (or a person's
`churn promote`), and every promotion is recorded as tags on the version: when, how and why.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from core import names
from training.evaluation import Verdict

LOWER_IS_BETTER = {"log_loss", "brier", "ece"}
PROMOTED_AT = "champion.promoted_at"
PROMOTED_BY = "champion.promoted_by"
PROMOTION_REASON = "champion.reason"
PREVIOUS_CHAMPION = "champion.previous"


@dataclass(frozen=True)
class GateDecision:
    """Whether a challenger replaces the champion, and the evidence."""

    promote: bool
    reason: str
    metric: str
    challenger: dict[str, float]
    champion: dict[str, float] | None
    champion_version: str | None
    guard_failures: list[str] = field(default_factory=list)
    baselines: dict[str, float] = field(default_factory=dict)
    """Each baseline's score on the test rows, on the metric the baselines are judged on."""


def _gain(metric: str, challenger: float, champion: float) -> float:
    """How much better the challenger is (positive = better), whatever the metric's direction."""
    return champion - challenger if metric in LOWER_IS_BETTER else challenger - champion


def gate(
    metric: str,
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    champion_version: str | None,
    margin: float,
    guards: Mapping[str, float],
    baselines: Verdict | None = None,
) -> GateDecision:
    """Decide promotion from both models' metrics on the same held-out data.

    The challenger must beat every baseline (when `baselines` is given), beat the champion on
    `metric` by at least `margin`, and no guard metric may regress by more than its tolerance.

    Args:
        metric: The objective metric (roc_auc, pr_auc, log_loss, ...).
        challenger: The challenger's test metrics.
        champion: The champion's metrics on the same test rows; None when there is no champion.
        champion_version: The champion's version, for the evidence.
        margin: Required improvement on `metric`.
        guards: Guard metric -> largest tolerated regression.
        baselines: The challenger against the baselines on the same test rows
            (`training.gate.must_beat_baselines`); None does not judge them.

    Returns:
        The decision with a one-line reason.
    """
    evidence = dict(baselines.baselines) if baselines is not None else {}
    if baselines is not None and not baselines.beats_all:
        keep = f"champion v{champion_version} kept" if champion_version else "no champion"
        reason = (
            f"loses to the {baselines.best_baseline} baseline on test {baselines.metric} "
            f"({baselines.model:.4f} against {baselines.baselines[str(baselines.best_baseline)]:.4f}): {keep}"
        )
        return GateDecision(
            False, reason, metric, dict(challenger), dict(champion or {}) or None, champion_version, [], evidence
        )
    if champion is None:
        return GateDecision(True, "no champion yet", metric, dict(challenger), None, champion_version, [], evidence)
    gain = _gain(metric, challenger[metric], champion[metric])
    failures = [
        f"{g} regresses by {-_gain(g, challenger[g], champion[g]):.4f} (tolerance {tol})"
        for g, tol in guards.items()
        if g in challenger and g in champion and _gain(g, challenger[g], champion[g]) < -tol
    ]
    if gain < margin:
        reason = f"{metric} changes by {gain:+.4f}, below the margin {margin}: champion v{champion_version} kept"
        return GateDecision(
            False, reason, metric, dict(challenger), dict(champion), champion_version, failures, evidence
        )
    if failures:
        reason = f"{metric} improves by {gain:+.4f} but {'; '.join(failures)}: champion v{champion_version} kept"
        return GateDecision(
            False, reason, metric, dict(challenger), dict(champion), champion_version, failures, evidence
        )
    reason = f"{metric} improves by {gain:+.4f} (margin {margin}) and no guard regresses"
    return GateDecision(True, reason, metric, dict(challenger), dict(champion), champion_version, [], evidence)


def champion_version(client: MlflowClient, model_name: str) -> str | None:
    """The version the `champion` alias points at, or None."""
    try:
        return str(client.get_model_version_by_alias(model_name, names.CHAMPION_ALIAS).version)
    except MlflowException:
        return None


HISTORY_TAG = "champion.history"
"""Registered-model tag: the promotions, oldest first, as a JSON list (append-only)."""
HISTORY_KEEP = 30


def promote(client: MlflowClient, model_name: str, version: str, *, by: str, reason: str) -> str | None:
    """Move `champion` to `version`; record who, when and why on the version and in the model's history.

    Returns:
        The previous champion's version (None if there was none).

    Raises:
        MlflowException: The version does not exist.
    """
    client.get_model_version(model_name, version)  # fails with a clear error for an unknown version
    previous = champion_version(client, model_name)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    event = {"version": version, "promoted_at": now, "promoted_by": by, "reason": reason, "previous": previous}
    for key, value in {
        PROMOTED_AT: now,
        PROMOTED_BY: by,
        PROMOTION_REASON: reason,
        PREVIOUS_CHAMPION: previous or "",
    }.items():
        client.set_model_version_tag(model_name, version, key, value)
    history = _history(client, model_name) + [event]
    client.set_registered_model_tag(model_name, HISTORY_TAG, json.dumps(history[-HISTORY_KEEP:]))
    client.set_registered_model_alias(model_name, names.CHAMPION_ALIAS, version)
    return previous


def _history(client: MlflowClient, model_name: str) -> list[dict[str, str | None]]:
    raw = client.get_registered_model(model_name).tags.get(HISTORY_TAG)
    return list(json.loads(raw)) if raw else []


def record_and_apply(client: MlflowClient, model_name: str, version: str, decision: GateDecision) -> None:
    """Tag the version with the gate's decision and evidence, and promote it if the gate says so."""
    client.set_model_version_tag(model_name, version, "gate.decision", "promote" if decision.promote else "keep")
    client.set_model_version_tag(model_name, version, "gate.evidence", json.dumps(asdict(decision)))
    if decision.promote:
        promote(client, model_name, version, by="gate", reason=decision.reason)


@dataclass(frozen=True)
class ChampionRecord:
    """One promotion in a model's history."""

    version: str
    promoted_at: str
    promoted_by: str
    reason: str
    previous: str | None
    current: bool


def champion_history(client: MlflowClient, model_name: str) -> list[ChampionRecord]:
    """Every promotion of the model, oldest first (the last one is the current champion's)."""
    current = champion_version(client, model_name)
    events = _history(client, model_name)
    return [
        ChampionRecord(
            version=str(e["version"]),
            promoted_at=str(e["promoted_at"]),
            promoted_by=str(e.get("promoted_by") or ""),
            reason=str(e.get("reason") or ""),
            previous=e.get("previous"),
            current=i == len(events) - 1 and str(e["version"]) == current,
        )
        for i, e in enumerate(events)
    ]
