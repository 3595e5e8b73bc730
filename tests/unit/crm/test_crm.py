"""CRM early warning on constructed customers: rules fire exactly where they should, segment and
layer boundaries, playbook choice and validation, and the KPI formulas."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core import names
from core.crm_settings import CrmSettings
from core.settings import ConfigError, parse_settings
from crm.early_warning import ACTION, ACTION_PRIORITY, RULE_HITS, SEGMENT, CrmConfigError, early_warning
from crm.kpi import annualise, churn_by_observation, cohort_retention, monthly_churn
from crm.playbook import choose_actions
from crm.rules import RuleHit, evaluate_rules
from crm.segments import layer_bounds, layer_labels, rfm_segments

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


# Precomputed layer bounds and the vectorised rules and playbook, against the straightforward versions.

_FEATURES = (
    "purchases_frequency_change",
    "purchases_days_since_last",
    "purchases_count_30d",
    "purchases_spend_90d",
    "service_complaints_30d",
    "engagement_change",
    "engagement_visits_30d",
    "engagement_days_since_last_activity",
)


def _random_customers(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Customers with every default feature, about 10% of each missing, and categorical attributes."""
    frame = pd.DataFrame(
        {
            names.CUSTOMER_ID: [f"c{i}" for i in range(n)],
            "purchases_frequency_change": rng.choice([-1.0, -0.6, -0.4, -0.39, 0.0, 0.5], n),
            "purchases_days_since_last": rng.integers(0, 90, n).astype(float),
            "purchases_count_30d": rng.integers(0, 3, n).astype(float),
            "purchases_spend_90d": rng.gamma(2.0, 50.0, n).round(1),
            "service_complaints_30d": rng.integers(0, 4, n).astype(float),
            "engagement_change": rng.choice([-0.8, -0.5, -0.1, 0.3], n),
            "engagement_visits_30d": rng.integers(0, 12, n).astype(float),
            "engagement_days_since_last_activity": rng.integers(0, 80, n).astype(float),
            "purchases_rfm_recency": rng.integers(1, 6, n).astype(float),
            "purchases_rfm_frequency": rng.integers(1, 6, n).astype(float),
            "plan": pd.Categorical(rng.choice(["basic", "plus", "pro"], n)),
            "region": rng.choice(["north", "south", None], n),
        },
        index=pd.Index(rng.permutation(n) * 3 + 7),  # not a RangeIndex: the output is positional
    )
    for column in [*_FEATURES, "purchases_rfm_recency", "purchases_rfm_frequency"]:
        frame.loc[rng.random(n) < 0.1, column] = np.nan
    return frame


def _scores(rng: np.random.Generator, n: int) -> tuple[list[float], list[str]]:
    """Random churn probabilities and their risk tiers."""
    probability = rng.random(n)
    tiers = np.where(probability >= 0.5, "high", np.where(probability >= 0.2, "medium", "low"))
    return probability.tolist(), tiers.tolist()


_QUANTILE_LAYERS = {
    "value": {"feature": "purchases_spend_90d", "method": "quantile", "bins": {"low": 0, "mid": 0.5, "high": 0.8}},
    "visits": {"feature": "engagement_visits_30d", "method": "quantile", "bins": {"few": 0, "many": 0.7}},
    "activity": {"feature": "engagement_days_since_last_activity", "bins": {"active": 0, "cooling": 14}},
}


def _quantile_crm() -> CrmSettings:
    """The default CRM config with two quantile layers and a fixed one."""
    layers = {name: {**layer, "missing": next(iter(layer["bins"]))} for name, layer in _QUANTILE_LAYERS.items()}
    return parse_settings({"crm": {"layers": layers}}, "x", env={}).crm


@pytest.mark.parametrize("crm", [DEFAULT.crm, _quantile_crm()], ids=["default", "two_quantile_layers"])
def test_precomputed_bounds_give_the_labels_of_the_reference(crm: CrmSettings) -> None:
    rng = np.random.default_rng(11)
    frame, reference = _random_customers(rng, 400), _random_customers(rng, 1_000)
    probability, tiers = _scores(rng, len(frame))
    for ref in (reference, reference.drop(columns=["engagement_visits_30d"]), None):
        expected = early_warning(crm, frame, probability, tiers, reference=ref)
        bounds = layer_bounds(crm, ref)
        pd.testing.assert_frame_equal(early_warning(crm, frame, probability, tiers, bounds=bounds), expected)
        pd.testing.assert_frame_equal(
            early_warning(crm, frame, bounds=bounds), early_warning(crm, frame, reference=ref)
        )
    # The point: one customer scored alone gets the labels it gets in the batch.
    bounds = layer_bounds(crm, reference)
    batch = early_warning(crm, frame, probability, tiers, bounds=bounds)
    for i in range(0, len(frame), 37):
        alone = early_warning(crm, frame.iloc[[i]], probability[i : i + 1], tiers[i : i + 1], bounds=bounds)
        pd.testing.assert_frame_equal(alone, batch.iloc[[i]].reset_index(drop=True))


