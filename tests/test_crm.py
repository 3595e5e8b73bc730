"""CRM early warning on constructed customers: rules fire exactly where they should, segment and
layer boundaries, playbook choice and validation, and the KPI formulas."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn import names
from churn.settings import ConfigError, parse_settings
from features.crm import (
    ACTION,
    RULE_HITS,
    SEGMENT,
    CrmConfigError,
    early_warning,
    layer_labels,
    rfm_segments,
)
from features.kpi import annualise, churn_by_observation, cohort_retention, monthly_churn

DEFAULT = parse_settings({}, "test", env={})


def _customer(cid: str, **features: float) -> dict[str, Any]:
    base: dict[str, Any] = {
        names.CUSTOMER_ID: cid,
        "purchases_frequency_change": 0.0,
        "purchases_days_since_last": 5.0,
        "purchases_count_30d": 2.0,
        "purchases_spend_90d": 100.0,
        "service_complaints_30d": 0.0,
        "engagement_change": 0.0,
        "engagement_visits_30d": 2.0,
        "engagement_days_since_last_activity": 1.0,
        "purchases_rfm_recency": 3.0,
        "purchases_rfm_frequency": 3.0,
    }
    return base | features


def _hits(frame: pd.DataFrame) -> dict[str, set[str]]:
    out = early_warning(DEFAULT.crm, frame)
    return {row[names.CUSTOMER_ID]: {h["rule"] for h in row[RULE_HITS]} for _, row in out.iterrows()}


def test_each_rule_fires_exactly_at_its_threshold() -> None:
    frame = pd.DataFrame(
        [
            _customer("calm"),
            _customer("drop40", purchases_frequency_change=-0.4),  # at the threshold: fires
            _customer("drop39", purchases_frequency_change=-0.39),
            _customer("idle45", purchases_days_since_last=45.0),
            _customer("idle44", purchases_days_since_last=44.0),
            _customer("never", purchases_days_since_last=float("nan")),  # no purchase ever: missing never fires
            _customer("complain2", service_complaints_30d=2.0),
            _customer("complain1", service_complaints_30d=1.0),
            _customer("quiet", engagement_change=-0.5),
            _customer("browse", engagement_visits_30d=5.0, purchases_count_30d=0.0),
            _customer("browse_buy", engagement_visits_30d=5.0, purchases_count_30d=1.0),
            _customer("few_visits", engagement_visits_30d=4.0, purchases_count_30d=0.0),
        ]
    )
    hits = _hits(frame)
    assert hits == {
        "calm": set(),
        "drop40": {"purchases_falling"},
        "drop39": set(),
        "idle45": {"no_recent_purchase"},
        "idle44": set(),
        "never": set(),
        "complain2": {"complaint_spike"},
        "complain1": set(),
        "quiet": {"engagement_falling"},
        "browse": {"browsing_not_buying"},
        "browse_buy": set(),
        "few_visits": set(),
    }


def test_a_hit_carries_the_values_that_triggered_it() -> None:
    frame = pd.DataFrame([_customer("browse", engagement_visits_30d=7.0, purchases_count_30d=0.0)])
    (hit,) = early_warning(DEFAULT.crm, frame)[RULE_HITS].iloc[0]
    assert hit["rule"] == "browsing_not_buying"
    assert hit["values"] == {"engagement_visits_30d": 7.0, "purchases_count_30d": 0.0}
    assert "visits" in hit["description"]


def test_rfm_segment_boundaries() -> None:
    cells = [(r, f) for r in range(1, 6) for f in range(1, 6)]
    frame = pd.DataFrame(
        {"purchases_rfm_recency": [c[0] for c in cells], "purchases_rfm_frequency": [c[1] for c in cells]}
    )
    seg = dict(zip(cells, rfm_segments(DEFAULT.crm, frame), strict=True))
    assert seg[(4, 4)] == seg[(5, 5)] == "champions" and seg[(3, 4)] == "loyal" and seg[(3, 3)] == "loyal"
    assert seg[(5, 1)] == "new" and seg[(4, 2)] == "promising" and seg[(3, 1)] == "promising"
    assert seg[(2, 4)] == seg[(1, 5)] == "cannot_lose" and seg[(2, 3)] == seg[(1, 2)] == "at_risk"
    assert seg[(2, 1)] == "hibernating" and seg[(1, 1)] == "lost"
    # Without purchase scores (e.g. no purchases in the data) everyone is in the catch-all segment.
    assert set(rfm_segments(DEFAULT.crm, pd.DataFrame({"x": [1, 2]}))) == {"needs_attention"}


def test_layer_boundaries_fixed_and_quantile() -> None:
    activity = DEFAULT.crm.layers["activity"]
    days = pd.Series([0, 13, 14, 44, 45, 400, np.nan])
    assert layer_labels(activity, days).tolist() == [
        "active",
        "active",
        "cooling",
        "cooling",
        "dormant",
        "dormant",
        "dormant",
    ]
    value = DEFAULT.crm.layers["value"]  # quantiles 0 / 0.5 / 0.8
    spend = pd.Series(np.arange(10, dtype=float))
    labels = layer_labels(value, spend)
    assert labels.tolist() == ["low"] * 5 + ["mid"] * 3 + ["high"] * 2  # the top 20%: 8 and 9
    # Quantiles from a reference population: one customer is labelled as in the whole population.
    assert layer_labels(value, pd.Series([8.0]), reference=spend).tolist() == ["high"]


def test_playbook_picks_the_highest_priority_match() -> None:
    frame = pd.DataFrame(
        [
            _customer("vip_at_risk", purchases_spend_90d=1000.0, service_complaints_30d=3.0),
            _customer("complainer", service_complaints_30d=3.0, purchases_spend_90d=1.0),
            _customer("browser", engagement_visits_30d=6.0, purchases_count_30d=0.0, purchases_spend_90d=2.0),
            _customer("fading", purchases_frequency_change=-0.8, purchases_spend_90d=3.0),
            _customer("champion", purchases_rfm_recency=5.0, purchases_rfm_frequency=5.0, purchases_spend_90d=4.0),
            _customer("fine", purchases_spend_90d=5.0),
        ]
    )
    probability = [0.9, 0.9, 0.3, 0.3, 0.3, 0.05]
    tiers = ["high", "high", "medium", "medium", "medium", "low"]
    out = early_warning(DEFAULT.crm, frame, probability, tiers).set_index(names.CUSTOMER_ID)
    assert out.loc["vip_at_risk", "value"] == "high"
    assert out[ACTION].to_dict() == {
        "vip_at_risk": "account_care_call",  # high value + high risk beats the complaint rule
        "complainer": "service_recovery",
        "browser": "personalised_recommendation",
        "fading": "time_limited_coupon",
        "champion": "vip_care",
        "fine": "monitor",
    }
    assert out.loc["champion", SEGMENT] == "champions"
    assert out.loc["vip_at_risk", "expected_loss"] == pytest.approx(0.9 * 1000 * 365 / 90)


def _crm(**overrides: Any) -> dict[str, Any]:
    return {"crm": overrides}


@pytest.mark.parametrize(
    ("crm", "message"),
    [
        (
            _crm(playbook=[{"action": "a", "priority": 1, "when": {"segment": ["champs"]}}]),
            "segment 'champs' does not exist",
        ),
        (_crm(playbook=[{"action": "a", "priority": 1, "when": {"rules": ["nope"]}}]), "rules 'nope' does not exist"),
        (_crm(playbook=[{"action": "a", "priority": 1, "when": {"mood": ["x"]}}]), "unknown dimension 'mood'"),
        (
            _crm(
                playbook=[
                    {"action": "wide", "priority": 1, "when": {"tier": ["high", "medium"]}},
                    {"action": "narrow", "priority": 2, "when": {"tier": ["high"], "segment": ["lost"]}},
                ]
            ),
            "crm.playbook[1] (narrow) is unreachable",
        ),
        (
            _crm(
                playbook=[
                    {"action": "a", "priority": 3, "when": {"rules": ["complaint_spike"]}},
                    {"action": "b", "priority": 3, "when": {"rules": ["purchases_falling"]}},
                ]
            ),
            "(a) and crm.playbook[1] (b) overlap",
        ),
        (
            _crm(rfm_segments=[{"name": "all", "recency": [1, 5]}, {"name": "late", "recency": [1, 1]}]),
            "segment 'late' is unreachable",
        ),
        (_crm(rules=[{"name": "r", "all": [{"feature": "x", "op": "=>", "value": 1}]}]), "crm.rules.0.all.0.op"),
        (_crm(layers={"value": {"feature": "x", "bins": {"a": 5, "b": 5}, "missing": "a"}}), "distinct lower bounds"),
    ],
)
def test_bad_rules_and_playbooks_are_errors_naming_the_entry(crm: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(crm, "crm.yaml", env={})
    assert message in str(err.value)


def test_same_priority_entries_on_disjoint_customers_are_fine() -> None:
    playbook = [
        {"action": "a", "priority": 1, "when": {"tier": ["high"]}},
        {"action": "b", "priority": 1, "when": {"tier": ["low"]}},
    ]
    assert len(parse_settings(_crm(playbook=playbook), "x", env={}).crm.playbook) == 2


def test_a_rule_naming_a_missing_feature_is_an_error_naming_it() -> None:
    purchases_only = pd.DataFrame([_customer("a")]).drop(
        columns=["engagement_change", "engagement_visits_30d", "service_complaints_30d"]
    )
    with pytest.raises(CrmConfigError) as err:
        early_warning(DEFAULT.crm, purchases_only)
    text = str(err.value)
    assert "crm.rules 'complaint_spike' uses feature 'service_complaints_30d'" in text
    assert "crm.layers 'intent' uses feature 'engagement_visits_30d'" in text


def test_annualisation_formula() -> None:
    assert annualise(0.05, 365 / 12) == pytest.approx(1 - 0.95**12)
    assert annualise(0.05, 365 / 12) == pytest.approx(0.4596, abs=1e-4)  # not 12 x 5% = 60%
    assert annualise(0.0, 30) == 0.0 and annualise(1.0, 30) == 1.0
    assert annualise(0.2, 365) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        annualise(0.1, 0)


def test_monthly_churn_and_cohort_retention_on_constructed_customers() -> None:
    customers = pd.DataFrame(
        {
            names.CUSTOMER_ID: ["a", "b", "c", "d", "e"],
            names.SIGNUP_DATE: pd.to_datetime(["2025-01-10", "2025-01-20", "2025-01-05", "2025-02-03", "2025-02-10"]),
            names.CHURN_DATE: pd.to_datetime([None, "2025-02-14", "2025-03-01", "2025-03-20", None]),
        }
    )
    monthly = monthly_churn(customers, pd.Timestamp("2025-03-31")).set_index("month")
    feb, mar = monthly.loc[pd.Timestamp("2025-02-01")], monthly.loc[pd.Timestamp("2025-03-01")]
    assert (feb["customers"], feb["churned"]) == (3, 1)  # a, b, c in the base; b leaves in February
    assert (mar["customers"], mar["churned"]) == (4, 2)  # a, c, d, e; c and d leave in March
    assert mar["annualised"] == pytest.approx(1 - 0.5 ** (365 / 31))
    retention = cohort_retention(customers, None, pd.Timestamp("2025-03-31"))
    # Still a customer at the end of month k after the signup month.
    assert retention.loc["2025-01", 0] == 1.0  # nobody of January left in January
    assert retention.loc["2025-01", 1] == pytest.approx(2 / 3)  # b left in February; c leaves on 1 March
    assert retention.loc["2025-01", 2] == pytest.approx(1 / 3)  # and c in March
    assert retention.loc["2025-02", 1] == pytest.approx(1 / 2)  # d left in March
    assert pd.isna(retention.loc["2025-02"].get(2, np.nan))  # April is not in the data


def test_churn_by_observation_annualises_over_the_horizon() -> None:
    labels = pd.DataFrame(
        {
            names.CUSTOMER_ID: list("abcd"),
            names.EVENT_TIMESTAMP: pd.to_datetime(["2025-03-03"] * 4, utc=True),
            names.LABEL: [1, 0, 0, 0],
        }
    )
    out = churn_by_observation(labels, horizon_days=30)
    assert out["churn_rate"].iloc[0] == 0.25
    assert out["annualised"].iloc[0] == pytest.approx(1 - 0.75 ** (365 / 30))


def test_bin_order_in_the_config_does_not_matter() -> None:
    layers = {"activity": {"feature": "d", "bins": {"dormant": 45, "active": 0, "cooling": 14}, "missing": "dormant"}}
    crm = parse_settings({"crm": {"layers": layers, "playbook": []}}, "x", env={}).crm
    days = pd.Series([0, 14, 45, np.nan])
    assert layer_labels(crm.layers["activity"], days).tolist() == ["active", "cooling", "dormant", "dormant"]
