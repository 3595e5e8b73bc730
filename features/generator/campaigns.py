"""Simulated retention campaigns with a known truth: who the CRM reached, whom the action saved or drove away.

A campaign's alerted customers (id, action, group, segment, churn probability) and the generated
customers (their `churn_date`, which is what happens without any action) go in. Each customer draws,
from the seed alone:

* whether the CRM reaches them (`compliance` of the treatment group; `contamination` of the
  control group is acted on anyway);
* whether the action would keep them, with the probability `keep(action, customer)`: the share of
  would-be churners the action keeps;
* whether the action would drive them away, with the probability `harm(action, customer)`: the
  share of would-be stayers a contact makes leave (the "sleeping dogs").

Two truths come with it. By segment (`CampaignTruth(persuadable=...)`): the share kept depends on
the RFM segment and the action's strength, nobody is harmed. By risk (`CampaignTruth.by_risk()`,
what `churn campaigns simulate` plays): the customer's persona follows the rank of their churn
probability within the campaign, and persuadability is deliberately *not* aligned with it: the
likeliest churners are lost causes (nothing keeps them), the next are sleeping dogs (a contact
drives 30% of them away), the middle band is persuadable, the least likely churners are sure
things. Ranking by churn probability then contacts the lost causes and sleeping dogs first; ranking
by uplift (`crm.campaigns.uplift`) can learn to contact the persuadable first.

A reached customer who would have churned within the label horizon after the as-of date and whom
the action keeps gets no churn date: the label becomes "stayed" (their generated events still stop
where the averted churn would have been; the contractual label reads the churn date only). A reached
would-be stayer the action drives away gets a churn date within the horizon.

Per customer the injected effect on the churn probability (absolute) is `keep x would_churn -
harm x (1 - would_churn)` among the reached (the CACE) and `(compliance - contamination)` times it
for the intent to treat; `injected_effects` averages it over any cells (action, segment, persona):
what `crm.campaigns.effects` must recover. Without harm, the relative effect is exactly
`(compliance - contamination) x keep` in every (action, segment) cell whatever its churn rate.
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
class Persona:
    """A band of the campaign's customers by churn-probability rank, and what an action does to it."""

    name: str
    upto: float
    """The band holds the customers whose churn-probability rank in the campaign (0 lowest, 1 highest) is below this."""
    keep: float
    """Share of its would-be churners a full-strength action keeps."""
    harm: float = 0.0
    """Share of its would-be stayers a full-strength action drives away."""


RISK_PERSONAS: tuple[Persona, ...] = (
    Persona("sure_thing", 0.25, keep=0.3),
    Persona("persuadable", 0.65, keep=0.9),
    Persona("sleeping_dog", 0.85, keep=0.0, harm=0.3),
    Persona("lost_cause", 1.0, keep=0.0),
)
"""The by-risk truth: the least likely churners are sure things (few would churn; some are kept),
the middle band is persuadable, the next band are sleeping dogs (a contact reminds them to leave),
and the likeliest churners, whom a churn model ranks first, are lost causes."""

PERSONA = "persona"


