"""Typed config of the CRM early-warning layer: warning rules, segments and the retention playbook.

What a business sets in `crm:` of a config file. Structure is checked here when the config loads:
an unknown operator, bins out of order, an RFM segment that earlier segments hide, a playbook
entry naming an unknown rule, segment or tier, an entry that a higher-priority entry always
pre-empts (unreachable), or two entries of the same priority that can match the same customer
(overlapping) are errors naming the entry. Whether each named feature exists is checked against
the data when the rules run (`crm.early_warning`), since the feature list follows from the data.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

RFM_DIMENSION = "segment"
TIER_DIMENSION = "tier"
RULES_DIMENSION = "rules"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Condition(_Frozen):
    """One comparison of a feature with a number, e.g. purchases_frequency_change <= -0.4."""

    feature: str
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    value: float


class WarningRule(_Frozen):
    """A named early-warning indicator: it fires when all its conditions hold."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    all: tuple[Condition, ...] = Field(min_length=1)


class Layer(_Frozen):
    """A behaviour layer: one feature cut into labelled bins.

    `bins` maps label -> lower bound: a value gets the label of the highest bound not above it.
    With `method: quantile` the bounds are quantiles (0..1) of the feature at the observation date.
    """

    feature: str
    method: Literal["fixed", "quantile"] = "fixed"
    bins: dict[str, float] = Field(min_length=1)
    missing: str
    """Label for a missing value (e.g. no purchase ever: 'dormant')."""

    def ordered(self) -> list[tuple[str, float]]:
        """(label, lower bound) pairs from the lowest bound up, whatever order the config lists them in."""
        return sorted(self.bins.items(), key=lambda kv: kv[1])

    @model_validator(mode="after")
    def _bins_valid(self) -> Layer:
        bounds = sorted(self.bins.values())
        if len(set(bounds)) != len(bounds):
            raise ValueError(f"bins must have distinct lower bounds, got {self.bins}")
        if self.method == "quantile" and not (bounds[0] == 0 and bounds[-1] < 1):
            raise ValueError(f"quantile bins start at 0 and stay below 1, got {self.bins}")
        if self.missing not in self.bins:
            raise ValueError(f"missing label '{self.missing}' is not one of the bins {list(self.bins)}")
        return self


