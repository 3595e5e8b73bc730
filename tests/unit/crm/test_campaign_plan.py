"""Campaign planning on constructed alert lists: stable seeded groups, control shares per action,
who is alerted (the expected-profit threshold), and the campaign record's figures."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core import names
from core.settings import ConfigError, Settings, parse_settings
from crm.campaigns.plan import (
    CONTACT,
    CONTROL,
    EXPECTED_PROFIT,
    GROUP,
    SUCCESS_SOURCE,
    TREATMENT,
    assignment_draws,
    campaign_id_for,
    campaign_record,
    plan_campaign,
)

AS_OF = dt.date(2025, 6, 30)
NOW = dt.datetime(2025, 7, 1, 9, 0, tzinfo=dt.UTC)


def settings(**campaigns: Any) -> Settings:  # noqa: ANN401
    return parse_settings({"crm": {"campaigns": campaigns}}, "test", env={})


def alert_list(n: int = 4000, seed: int = 1) -> pd.DataFrame:
    """A constructed alert list: ids, probabilities, values and actions (a tenth on the default action)."""
    rng = np.random.default_rng(seed)
    actions = rng.choice(
        ["time_limited_coupon", "account_care_call", "win_back_offer", "monitor"], n, p=[0.4, 0.3, 0.2, 0.1]
    )
    return pd.DataFrame(
        {
            names.CUSTOMER_ID: [f"C{i:07d}" for i in range(n)],
            "as_of": AS_OF,
            names.PREDICTION: rng.uniform(0.05, 0.9, n),
            "risk_tier": "high",
            "segment": rng.choice(["loyal", "at_risk", "lost"], n),
            "action": actions,
            "customer_value": rng.uniform(100, 2000, n),
            "expected_loss": 0.0,
            "model_version": "3",
        }
    )


def test_draws_are_stable_and_independent_of_the_other_customers() -> None:
    ids = [f"C{i:07d}" for i in range(1000)]
    draws = assignment_draws("2025-06-30-v3", ids, seed=0)
    assert np.array_equal(draws, assignment_draws("2025-06-30-v3", ids, seed=0))
    # A customer's draw does not depend on who else is scored, nor on the order.
    assert np.array_equal(assignment_draws("2025-06-30-v3", ids[::-1], seed=0), draws[::-1])
    assert assignment_draws("2025-06-30-v3", ids[500:501], seed=0)[0] == draws[500]
    # Uniform on [0, 1); another campaign or seed draws other groups.
    assert draws.min() >= 0 and draws.max() < 1 and abs(draws.mean() - 0.5) < 0.03
    other = assignment_draws("2025-07-07-v3", ids, seed=0)
    assert np.corrcoef(draws, other)[0, 1] < 0.1
    assert not np.array_equal(draws < 0.1, assignment_draws("2025-06-30-v3", ids, seed=1) < 0.1)


def test_every_alerted_customer_gets_a_group_with_the_action_s_control_share() -> None:
    s = settings(control_share=0.2, control_shares={"account_care_call": 0.5})
    alerts = alert_list()
    planned = plan_campaign(alerts, s, "2025-06-30-v3")
    assert len(planned) == len(alerts) and set(planned[names.CUSTOMER_ID]) == set(alerts[names.CUSTOMER_ID])
    default = planned["action"] == "monitor"
    assert planned.loc[default, GROUP].isna().all()  # the default action is no campaign
    alerted = planned[planned[GROUP].notna()]
    assert set(alerted[GROUP]) == {TREATMENT, CONTROL}
    shares = alerted.groupby("action")[GROUP].apply(lambda g: (g == CONTROL).mean())
    assert shares["account_care_call"] == pytest.approx(0.5, abs=0.05)
    assert shares["time_limited_coupon"] == pytest.approx(0.2, abs=0.04)
    # Control customers get no action: the list says whom to contact.
    assert (planned[CONTACT] == (planned[GROUP] == TREATMENT)).all()
    # The same campaign plans the same groups, whatever the order of the list.
    again = plan_campaign(alerts.sample(frac=1.0, random_state=3), s, "2025-06-30-v3")
    merged = planned.merge(again, on=names.CUSTOMER_ID)
    assert (merged[f"{GROUP}_x"].fillna("-") == merged[f"{GROUP}_y"].fillna("-")).all()


def test_expected_profit_ranks_and_thresholds_the_list() -> None:
    s = settings(costs={"account_care_call": 40.0})
    alerts = alert_list()
    planned = plan_campaign(alerts, s, "c1")
    cost = np.where(planned["action"] == "account_care_call", 40.0, s.training.retention_cost)
    expected = planned[names.PREDICTION] * s.training.retention_success * planned["customer_value"] - cost
    assert np.allclose(planned[EXPECTED_PROFIT], expected)
    assert planned[EXPECTED_PROFIT].is_monotonic_decreasing
    # Alerted: a non-default action with a positive expected profit.
    unprofitable = (planned[EXPECTED_PROFIT] <= 0) & (planned["action"] != "monitor")
    assert unprofitable.any() and planned.loc[unprofitable, GROUP].isna().all()
    assert planned.loc[(planned[EXPECTED_PROFIT] > 0) & (planned["action"] != "monitor"), GROUP].notna().all()
    # Without a threshold every non-default action is alerted.
    everyone = plan_campaign(alerts, settings(min_expected_profit=None), "c1")
    assert everyone[GROUP].notna().sum() == (alerts["action"] != "monitor").sum()


def test_uniform_costs_keep_the_expected_loss_order() -> None:
    alerts = alert_list()
    alerts["expected_loss"] = alerts[names.PREDICTION] * alerts["customer_value"]
    planned = plan_campaign(alerts, settings(), "c1")
    assert planned["expected_loss"].is_monotonic_decreasing


def test_a_measured_effect_replaces_the_configured_success() -> None:
    s = settings()
    planned = plan_campaign(alert_list(), s, "c1", measured={"time_limited_coupon": 0.0})
    coupon = planned["action"] == "time_limited_coupon"
    assert (planned.loc[coupon, SUCCESS_SOURCE] == "measured").all()
    assert (planned.loc[~coupon, SUCCESS_SOURCE] == "configured").all()
    # A coupon that keeps nobody costs its price and is never worth sending.
    assert np.allclose(planned.loc[coupon, EXPECTED_PROFIT], -s.training.retention_cost)
    assert planned.loc[coupon, GROUP].isna().all()


def test_the_record_counts_customers_groups_and_cost_per_action() -> None:
    s = settings(control_share=0.25)
    planned = plan_campaign(alert_list(), s, campaign_id_for(AS_OF, "3"))
    record = campaign_record(planned, s, AS_OF, "3", NOW)
    assert record["campaign_id"] == "2025-06-30-v3" and record["as_of"] == "2025-06-30"
    assert record["window_end"] == "2025-07-14" and record["outcome_known"] == "2025-07-30"
    assert record["model_version"] == "3" and record["seed"] == 0
    alerted = planned[planned[GROUP].notna()]
    assert record["customers"] == len(alerted) == record["treatment"] + record["control"]
    for entry in record["actions"]:
        rows = alerted[alerted["action"] == entry["action"]]
        assert entry["customers"] == len(rows)
        assert entry["control"] == (rows[GROUP] == CONTROL).sum()
        assert entry["expected_cost"] == pytest.approx(entry["treatment"] * s.training.retention_cost)
    assert record["expected_cost"] == pytest.approx(sum(e["expected_cost"] for e in record["actions"]))


def test_bad_campaign_settings_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"crm\.campaigns\.control_shares: unknown action 'coupon'"):
        settings(control_shares={"coupon": 0.2})
    with pytest.raises(ConfigError, match=r"crm\.campaigns\.control_share"):
        settings(control_share=1.5)
    with pytest.raises(ConfigError, match=r"costs must not be negative"):
        settings(costs={"win_back_offer": -1})
