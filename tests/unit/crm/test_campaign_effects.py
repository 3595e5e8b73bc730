"""Measured campaign effects: the estimators on hand-counted data, and on generated customers with
injected effects (the generator's campaign simulation), where they must recover the truth."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from core import names
from crm.campaigns.effects import cell_effects, effects_by, pooled
from crm.campaigns.evaluation import campaign_rows, evaluate_campaign
from crm.campaigns.plan import assignment_draws
from features.generator.campaigns import CampaignTruth, dirty_rows, simulate_campaign
from features.generator.dataset import DEFAULT_START, generate
from features.labels import compute_labels

HORIZON = 60
AS_OF = DEFAULT_START + dt.timedelta(days=90)


def arm(group: str, n: int, churned: int, treated: int, churned_treated: int, value: float = 100.0) -> pd.DataFrame:
    """`n` customers of one arm: `churned` churners, `treated` reached, `churned_treated` of them churners."""
    y = np.r_[np.ones(churned_treated), np.zeros(treated - churned_treated), np.ones(churned - churned_treated)]
    d = np.r_[np.ones(treated), np.zeros(churned - churned_treated)]
    y = np.r_[y, np.zeros(n - len(y))]
    d = np.r_[d, np.zeros(n - len(d))]
    return pd.DataFrame({"group": group, "churned": y, "treated": d, "customer_value": value, "cost": 2.0 * d})


def test_itt_relative_effect_and_cace_by_hand() -> None:
    # Control: 1000, 200 churn, nobody reached. Treatment: 1000, 140 churn; 800 reached, 80 of them churn.
    rows = pd.concat([arm("control", 1000, 200, 0, 0), arm("treatment", 1000, 140, 800, 80)])
    out = cell_effects(rows)
    assert out["itt"] == pytest.approx(0.06)
    se = np.sqrt(0.2 * 0.8 / 1000 + 0.14 * 0.86 / 1000)
    assert out["itt_low"] == pytest.approx(0.06 - 1.959964 * se, rel=1e-5)
    assert out["relative"] == pytest.approx(0.3)  # 1 - 0.14 / 0.2
    assert out["relative_low"] < 0.3 < out["relative_high"]
    # Wald: 0.06 / 0.8 reached; compliers' churn without the action: (0.2 - 60/1000) / 0.8 = 0.175.
    assert out["cace"] == pytest.approx(0.075)
    assert out["cace_relative"] == pytest.approx(0.075 / 0.175)
    assert out["cace_low"] < 0.075 < out["cace_high"]
    assert out["cost"] == 1600.0 and out["saved_customers"] == pytest.approx(60.0)
    assert out["saved_value"] == pytest.approx(6000.0) and out["net_value"] == pytest.approx(4400.0)
    assert out["nnt"] == pytest.approx(1 / 0.06) and out["zero_in_ci"] == 0.0


def test_no_effect_covers_zero_and_pooling_two_campaigns_narrows_the_interval() -> None:
    rows = pd.concat([arm("control", 500, 50, 0, 0), arm("treatment", 500, 50, 400, 40)])
    one = effects_by(rows.assign(action="coupon"), ["action"])
    assert one["zero_in_ci"].iloc[0] == 1.0 and one["itt"].iloc[0] == pytest.approx(0.0)
    assert np.isinf(one["nnt"].iloc[0])
    both = pooled(pd.concat([one.assign(campaign_id="a"), one.assign(campaign_id="b")]), "action")
    width = one["itt_high"].iloc[0] - one["itt_low"].iloc[0]
    assert both["itt_high"].iloc[0] - both["itt_low"].iloc[0] == pytest.approx(width / np.sqrt(2))
    assert both["treatment_n"].iloc[0] == 1000 and both["zero_in_ci"].iloc[0] == 1.0


@pytest.fixture(scope="module")
def simulated() -> tuple[pd.DataFrame, pd.DataFrame, CampaignTruth]:
    """A campaign on 60,000 generated customers: two actions, value tiers as segments, half held out."""
    data = generate(60_000, 160, seed=11)
    customers = data.customers
    start = pd.Timestamp(AS_OF)
    active = customers[
        (customers[names.SIGNUP_DATE] < start)
        & (customers[names.CHURN_DATE].isna() | (customers[names.CHURN_DATE] >= start))
    ]
    ids = active[names.CUSTOMER_ID].astype(str)
    rng = np.random.default_rng(0)
    assignments = pd.DataFrame(
        {
            names.CUSTOMER_ID: ids.to_numpy(),
            names.ACTION: rng.choice(["coupon", "call"], len(ids)),
            "segment": active["value_tier"].to_numpy(),
            "group": np.where(assignment_draws("sim-0", ids, 0) < 0.5, "control", "treatment"),
            "unit_cost": 5.0,
            "customer_value": 500.0,
        }
    )
    truth = CampaignTruth(persuadable={"low": 0.0, "mid": 0.4, "high": 0.8}, strength={"coupon": 0.6, "call": 1.0})
    sim = simulate_campaign(
        assignments,
        customers,
        AS_OF,
        horizon_days=HORIZON,
        window_days=14,
        costs={"coupon": 5.0, "call": 20.0},
        seed=0,
        truth=truth,
    )
    keys = assignments[[names.CUSTOMER_ID]].assign(**{names.EVENT_TIMESTAMP: pd.Timestamp(AS_OF, tz="UTC")})
    labels = compute_labels(
        keys,
        sim.customers,
        pd.DataFrame(),
        kind="contractual",
        horizon_days=HORIZON,
        last_event_day=DEFAULT_START + dt.timedelta(days=159),
    )
    rows = campaign_rows(assignments, labels, sim.actions)
    return rows, truth.table(assignments), truth


def test_evaluation_recovers_the_injected_effects(simulated: tuple[pd.DataFrame, pd.DataFrame, CampaignTruth]) -> None:
    rows, injected, truth = simulated
    record = {"campaign_id": "sim-0", "as_of": AS_OF.isoformat(), "model_version": "0"}
    strict = evaluate_campaign(record, rows, missing=0, level=0.99, seed=0)
    cells = pd.DataFrame(strict["by_segment"]).merge(injected, on=[names.ACTION, "segment"])
    assert len(cells) == 6 and (cells["treatment_n"] > 1000).all()
    # Every injected effect lies within its 99% interval: intent to treat ((reached share) x effect) ...
    assert ((cells["relative_low"] <= cells["itt_relative"]) & (cells["itt_relative"] <= cells["relative_high"])).all()
    # ... and among the customers the CRM reached (the Wald estimator): the effect itself.
    assert ((cells["cace_relative_low"] <= cells["effect"]) & (cells["effect"] <= cells["cace_relative_high"])).all()
    assert (cells.loc[cells["effect"] == 0, "zero_in_ci"] == 1).all()  # the lost causes
    assert (cells["relative_high"] - cells["relative_low"]).mean() < 0.4
    # At 95%, at most 2 of the 12 intervals miss (1 in 20 each, by chance), and the call's
    # persuadable segments are told apart from zero.
    usual = pd.DataFrame(evaluate_campaign(record, rows, missing=0, level=0.95, seed=0)["by_segment"]).merge(
        injected, on=[names.ACTION, "segment"]
    )
    assert (usual.loc[(usual["effect"] >= 0.4) & (usual[names.ACTION] == "call"), "relative_low"] > 0).all()
    misses = ((usual["itt_relative"] < usual["relative_low"]) | (usual["itt_relative"] > usual["relative_high"])).sum()
    misses += ((usual["effect"] < usual["cace_relative_low"]) | (usual["effect"] > usual["cace_relative_high"])).sum()
    assert misses <= 2
    # The reached share is the simulation's compliance; nobody in control was acted on.
    action = pd.DataFrame(strict["by_action"])
    assert action["treated_share"].to_numpy() == pytest.approx(truth.compliance, abs=0.02)
    assert (action["control_treated_share"] == 0).all()


def test_dirty_rows_are_one_of_each_kind_the_contract_quarantines() -> None:
    log = pd.DataFrame(
        {
            names.CUSTOMER_ID: ["C1"],
            names.ACTION: ["coupon"],
            names.ACTION_TIMESTAMP: [pd.Timestamp(AS_OF, tz="UTC")],
            names.ACTION_COST: [5.0],
        }
    )
    dirty = dirty_rows(log, AS_OF, 14)
    assert list(dirty[names.CUSTOMER_ID]) == ["NOT-A-CUSTOMER", "C1", "C1"]
    assert dirty[names.ACTION].iloc[1] == "carrier_pigeon"
    assert dirty[names.ACTION_TIMESTAMP].iloc[2] == pd.Timestamp(AS_OF, tz="UTC") + pd.Timedelta(days=17)