class RfmSegment(_Frozen):
    """An RFM segment: ranges of the recency and frequency scores (1..5, 5 best). First match wins."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    recency: tuple[int, int] = (1, 5)
    frequency: tuple[int, int] = (1, 5)

    @model_validator(mode="after")
    def _ranges_valid(self) -> RfmSegment:
        for label, (lo, hi) in (("recency", self.recency), ("frequency", self.frequency)):
            if not 1 <= lo <= hi <= 5:
                raise ValueError(f"{label} range must satisfy 1 <= low <= high <= 5, got [{lo}, {hi}]")
        return self

    def cells(self) -> set[tuple[int, int]]:
        """Every (recency, frequency) score pair in the segment."""
        return {
            (r, f)
            for r in range(self.recency[0], self.recency[1] + 1)
            for f in range(self.frequency[0], self.frequency[1] + 1)
        }


class PlayEntry(_Frozen):
    """A playbook entry: when a customer matches `when`, recommend `action`.

    `when` maps a dimension to the values it accepts: `segment` (RFM segments), `tier` (model risk
    tiers), `rules` (fires if any of these rules hit) or a layer name (its bin labels). A dimension
    left out accepts anything. Among matching entries the lowest `priority` number wins.
    """

    action: str
    priority: int = Field(ge=0)
    when: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    description: str = ""


class CustomerValue(_Frozen):
    """How a customer's yearly value is estimated (for revenue at risk, expected loss and the profit
    threshold): any numeric feature or column times a yearly factor."""

    feature: str = "purchases_spend_90d"
    """A behaviour feature (spend in a window) or a column of a customer table (monthly recurring revenue...)."""
    window_days: int = Field(90, gt=0)
    """The feature covers this many days; value per year = feature * 365 / window_days."""
    multiplier: float | None = Field(None, gt=0)
    """Value per year = feature * multiplier (e.g. 12 for a monthly charge); set, it replaces window_days."""

    @property
    def per_year(self) -> float:
        """The factor turning the feature into a yearly value."""
        return self.multiplier if self.multiplier is not None else 365.0 / self.window_days


def _default_rules() -> tuple[WarningRule, ...]:
    return (
        WarningRule(
            name="purchases_falling",
            description="purchase frequency down at least 40% vs the previous 30 days",
            all=(Condition(feature="purchases_frequency_change", op="<=", value=-0.4),),
        ),
        WarningRule(
            name="no_recent_purchase",
            description="no purchase for 45 days or more",
            all=(Condition(feature="purchases_days_since_last", op=">=", value=45),),
        ),
        WarningRule(
            name="complaint_spike",
            description="at least 2 complaints in 30 days",
            all=(Condition(feature="service_complaints_30d", op=">=", value=2),),
        ),
        WarningRule(
            name="engagement_falling",
            description="engagement down at least 50% vs the previous 30 days",
            all=(Condition(feature="engagement_change", op="<=", value=-0.5),),
        ),
        WarningRule(
            name="browsing_not_buying",
            description="5 or more visits in 30 days without a purchase",
            all=(
                Condition(feature="engagement_visits_30d", op=">=", value=5),
                Condition(feature="purchases_count_30d", op="==", value=0),
            ),
        ),
    )


def _default_layers() -> dict[str, Layer]:
    return {
        "activity": Layer(
            feature="engagement_days_since_last_activity",
            bins={"active": 0, "cooling": 14, "dormant": 45},
            missing="dormant",
        ),
        "value": Layer(
            feature="purchases_spend_90d", method="quantile", bins={"low": 0, "mid": 0.5, "high": 0.8}, missing="low"
        ),
        "intent": Layer(
            feature="engagement_visits_30d", bins={"passive": 0, "browsing": 3, "engaged": 8}, missing="passive"
        ),
    }


def _default_segments() -> tuple[RfmSegment, ...]:
    return (
        RfmSegment(name="champions", recency=(4, 5), frequency=(4, 5)),
        RfmSegment(name="loyal", recency=(3, 5), frequency=(3, 5)),
        RfmSegment(name="new", recency=(4, 5), frequency=(1, 1)),
        RfmSegment(name="promising", recency=(3, 5), frequency=(1, 2)),
        RfmSegment(name="cannot_lose", recency=(1, 2), frequency=(4, 5)),
        RfmSegment(name="at_risk", recency=(1, 2), frequency=(2, 3)),
        RfmSegment(name="hibernating", recency=(2, 2), frequency=(1, 1)),
        RfmSegment(name="lost", recency=(1, 1), frequency=(1, 1)),
    )


def _default_playbook() -> tuple[PlayEntry, ...]:
    return (
        PlayEntry(
            action="account_care_call",
            priority=1,
            when={"value": ("high",), TIER_DIMENSION: ("high",)},
            description="high value and at high risk: a personal call from account care",
        ),
        PlayEntry(
            action="service_recovery",
            priority=2,
            when={RULES_DIMENSION: ("complaint_spike",)},
            description="complaint spike: a service call to fix the problem",
        ),
        PlayEntry(
            action="personalised_recommendation",
            priority=3,
            when={RULES_DIMENSION: ("browsing_not_buying",)},
            description="many visits, no purchase: a personalised offer",
        ),
        PlayEntry(
            action="time_limited_coupon",
            priority=4,
            when={RULES_DIMENSION: ("purchases_falling", "no_recent_purchase")},
            description="falling purchase frequency: a time-limited coupon",
        ),
        PlayEntry(
            action="vip_care",
            priority=5,
            when={RFM_DIMENSION: ("champions", "cannot_lose"), TIER_DIMENSION: ("medium", "high")},
            description="best customers showing risk: VIP care",
        ),
        PlayEntry(
            action="win_back_offer",
            priority=6,
            when={TIER_DIMENSION: ("high",)},
            description="high risk without a specific signal: a win-back offer",
        ),
    )


class UpliftSettings(_Frozen):
    """The uplift model (`churn campaigns uplift`): a T-learner on XGBoost, one model per arm."""

    min_per_group: int = Field(200, gt=0)
    """Treated and control outcomes each needed (over the evaluated campaigns) before a model is trained."""
    rounds: int = Field(200, gt=0)
    """Boosting rounds of each arm's model."""
    max_depth: int = Field(3, gt=0)
    eta: float = Field(0.05, gt=0, le=1)
    min_child_weight: float = Field(5.0, ge=0)
    seed: int = 0