def test_layer_bounds_are_the_edges_layer_labels_uses() -> None:
    crm = _quantile_crm()
    reference = _random_customers(np.random.default_rng(5), 500)
    bounds = layer_bounds(crm, reference.drop(columns=["engagement_visits_30d"]))
    assert list(bounds) == ["value", "activity"]  # a quantile layer the reference lacks is left out
    spend = reference["purchases_spend_90d"].dropna()
    np.testing.assert_array_equal(bounds["value"], [-np.inf, np.quantile(spend, 0.5), np.quantile(spend, 0.8)])
    np.testing.assert_array_equal(bounds["activity"], [-np.inf, 14.0])
    assert not bounds["value"].flags.writeable
    layer, values = crm.layers["value"], pd.Series([0.0, 80.0, 200.0, np.nan, 1e9], index=[5, 4, 3, 2, 1])
    pd.testing.assert_series_equal(
        layer_labels(layer, values, bounds=bounds["value"]),
        layer_labels(layer, values, reference["purchases_spend_90d"]),
    )
    with pytest.raises(ValueError, match="3 bins but 2 bounds"):
        layer_labels(layer, values, bounds=bounds["activity"])


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def _oracle_rules(crm: CrmSettings, frame: pd.DataFrame) -> list[list[RuleHit]]:
    """The rules row by row, as they were before vectorising."""
    hits: list[list[RuleHit]] = [[] for _ in range(len(frame))]
    for rule in crm.rules:
        mask = np.ones(len(frame), dtype=bool)
        for c in rule.all:
            numbers = pd.to_numeric(frame[c.feature], errors="coerce")
            mask &= np.asarray(_OPS[c.op](numbers, c.value).fillna(False), dtype=bool) & numbers.notna().to_numpy()
        features = list(dict.fromkeys(c.feature for c in rule.all))
        values = frame[features].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        for i in np.flatnonzero(mask):
            hits[i].append(RuleHit(rule.name, rule.description, dict(zip(features, values[i].tolist(), strict=True))))
    return hits


def _oracle_actions(
    crm: CrmSettings, dims: pd.DataFrame, hits: Sequence[Sequence[RuleHit]]
) -> tuple[list[str], list[int | None]]:
    """The playbook row by row, as it was before vectorising."""
    entries = sorted(crm.playbook, key=lambda e: e.priority)
    actions: list[str] = []
    priorities: list[int | None] = []
    for row, row_hits in zip(dims.to_dict("records"), hits, strict=True):
        fired = {h.rule for h in row_hits}
        chosen = None
        for entry in entries:
            if all(
                (bool(fired & set(values)) if dim == "rules" else row.get(dim) in values)
                for dim, values in entry.when.items()
            ):
                chosen = entry
                break
        actions.append(chosen.action if chosen else crm.default_action)
        priorities.append(chosen.priority if chosen else None)
    return actions, priorities


def _playbook_crm() -> CrmSettings:
    """Rules with several conditions (one feature twice), and a playbook whose entries overlap.

    Built without `parse_settings`, which rejects overlapping entries of one priority: their order in
    the config decides, and the vectorised playbook must keep that.
    """
    rules = [
        {"name": "low_a", "all": [{"feature": "a", "op": "<=", "value": 1}]},
        {"name": "pair", "all": [{"feature": "a", "op": ">=", "value": 2}, {"feature": "b", "op": "==", "value": 0}]},
        {"name": "not_three", "all": [{"feature": "c", "op": "!=", "value": 3}]},
        {"name": "b_band", "all": [{"feature": "b", "op": ">", "value": 0}, {"feature": "b", "op": "<", "value": 3}]},
        {"name": "never", "all": [{"feature": "a", "op": ">", "value": 100}]},
    ]
    playbook = [
        {"action": "call", "priority": 1, "when": {"tier": ["high"], "size": ["big"]}},
        {"action": "fix", "priority": 2, "when": {"rules": ["pair", "never"]}},
        {"action": "nudge", "priority": 3, "when": {"rules": ["low_a"], "segment": ["lost", "new"]}},
        {"action": "same_prio_first", "priority": 4, "when": {"rules": ["b_band"]}},
        {"action": "same_prio_second", "priority": 4, "when": {"size": ["small"]}},
        {"action": "never_fires", "priority": 5, "when": {"rules": ["never"]}},
        {"action": "moody", "priority": 6, "when": {"mood": ["sad"]}},  # a dimension no row has
        {"action": "risky", "priority": 7, "when": {"tier": ["high", "medium"], "rules": ["not_three", "low_a"]}},
    ]
    layers = {"size": {"feature": "c", "bins": {"small": 0, "big": 4}, "missing": "small"}}
    return CrmSettings.model_validate({"rules": rules, "playbook": playbook, "layers": layers})


