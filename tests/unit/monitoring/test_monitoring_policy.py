"""The drift policy's pure logic: rules, cool-down, status, window parsing."""

from __future__ import annotations

import datetime as dt

import pytest

from core.monitoring_settings import DriftPolicy
from monitoring.policy import decide, fired_rules, parse_window, status_of
from monitoring.summary import (
    Decision,
    FeatureDrift,
    MonitorSummary,
    Performance,
    PredictionDrift,
    Retraining,
)

POLICY = DriftPolicy(drifted_share=0.3, prediction_drift=True, auc_drop=0.03, cooldown_days=14, min_rows=100)
END = dt.datetime(2025, 9, 1, tzinfo=dt.UTC)


def features(drifted: int, n: int = 10) -> FeatureDrift:
    return FeatureDrift(n_columns=n, drifted_columns=drifted, drifted_share=drifted / n, columns=[])


def prediction(drifted: bool) -> PredictionDrift:
    return PredictionDrift(
        method="wasserstein",
        threshold=0.1,
        value=0.3 if drifted else 0.01,
        drifted=drifted,
        reference_mean=0.1,
        current_mean=0.2 if drifted else 0.1,
    )


def performance(auc: float, reference: float = 0.80) -> Performance:
    return Performance(
        labelled_rows=2000,
        positives=150,
        roc_auc=auc,
        pr_auc=0.3,
        log_loss=0.3,
        reference_roc_auc=reference,
        auc_drop=reference - auc,
    )


def retrained_run(window_end: dt.datetime) -> MonitorSummary:
    return MonitorSummary(
        run_id="r1",
        created=window_end,
        mode="batch",
        window_start=window_end - dt.timedelta(days=7),
        window_end=window_end,
        model_version="1",
        reference_rows=10,
        current_rows=500,
        status="drift",
        features=features(5),
        prediction=None,
        performance=None,
        decision=Decision(retrain=True, reasons=["x"]),
        retraining=Retraining(
            training_run_id="t",
            challenger_version="2",
            promoted=True,
            gate_reason="better",
            champion_before="1",
            champion_after="2",
        ),
        html="monitor-r1.html",
    )


@pytest.mark.parametrize(
    ("feat", "pred", "perf", "rules"),
    [
        (features(2), prediction(False), performance(0.79), 0),  # 20 % drifted, AUC down 0.01: quiet
        (features(3), prediction(False), None, 1),  # share exactly at the policy
        (features(0), prediction(True), None, 1),
        (features(0), None, performance(0.76), 1),  # AUC down 0.04 >= 0.03
        (features(4), prediction(True), performance(0.70), 3),
    ],
)
def test_rules_fire_at_their_thresholds(
    feat: FeatureDrift, pred: PredictionDrift | None, perf: Performance | None, rules: int
) -> None:
    assert len(fired_rules(POLICY, feat, pred, perf)) == rules
    decision = decide(POLICY, feat, pred, perf, current_rows=500, window_end=END)
    assert decision.retrain == (rules > 0)
    assert len(decision.reasons) == rules


def test_auc_rule_needs_enough_churners() -> None:
    few = performance(0.60).model_copy(update={"positives": 99})
    assert fired_rules(POLICY, features(0), None, few) == []
    assert len(fired_rules(POLICY, features(0), None, few.model_copy(update={"positives": 100}))) == 1


def test_prediction_rule_can_be_switched_off() -> None:
    policy = POLICY.model_copy(update={"prediction_drift": False, "auc_drop": None})
    assert fired_rules(policy, features(0), prediction(True), performance(0.5)) == []


def test_cooldown_holds_back_a_retraining_and_then_expires() -> None:
    history = [retrained_run(END)]
    held = decide(
        POLICY, features(5), None, None, current_rows=500, window_end=END + dt.timedelta(days=7), history=history
    )
    assert not held.retrain
    assert held.cooldown_until == END + dt.timedelta(days=14)
    assert held.reasons, "the rule that fired is still reported"
    assert status_of(features(5), None, held, fired=True) == "drift"
    after = decide(
        POLICY, features(5), None, None, current_rows=500, window_end=END + dt.timedelta(days=14), history=history
    )
    assert after.retrain and after.cooldown_until is None


def test_too_few_rows_decide_nothing() -> None:
    decision = decide(POLICY, features(9), prediction(True), None, current_rows=99, window_end=END)
    assert not decision.retrain
    assert "min_rows" in decision.reasons[0]
    assert status_of(features(9), prediction(True), decision, fired=False) == "warning"


def test_status() -> None:
    quiet = Decision(retrain=False, reasons=[])
    assert status_of(features(0), prediction(False), quiet, fired=False) == "ok"
    assert status_of(features(1), prediction(False), quiet, fired=False) == "warning"
    assert status_of(features(0), prediction(True), quiet, fired=False) == "warning"


@pytest.mark.parametrize(("text", "hours"), [("7d", 168), ("36h", 36), ("2w", 336), (" 1D ", 24)])
def test_parse_window(text: str, hours: int) -> None:
    assert parse_window(text) == dt.timedelta(hours=hours)


@pytest.mark.parametrize("text", ["", "7", "0d", "-1d", "7 days", "d7", "1.5d"])
def test_parse_window_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="window"):
        parse_window(text)