class CampaignSettings(_Frozen):
    """Retention campaigns with a control group (`churn score`, `churn campaigns ...`).

    Every alerted customer (an action other than the default, with an expected profit above
    `min_expected_profit`) goes to the treatment or the control group by a seeded hash of the
    campaign id and the customer id: the same campaign assigns the same customers the same way.
    """

    control_share: float = Field(0.1, ge=0, lt=1)
    """Share of each action's customers held out as the control group (they get no action)."""
    control_shares: dict[str, float] = Field(default_factory=dict)
    """Action -> its own control share, in place of `control_share`."""
    seed: int = 0
    """Salt of the assignment hash: another seed draws other control groups for the same campaign."""
    window_days: int = Field(14, gt=0)
    """Actions count for a campaign when taken within this many days from its as-of date."""
    costs: dict[str, float] = Field(default_factory=dict)
    """Action -> cost of one contact; an action not listed costs `training.retention_cost`."""
    min_expected_profit: float | None = 0.0
    """Alerted: a customer whose action's expected profit is above this; None: every non-default action."""
    rank_by: Literal["expected_profit", "uplift"] = "expected_profit"
    """Order of the alert list: churn probability x measured (or configured) success x value - cost, or
    the uplift model's expected uplift x value - cost (once `churn campaigns uplift` trained one)."""
    min_arm_customers: int = Field(100, gt=0)
    """A measured effect replaces `training.retention_success` once its treatment and control arms
    each hold this many customers over the evaluated campaigns."""
    dir: str = "campaigns"
    """Campaign records, assignments, imported actions and evaluations, one folder per campaign."""
    experiment: str = "churn-campaigns"
    """MLflow experiment of the campaign runs."""
    uplift: UpliftSettings = UpliftSettings()

    @model_validator(mode="after")
    def _shares_and_costs_valid(self) -> CampaignSettings:
        bad = {a: s for a, s in self.control_shares.items() if not 0 <= s < 1}
        if bad:
            raise ValueError(f"control_shares must lie in [0, 1), got {bad}")
        negative = {a: c for a, c in self.costs.items() if c < 0}
        if negative:
            raise ValueError(f"costs must not be negative, got {negative}")
        return self

    def share_of(self, action: str) -> float:
        """The control share of `action`."""
        return self.control_shares.get(action, self.control_share)


