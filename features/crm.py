"""Early warning for the CRM: warning rules, behaviour layers, RFM segments and the playbook.

All pure: feature rows (one per customer at an observation date) and, where a model scored them,
churn probabilities and tiers in; rule hits, segments and a recommended action out. The config
(`churn.crm_config`) is checked for structure when it loads; `check_features` checks it against
the features a dataset actually has, naming the rule or layer that asks for a missing one.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from churn import names
from churn.crm_config import RFM_DIMENSION, RULES_DIMENSION, TIER_DIMENSION, CrmSettings, Layer, WarningRule

RFM_RECENCY = "purchases_rfm_recency"
RFM_FREQUENCY = "purchases_rfm_frequency"

SEGMENT = "segment"
ACTION = "action"
ACTION_PRIORITY = "action_priority"
RULE_HITS = "rule_hits"
RISK_TIER = "risk_tier"
CUSTOMER_VALUE = "customer_value"
EXPECTED_LOSS = "expected_loss"

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


class CrmConfigError(ValueError):
    """The CRM config asks for something the data does not have."""


def check_features(crm: CrmSettings, features: Sequence[str]) -> None:
    """Check that every feature the rules, layers and customer value name exists.

    Raises:
        CrmConfigError: Naming each rule or layer and its missing feature, and what exists.
    """
    have = set(features)
    problems = [
        f"crm.rules '{rule.name}' uses feature '{c.feature}', which the data does not have"
        for rule in crm.rules
        for c in rule.all
        if c.feature not in have
    ]
    problems += [
        f"crm.layers '{name}' uses feature '{layer.feature}', which the data does not have"
        for name, layer in crm.layers.items()
        if layer.feature not in have
    ]
    if crm.customer_value.feature not in have:
        problems.append(f"crm.customer_value uses feature '{crm.customer_value.feature}', which the data does not have")
    if problems:
        sample = ", ".join(sorted(have)[:60])
        raise CrmConfigError("; ".join(problems) + f" (features: {sample})")


@dataclass(frozen=True)
class RuleHit:
    """A warning rule that fired for a customer, and the values that made it fire."""

    rule: str
    description: str
    values: dict[str, float]


def rule_mask(rule: WarningRule, frame: pd.DataFrame) -> np.ndarray:
    """Rows where every condition of `rule` holds (a missing value never satisfies a condition)."""
    mask = np.ones(len(frame), dtype=bool)
    for c in rule.all:
        values = pd.to_numeric(frame[c.feature], errors="coerce")
        mask &= np.asarray(_OPS[c.op](values, c.value).fillna(False), dtype=bool) & values.notna().to_numpy()
    return mask


def evaluate_rules(rules: Sequence[WarningRule], frame: pd.DataFrame) -> list[list[RuleHit]]:
    """Per row, the rules that fire, each with the feature values that triggered it."""
    hits: list[list[RuleHit]] = [[] for _ in range(len(frame))]
    for rule in rules:
        features = list(dict.fromkeys(c.feature for c in rule.all))
        values = frame[features].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        for i in np.flatnonzero(rule_mask(rule, frame)):
            hits[i].append(RuleHit(rule.name, rule.description, dict(zip(features, values[i].tolist(), strict=True))))
    return hits


def layer_labels(layer: Layer, values: pd.Series, reference: pd.Series | None = None) -> pd.Series:
    """Each value's bin label.

    Args:
        layer: The layer's feature, bins and missing label.
        values: The feature for the customers to label.
        reference: For quantile bins, the population the quantiles come from (e.g. the model's
            training sample, so one customer gets the same label in a batch and in a single
            request); `values` itself when None.
    """
    numbers = pd.to_numeric(values, errors="coerce")
    labels = [label for label, _ in layer.ordered()]
    bounds = np.array([bound for _, bound in layer.ordered()], dtype=float)
    if layer.method == "quantile":
        population = pd.to_numeric(reference if reference is not None else values, errors="coerce").dropna()
        bounds = np.quantile(population, bounds) if len(population) else np.full(len(bounds), np.inf)
        bounds[0] = -np.inf
    index = np.searchsorted(bounds, numbers.to_numpy(dtype=float, na_value=np.nan), side="right") - 1
    out = np.array([labels[max(i, 0)] for i in index], dtype=object)
    out[numbers.isna().to_numpy()] = layer.missing
    return pd.Series(out, index=values.index, dtype="object")


def rfm_segments(crm: CrmSettings, frame: pd.DataFrame) -> pd.Series:
    """Each row's RFM segment: the first configured segment covering its recency and frequency scores."""
    if RFM_RECENCY not in frame or RFM_FREQUENCY not in frame:
        return pd.Series(crm.other_segment, index=frame.index, dtype="object")
    r = pd.to_numeric(frame[RFM_RECENCY], errors="coerce").to_numpy()
    f = pd.to_numeric(frame[RFM_FREQUENCY], errors="coerce").to_numpy()
    out = np.full(len(frame), crm.other_segment, dtype=object)
    done = np.zeros(len(frame), dtype=bool)
    for segment in crm.rfm_segments:
        match = (
            ~done
            & (r >= segment.recency[0])
            & (r <= segment.recency[1])
            & (f >= segment.frequency[0])
            & (f <= segment.frequency[1])
        )
        out[match] = segment.name
        done |= match
    return pd.Series(out, index=frame.index, dtype="object")