def _random_rule_frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Small integer features (so == and != fire), missing values of several kinds, a non-numeric text."""
    a = rng.integers(0, 4, n).astype(float)
    a[rng.random(n) < 0.15] = np.nan
    b = pd.array(rng.integers(0, 4, n), dtype="Int64")
    b[rng.random(n) < 0.15] = pd.NA
    c = rng.integers(0, 6, n).astype(object)
    c[rng.random(n) < 0.1] = "n/a"  # coerced to missing
    c[rng.random(n) < 0.1] = None
    return pd.DataFrame({"a": a, "b": b, "c": c}, index=pd.Index(rng.permutation(n)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_rules_and_playbook_match_the_row_by_row_versions(seed: int) -> None:
    rng = np.random.default_rng(seed)
    crm = _playbook_crm()
    n = 600
    frame = _random_rule_frame(rng, n)
    hits = evaluate_rules(crm.rules, frame)
    expected_hits = _oracle_rules(crm, frame)
    assert hits == expected_hits
    assert sum(map(len, hits)) > n // 2 and any(len(row) >= 2 for row in hits) and any(not row for row in hits)
    assert all(type(v) is float for row in hits for h in row for v in h.values.values())

    tier_values: list[Any] = ["high", "medium", "low", None, np.nan]
    dims = pd.DataFrame(
        {
            "size": rng.choice(["small", "big"], n),
            "segment": rng.choice(["lost", "new", "loyal", "needs_attention"], n),
            "tier": [tier_values[k] for k in rng.integers(0, len(tier_values), n)],
        },
        index=frame.index,
    )
    seen: set[str] = set()
    for columns in (["size", "segment", "tier"], ["size", "segment"]):  # without tier no tier entry matches
        actions, priorities = choose_actions(crm, dims[columns], hits)
        seen |= set(actions)
        expected_actions, expected_priorities = _oracle_actions(crm, dims[columns], hits)
        assert actions == expected_actions
        assert priorities == expected_priorities
        assert all(p is None or type(p) is int for p in priorities)
    assert {"call", "fix", "nudge", "same_prio_first", "same_prio_second", "risky", "monitor"} <= seen
    assert "never_fires" not in seen and "moody" not in seen

    # Hits handed in from elsewhere: empty rows, unknown rules, a rule twice in one row.
    names_ = ["pair", "low_a", "b_band", "unknown"]
    other = [[RuleHit(names_[k], "", {}) for k in rng.integers(0, 4, rng.integers(0, 3))] for _ in range(n)]
    assert choose_actions(crm, dims, other) == _oracle_actions(crm, dims, other)


@pytest.mark.parametrize("seed", [3, 4])
def test_early_warning_hits_and_actions_match_the_row_by_row_versions(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for crm in (DEFAULT.crm, _playbook_crm()):
        frame = _random_customers(rng, 500) if crm is DEFAULT.crm else _random_rule_frame(rng, 500)
        if crm is not DEFAULT.crm:
            frame[names.CUSTOMER_ID] = [f"c{i}" for i in range(len(frame))]
            frame["purchases_spend_90d"] = rng.gamma(2.0, 50.0, len(frame))
        probability, tiers = _scores(rng, len(frame))
        for scores in ((probability, tiers), (None, None)):
            out = early_warning(crm, frame, *scores)
            oracle_hits = _oracle_rules(crm, frame)
            assert out[RULE_HITS].tolist() == [[h.__dict__ for h in row] for row in oracle_hits]
            dims = out[[*crm.layers, SEGMENT]]
            if scores[0] is not None:
                dims = dims.assign(tier=tiers)
            actions, priorities = _oracle_actions(crm, dims, oracle_hits)
            assert out[ACTION].tolist() == actions
            assert out[ACTION_PRIORITY].astype(object).where(out[ACTION_PRIORITY].notna(), None).tolist() == priorities


def test_early_warning_of_no_rows_keeps_the_columns() -> None:
    empty = _random_customers(np.random.default_rng(0), 3).iloc[:0]
    out = early_warning(DEFAULT.crm, empty, [], [], bounds=layer_bounds(DEFAULT.crm, None))
    assert len(out) == 0 and ACTION in out and RULE_HITS in out