class CrmSettings(_Frozen):
    """Warning rules, segments and the retention playbook."""

    rules: tuple[WarningRule, ...] = Field(default_factory=_default_rules)
    layers: dict[str, Layer] = Field(default_factory=_default_layers)
    rfm_segments: tuple[RfmSegment, ...] = Field(default_factory=_default_segments)
    other_segment: str = "needs_attention"
    """Segment of a customer no RFM segment covers (and of customers without purchase scores)."""
    playbook: tuple[PlayEntry, ...] = Field(default_factory=_default_playbook)
    default_action: str = "monitor"
    """Action for a customer no playbook entry matches."""
    customer_value: CustomerValue = CustomerValue()
    campaigns: CampaignSettings = CampaignSettings()
    """Control groups, action costs, measured effects and uplift targeting."""

    @model_validator(mode="after")
    def _structure_valid(self) -> CrmSettings:
        problems = check_structure(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def actions(self) -> set[str]:
        """Every action the playbook can recommend, the default action included."""
        return {e.action for e in self.playbook} | {self.default_action}

    def dimensions(self, tiers: tuple[str, ...]) -> dict[str, set[str]]:
        """Every playbook dimension and the values it can take."""
        dims = {
            RFM_DIMENSION: {s.name for s in self.rfm_segments} | {self.other_segment},
            TIER_DIMENSION: set(tiers),
            RULES_DIMENSION: {r.name for r in self.rules},
        }
        dims.update({name: set(layer.bins) for name, layer in self.layers.items()})
        return dims


def check_structure(crm: CrmSettings) -> list[str]:
    """Problems of rules and segments that need no data or tiers, each naming the entry."""
    problems: list[str] = []
    names = [r.name for r in crm.rules]
    for name in {n for n in names if names.count(n) > 1}:
        problems.append(f"crm.rules: rule '{name}' is defined more than once")
    reserved = {RFM_DIMENSION, TIER_DIMENSION, RULES_DIMENSION}
    for name in crm.layers:
        if name in reserved:
            problems.append(f"crm.layers: layer name '{name}' is reserved for a playbook dimension")
    actions = crm.actions()
    for key, table in (("control_shares", crm.campaigns.control_shares), ("costs", crm.campaigns.costs)):
        for action in sorted(set(table) - actions):
            problems.append(
                f"crm.campaigns.{key}: unknown action '{action}' (the playbook's actions: {', '.join(sorted(actions))})"
            )
    covered: set[tuple[int, int]] = set()
    seen: set[str] = set()
    for i, segment in enumerate(crm.rfm_segments):
        if segment.name in seen:
            problems.append(f"crm.rfm_segments[{i}]: segment '{segment.name}' is defined more than once")
        seen.add(segment.name)
        if segment.cells() <= covered:
            problems.append(
                f"crm.rfm_segments[{i}]: segment '{segment.name}' is unreachable: earlier segments cover all its scores"
            )
        covered |= segment.cells()
    return problems


def check_playbook(crm: CrmSettings, tiers: tuple[str, ...]) -> list[str]:
    """Problems of the playbook against the rules, segments, layers and risk tiers, each naming the entry."""
    dims = crm.dimensions(tiers)
    problems: list[str] = []
    for i, entry in enumerate(crm.playbook):
        where = f"crm.playbook[{i}] ({entry.action})"
        for dim, values in entry.when.items():
            if dim not in dims:
                problems.append(f"{where}: unknown dimension '{dim}' (known: {', '.join(sorted(dims))})")
                continue
            if not values:
                problems.append(f"{where}: '{dim}' lists no values")
            for value in values:
                if value not in dims[dim]:
                    problems.append(f"{where}: {dim} '{value}' does not exist (known: {', '.join(sorted(dims[dim]))})")
    if problems:
        return problems
    for i, entry in enumerate(crm.playbook):
        for j, other in enumerate(crm.playbook):
            if j == i:
                continue
            if other.priority < entry.priority and _covers(other, entry):
                problems.append(
                    f"crm.playbook[{i}] ({entry.action}) is unreachable: crm.playbook[{j}] ({other.action}) has a"
                    f" higher priority and matches every customer it matches"
                )
                break
            if j > i and other.priority == entry.priority and _intersect(entry, other):
                problems.append(
                    f"crm.playbook[{i}] ({entry.action}) and crm.playbook[{j}] ({other.action}) overlap: both have"
                    f" priority {entry.priority} and can match the same customer; give them different priorities"
                )
    return problems


def _covers(wide: PlayEntry, narrow: PlayEntry) -> bool:
    """Whether every customer `narrow` matches is also matched by `wide`."""
    for dim, values in wide.when.items():
        mine = narrow.when.get(dim)
        if mine is None or not set(mine) <= set(values):
            return False
    return True


def _intersect(a: PlayEntry, b: PlayEntry) -> bool:
    """Whether some customer can match both entries (rules are 'any of', and a customer can hit several)."""
    for dim in set(a.when) & set(b.when):
        if dim != RULES_DIMENSION and not set(a.when[dim]) & set(b.when[dim]):
            return False
    return True