def choose_actions(
    crm: CrmSettings, dims: pd.DataFrame, hits: Sequence[Sequence[RuleHit]]
) -> tuple[list[str], list[int | None]]:
    """The playbook's action per row: the matching entry with the lowest priority number.

    Args:
        crm: The config with the playbook.
        dims: One column per playbook dimension the rows have (segment, tier, layer names).
        hits: Per row, the rules that fired.

    Returns:
        Actions (the default action where nothing matches) and the winning entry's priority (None there).
    """
    entries = sorted(crm.playbook, key=lambda e: e.priority)
    actions: list[str] = []
    priorities: list[int | None] = []
    records = dims.to_dict("records")
    for row, row_hits in zip(records, hits, strict=True):
        fired = {h.rule for h in row_hits}
        chosen = None
        for entry in entries:
            if all(
                (bool(fired & set(values)) if dim == RULES_DIMENSION else row.get(dim) in values)
                for dim, values in entry.when.items()
            ):
                chosen = entry
                break
        actions.append(chosen.action if chosen else crm.default_action)
        priorities.append(chosen.priority if chosen else None)
    return actions, priorities


def customer_value(crm: CrmSettings, frame: pd.DataFrame) -> pd.Series:
    """Estimated yearly value per customer: the value feature scaled from its window to 365 days."""
    cfg = crm.customer_value
    value = pd.to_numeric(frame[cfg.feature], errors="coerce").fillna(0.0)
    return value * 365.0 / cfg.window_days


def early_warning(
    crm: CrmSettings,
    features: pd.DataFrame,
    probability: Sequence[float] | None = None,
    tiers: Sequence[str] | None = None,
    reference: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Rule hits, layers, segment, customer value and recommended action for each customer.

    Args:
        crm: Rules, layers, segments and playbook (checked against the features here).
        features: One row per customer at one observation date, with customer_id.
        probability: The model's churn probabilities for the rows, if a model scored them.
        tiers: The risk tier of each row (with `probability`).
        reference: Population for quantile layers (see `layer_labels`); None uses `features`.

    Returns:
        customer_id, one column per layer, segment, rule_hits (list of dicts: rule, description,
        values), customer_value, and with a model: churn_probability, risk_tier, expected_loss
        (probability x value); then action and action_priority.

    Raises:
        CrmConfigError: A rule or layer names a feature the data lacks.
    """
    check_features(crm, list(features.columns))
    frame = features.reset_index(drop=True)
    out = pd.DataFrame({names.CUSTOMER_ID: frame[names.CUSTOMER_ID].astype(str)})
    for name, layer in crm.layers.items():
        population = reference[layer.feature] if reference is not None and layer.feature in reference else None
        out[name] = layer_labels(layer, frame[layer.feature], population)
    out[SEGMENT] = rfm_segments(crm, frame)
    hits = evaluate_rules(crm.rules, frame)
    out[RULE_HITS] = [[h.__dict__ for h in row] for row in hits]
    out[CUSTOMER_VALUE] = customer_value(crm, frame)
    dims = out[[*crm.layers, SEGMENT]].rename(columns={SEGMENT: RFM_DIMENSION})
    if probability is not None:
        out[names.PREDICTION] = np.asarray(probability, dtype=float)
        out[RISK_TIER] = list(tiers) if tiers is not None else None
        out[EXPECTED_LOSS] = out[names.PREDICTION] * out[CUSTOMER_VALUE]
        dims[TIER_DIMENSION] = out[RISK_TIER]
    actions, priorities = choose_actions(crm, dims, hits)
    out[ACTION] = actions
    out[ACTION_PRIORITY] = pd.array(priorities, dtype="Int64")
    return out
