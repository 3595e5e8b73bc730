"""Warning rules: which configured rules fire for which rows, and the feature values that made them fire.

A rule fires where every one of its conditions holds; a missing value never satisfies a condition.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from core.crm_settings import WarningRule
from crm.columns import Numeric, numeric_columns

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class RuleHit:
    """A warning rule that fired for a customer, and the values that made it fire."""

    rule: str
    description: str
    values: dict[str, float]


Fired: TypeAlias = tuple[WarningRule, np.ndarray, list[int], list[dict[str, float]]]
"""A rule, the mask of rows where it fires, those rows and, for each of them, the values that triggered it."""


def rule_features(rules: Sequence[WarningRule]) -> list[str]:
    """Every feature the rules' conditions name."""
    return [c.feature for rule in rules for c in rule.all]


def _mask(rule: WarningRule, columns: Mapping[str, Numeric], n: int) -> np.ndarray:
    """Rows where every condition of `rule` holds on the converted columns (missing never holds)."""
    mask = np.ones(n, dtype=bool)
    for c in rule.all:
        x, missing = columns[c.feature]
        mask &= _OPS[c.op](x, c.value) & ~missing
    return mask


def fire(rules: Sequence[WarningRule], columns: Mapping[str, Numeric], n: int) -> list[Fired]:
    """Each rule's mask and hits, the values built for the rows where it fires only.

    Args:
        rules: The warning rules.
        columns: Every feature the rules name, from `crm.columns.numeric_columns`.
        n: Number of rows.
    """
    out: list[Fired] = []
    for rule in rules:
        mask = _mask(rule, columns, n)
        rows = np.flatnonzero(mask)
        if not len(rows):
            out.append((rule, mask, [], []))
            continue
        features = list(dict.fromkeys(c.feature for c in rule.all))
        table = [columns[f][0][rows].tolist() for f in features]
        if len(features) == 1:
            values = [{features[0]: v} for v in table[0]]
        else:
            values = [dict(zip(features, row, strict=True)) for row in zip(*table, strict=True)]
        out.append((rule, mask, rows.tolist(), values))
    return out


def hit_lists(fired: Sequence[Fired], n: int) -> np.ndarray:
    """Per row, the list of its rule hits (rule, description, values), in rule order: an object array."""
    hits: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    for rule, _, rows, values in fired:
        for i, v in zip(rows, values, strict=True):
            hits[i].append({"rule": rule.name, "description": rule.description, "values": v})
    return np.fromiter(hits, dtype=object, count=n)


def rule_mask(rule: WarningRule, frame: pd.DataFrame) -> np.ndarray:
    """Rows where every condition of `rule` holds (a missing value never satisfies a condition)."""
    return _mask(rule, numeric_columns(frame, (c.feature for c in rule.all)), len(frame))


def evaluate_rules(rules: Sequence[WarningRule], frame: pd.DataFrame) -> list[list[RuleHit]]:
    """Per row, the rules that fire, each with the feature values that triggered it."""
    hits: list[list[RuleHit]] = [[] for _ in range(len(frame))]
    for rule, _, rows, values in fire(rules, numeric_columns(frame, rule_features(rules)), len(frame)):
        for i, v in zip(rows, values, strict=True):
            hits[i].append(RuleHit(rule.name, rule.description, v))
    return hits
