"""`stream.alerts.warnings`: an update warns when a customer meets a rule it did not meet before or
moves to a higher tier, and each alert carries the cool-down keys (customer and rule, customer and
tier) that `StreamState.claim_alert` lets out once per cool-down."""

from __future__ import annotations

from typing import Any

from stream.alerts import warnings

TIERS = {"high": 0.6, "medium": 0.3, "low": 0.0}


def answer(cid: str, tier: str, *rules: str, probability: float = 0.5) -> dict[str, Any]:
    """A /score answer with these rule hits."""
    return {
        "customer_id": cid,
        "churn_probability": probability,
        "risk_tier": tier,
        "rule_hits": [{"rule": r, "values": {}} for r in rules],
        "reasons": [{"feature": "service_complaints_30d", "contribution": 0.2}],
        "action": "service_recovery",
        "segment": "at_risk",
        "customer_value": 120.0,
        "model_version": "3",
    }


def test_a_new_rule_and_a_higher_tier_warn_with_their_keys() -> None:
    before = {"C1": answer("C1", "low", "engagement_drop"), "C2": answer("C2", "medium")}
    after = [answer("C1", "low", "engagement_drop", "complaint_spike"), answer("C2", "high", probability=0.7)]
    (first, first_keys), (second, second_keys) = warnings(before, after, TIERS)
    assert first_keys == ["C1:rule:complaint_spike"] and first["new_rules"] == ["complaint_spike"]
    assert not first["tier_rose"] and [h["rule"] for h in first["rule_hits"]] == ["engagement_drop", "complaint_spike"]
    assert second_keys == ["C2:tier:high"] and second["tier_rose"] and second["previous_tier"] == "medium"
    assert {"churn_probability", "risk_tier", "reasons", "action", "segment", "model_version"} <= set(second)


def test_no_change_a_lower_tier_or_an_error_raises_nothing() -> None:
    before = {"C1": answer("C1", "high", "complaint_spike")}
    after = [
        answer("C1", "medium", "complaint_spike"),
        {"customer_id": "C9", "error": "unknown customer_id 'C9': no online features"},
    ]
    assert warnings(before, after, TIERS) == []


def test_a_customer_without_an_answer_before_warns_on_each_rule_and_its_tier() -> None:
    ((alert, keys),) = warnings({}, [answer("C5", "medium", "complaint_spike", "engagement_drop")], TIERS)
    assert keys == ["C5:rule:complaint_spike", "C5:rule:engagement_drop", "C5:tier:medium"]
    assert alert["previous_tier"] is None