@dataclass(frozen=True)
class CampaignTruth:
    """The injected effects of a simulated campaign."""

    persuadable: Mapping[str, float] = field(default_factory=lambda: dict(PERSUADABLE))
    """Segment -> share of would-be churners a full-strength action keeps (when no personas are set)."""
    strength: Mapping[str, float] = field(default_factory=lambda: dict(STRENGTH))
    """Action -> its strength, multiplying what it keeps and harms (an action not listed has strength 1)."""
    default_persuadable: float = 0.2
    """A segment not in `persuadable`."""
    compliance: float = 0.85
    """Share of the treatment group the CRM reaches."""
    contamination: float = 0.0
    """Share of the control group acted on anyway."""
    personas: tuple[Persona, ...] = ()
    """Bands by churn-probability rank (upper bounds ascending, the last 1); empty: effects by segment."""

    @classmethod
    def by_risk(cls, personas: tuple[Persona, ...] = RISK_PERSONAS) -> CampaignTruth:
        """The truth whose persuadability is not aligned with churn probability (`RISK_PERSONAS`).

        Every action has full strength: what differs is the customer, not the action.
        """
        return cls(strength={}, personas=personas)

    def effect(self, action: str, segment: str) -> float:
        """The share of would-be churners the action keeps in the segment (among those reached; by segment)."""
        share = self.persuadable.get(segment, self.default_persuadable) * self.strength.get(action, 1.0)
        return float(min(max(share, 0.0), 1.0))

    def persona_of(self, probability: np.ndarray) -> np.ndarray:
        """Each customer's persona from the rank of their churn probability among the campaign's customers."""
        rank = pd.Series(probability).rank(method="first", pct=True).to_numpy() - 1e-9
        bounds = np.array([p.upto for p in self.personas])
        index = np.minimum(np.searchsorted(bounds, rank, side="right"), len(bounds) - 1)
        return np.array([self.personas[i].name for i in index], dtype=object)

    def draws_for(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row its persona (the segment when no personas are set), keep and harm probabilities.

        Args:
            rows: The alerted customers: action, segment, and churn_probability when personas are set.
        """
        strength = rows[names.ACTION].map(lambda a: self.strength.get(a, 1.0)).to_numpy(dtype=float)
        if not self.personas:
            keep = np.array([self.effect(a, s) for a, s in zip(rows[names.ACTION], rows["segment"], strict=True)])
            return rows["segment"].astype(str).to_numpy(dtype=object), keep, np.zeros(len(rows))
        persona = self.persona_of(rows[names.PREDICTION].to_numpy(dtype=float))
        by_name = {p.name: p for p in self.personas}
        keep = np.array([by_name[p].keep for p in persona]) * strength
        harm = np.array([by_name[p].harm for p in persona]) * strength
        return persona, np.clip(keep, 0.0, 1.0), np.clip(harm, 0.0, 1.0)

    def table(self, cells: pd.DataFrame) -> pd.DataFrame:
        """The injected effects of the (action, segment) cells of `cells` (the by-segment truth).

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
    """The customers with the churn dates the actions averted removed and those they caused added."""
    outcomes: pd.DataFrame
    """Per alerted customer: customer_id, action, group, segment, persona, keep, harm, effect (the
    injected fall in churn probability if reached, given would_churn), reached, would_churn (without
    action), saved, harmed."""


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
    """Play a campaign on generated customers: the CRM's actions, the churn they avert and the churn they cause.

    Args:
        assignments: The alerted customers: customer_id, action, group (treatment or control),
            segment, and churn_probability for a truth with personas.
        customers: The generated customers: customer_id, churn_date (NaT: no churn in the data).
        as_of: The campaign's date: actions fall within `window_days` from it, and a customer
            would churn when their churn date falls within `horizon_days` from it.
        horizon_days: The label horizon.
        window_days: The campaign window.
        costs: Action -> cost of one contact (logged as the action's cost).
        seed: Seed of every draw.
        truth: The injected effects; default `CampaignTruth()`.

    Returns:
        The actions log, the customers with their churn dates edited, and each customer's draws.
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
    churn_day = rng.integers(0, horizon_days, n)  # drawn last: the by-segment draws stay those of before
    in_treatment = (rows["group"] == TREATMENT).to_numpy()
    reached = np.where(in_treatment, reach_draw < truth.compliance, reach_draw < truth.contamination)
    persona, keep, harm = truth.draws_for(rows)
    churn = pd.to_datetime(customers.set_index(customers[names.CUSTOMER_ID].astype(str))[names.CHURN_DATE])
    when = ids.map(churn)
    start = pd.Timestamp(as_of)
    would_churn = ((when >= start) & (when < start + pd.Timedelta(days=horizon_days))).to_numpy()
    saved = reached & would_churn & (keep_draw < keep)
    harmed = reached & ~would_churn & (keep_draw < harm)
    edited = customers.copy()
    key = edited[names.CUSTOMER_ID].astype(str)
    edited.loc[key.isin(set(ids[saved])), names.CHURN_DATE] = pd.NaT
    caused = pd.Series(start + pd.to_timedelta(churn_day, unit="D"), index=ids.to_numpy())[harmed]
    driven = key.isin(set(caused.index))
    edited.loc[driven, names.CHURN_DATE] = key[driven].map(caused).to_numpy()
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
        persona=persona,
        keep=keep,
        harm=harm,
        effect=np.where(would_churn, keep, -harm),
        reached=reached,
        would_churn=would_churn,
        saved=saved,
        harmed=harmed,
    )
    return SimulatedCampaign(actions.reset_index(drop=True), edited, outcomes)


def injected_effects(outcomes: pd.DataFrame, by: list[str], compliance: float, contamination: float) -> pd.DataFrame:
    """The injected effects per cell of `by`, given who would have churned (absolute falls in churn probability).

    Args:
        outcomes: `SimulatedCampaign.outcomes`.
        by: The cell columns (e.g. action, or action and segment).
        compliance: Share of the treatment group reached.
        contamination: Share of the control group reached.

    Returns:
        The `by` columns, customers, would_churn (share), cace (mean effect on the reached), itt
        ((compliance - contamination) x cace) and itt_relative (itt / would_churn share).
    """
    cells = outcomes.groupby(by, sort=True).agg(
        customers=("effect", "size"), would_churn=("would_churn", "mean"), cace=("effect", "mean")
    )
    cells["itt"] = cells["cace"] * (compliance - contamination)
    cells["itt_relative"] = cells["itt"] / cells["would_churn"].where(cells["would_churn"] > 0)
    return cells.reset_index()


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
