"""Simulated retention campaigns with a known truth: who the CRM reached, whom the action saved.

A campaign's alerted customers (id, action, group, segment) and the generated customers (their
`churn_date`, which is what happens without any action) go in. Each customer draws, from the
seed alone:

* whether the CRM reaches them (`compliance` of the treatment group; `contamination` of the
  control group is acted on anyway);
* whether the action would keep them, with the probability `effect(action, segment)`: the
  injected effect, the share of would-be churners the action keeps. Some segments are
  persuadable, some are not (the lost causes and sure things), and some actions do nothing.

A reached customer who would have churned within the label horizon after the as-of date and whom
the action keeps gets no churn date: the label becomes "stayed". Their generated events still
stop where the averted churn would have been; the contractual label reads the churn date only.

The injected relative effect on the churn rate is then exactly `(compliance - contamination) x
effect` for the intent to treat and `effect` for the customers the CRM reached (compliers), in
every (action, segment) cell whatever its churn rate: what `crm.campaigns.effects` must recover.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core import names

TREATMENT = "treatment"
CONTROL = "control"

PERSUADABLE: dict[str, float] = {
    "champions": 0.3,
    "loyal": 0.5,
    "new": 0.6,
    "promising": 0.6,
    "cannot_lose": 0.5,
    "at_risk": 0.45,
    "hibernating": 0.05,
    "lost": 0.0,
    "needs_attention": 0.2,
}
"""Per RFM segment, the share of would-be churners a full-strength action keeps: recent, engaged
customers can be talked round; the hibernating and lost, whom a churn model ranks highest, cannot."""

STRENGTH: dict[str, float] = {
    "account_care_call": 1.0,
    "service_recovery": 1.0,
    "vip_care": 0.8,
    "time_limited_coupon": 0.7,
    "win_back_offer": 0.6,
    "personalised_recommendation": 0.0,
}
"""Per action, its strength: a personalised recommendation keeps nobody."""


@dataclass(frozen=True)
class CampaignTruth:
    """The injected effects of a simulated campaign."""

    persuadable: Mapping[str, float] = field(default_factory=lambda: dict(PERSUADABLE))
    """Segment -> share of would-be churners a full-strength action keeps."""
    strength: Mapping[str, float] = field(default_factory=lambda: dict(STRENGTH))
    """Action -> its strength (an action not listed has strength 1)."""
    default_persuadable: float = 0.2
    """A segment not in `persuadable`."""
    compliance: float = 0.85
    """Share of the treatment group the CRM reaches."""
    contamination: float = 0.0
    """Share of the control group acted on anyway."""

    def effect(self, action: str, segment: str) -> float:
        """The share of would-be churners the action keeps in the segment (among those reached)."""
        share = self.persuadable.get(segment, self.default_persuadable) * self.strength.get(action, 1.0)
        return float(min(max(share, 0.0), 1.0))

    def table(self, cells: pd.DataFrame) -> pd.DataFrame:
        """The injected effects of the (action, segment) cells of `cells`.

        Returns:
            action, segment, effect (among those reached: the CACE's relative effect) and
            itt_relative ((compliance - contamination) x effect).
        """
        pairs = cells[[names.ACTION, "segment"]].drop_duplicates().sort_values([names.ACTION, "segment"])
        effect = [self.effect(a, s) for a, s in zip(pairs[names.ACTION], pairs["segment"], strict=True)]
        return pairs.assign(
            effect=effect, itt_relative=np.array(effect) * (self.compliance - self.contamination)
        ).reset_index(drop=True)


@dataclass(frozen=True)
class SimulatedCampaign:
    """What a simulated campaign did."""

    actions: pd.DataFrame
    """The CRM's log: customer_id, action, action_timestamp (UTC), cost; reached customers only."""
    customers: pd.DataFrame
    """The customers with the churn dates the actions averted removed."""
    outcomes: pd.DataFrame
    """Per alerted customer: customer_id, action, group, segment, effect, reached, would_churn
    (without action), saved."""


def simulate_campaign(
    assignments: pd.DataFrame,
    customers: pd.DataFrame,
    as_of: dt.date,
    *,
    horizon_days: int,
    window_days: int,
    costs: Mapping[str, float],
    seed: int,
    truth: CampaignTruth | None = None,
) -> SimulatedCampaign:
    """Play a campaign on generated customers: the CRM's actions and the churn they avert.

    Args:
        assignments: The alerted customers: customer_id, action, group (treatment or control), segment.
        customers: The generated customers: customer_id, churn_date (NaT: no churn in the data).
        as_of: The campaign's date: actions fall within `window_days` from it, and a customer
            would churn when their churn date falls within `horizon_days` from it.
        horizon_days: The label horizon.
        window_days: The campaign window.
        costs: Action -> cost of one contact (logged as the action's cost).
        seed: Seed of every draw.
        truth: The injected effects; default `CampaignTruth()`.

    Returns:
        The actions log, the customers with averted churn dates removed, and each customer's draws.
    """
    truth = truth or CampaignTruth()
    rows = assignments.sort_values(names.CUSTOMER_ID, kind="stable").reset_index(drop=True)
    ids = rows[names.CUSTOMER_ID].astype(str)
    n = len(rows)
    rng = np.random.default_rng(seed)
    reach_draw, keep_draw, day, second = (
        rng.random(n),
        rng.random(n),
        rng.integers(0, window_days, n),
        rng.integers(0, 86_400, n),
    )
    in_treatment = (rows["group"] == TREATMENT).to_numpy()
    reached = np.where(in_treatment, reach_draw < truth.compliance, reach_draw < truth.contamination)
    effect = np.array([truth.effect(a, s) for a, s in zip(rows[names.ACTION], rows["segment"], strict=True)])
    churn = pd.to_datetime(customers.set_index(customers[names.CUSTOMER_ID].astype(str))[names.CHURN_DATE])
    when = ids.map(churn)
    start = pd.Timestamp(as_of)
    would_churn = ((when >= start) & (when < start + pd.Timedelta(days=horizon_days))).to_numpy()
    saved = reached & would_churn & (keep_draw < effect)
    edited = customers.copy()
    averted = edited[names.CUSTOMER_ID].astype(str).isin(set(ids[saved]))
    edited.loc[averted, names.CHURN_DATE] = pd.NaT
    stamp = pd.Timestamp(as_of, tz="UTC") + pd.to_timedelta(day, unit="D") + pd.to_timedelta(second, unit="s")
    actions = pd.DataFrame(
        {
            names.CUSTOMER_ID: ids,
            names.ACTION: rows[names.ACTION].astype(str),
            names.ACTION_TIMESTAMP: stamp,
            names.ACTION_COST: rows[names.ACTION].map(lambda a: float(costs.get(a, 0.0))),
        }
    )[reached].sort_values(names.ACTION_TIMESTAMP, kind="stable")
    outcomes = rows[[names.CUSTOMER_ID, names.ACTION, "group", "segment"]].assign(
        effect=effect, reached=reached, would_churn=would_churn, saved=saved
    )
    return SimulatedCampaign(actions.reset_index(drop=True), edited, outcomes)


def dirty_rows(actions: pd.DataFrame, as_of: dt.date, window_days: int) -> pd.DataFrame:
    """Three rows a real CRM log has and the actions contract quarantines: an unknown customer, an
    unknown action, and an action after the campaign window (copies of the log's first row)."""
    if actions.empty:
        return actions
    first = actions.iloc[[0]]
    late = pd.Timestamp(as_of, tz="UTC") + pd.Timedelta(days=window_days + 3)
    return pd.concat(
        [
            first.assign(**{names.CUSTOMER_ID: "NOT-A-CUSTOMER"}),
            first.assign(**{names.ACTION: "carrier_pigeon"}),
            first.assign(**{names.ACTION_TIMESTAMP: late}),
        ],
        ignore_index=True,
    )
