"""The playbook (a recommended action per customer) and the customer value it weighs risk with.

The playbook's entries match on dimensions (segment, risk tier, layers, rules that fired); each
row gets the action of the matching entry with the lowest priority number, or the default action.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from core.crm_settings import RULES_DIMENSION, CrmSettings, PlayEntry
from crm.columns import take
from crm.rules import RuleHit

Dimension: TypeAlias = tuple[np.ndarray, Sequence[Any]]
"""A playbook dimension as codes into its distinct values; code -1 is a missing value (None)."""


def playbook_entries(crm: CrmSettings) -> list[PlayEntry]:
    """The playbook's entries by priority (lowest number first)."""
    return sorted(crm.playbook, key=lambda e: e.priority)


def choose_entries(
    entries: Sequence[PlayEntry], dims: Mapping[str, Dimension], fired: Mapping[str, np.ndarray], n: int
) -> np.ndarray:
    """Per row, the index of the first entry (in `entries` order) whose every dimension matches; -1 for none.

    Args:
        entries: Playbook entries by priority.
        dims: The dimensions the rows have (a dimension not here is None in every row).
        fired: Rule name -> rows where it fired (a rule not here fired nowhere).
        n: Number of rows.
    """
    chosen = np.full(n, -1, dtype=np.intp)
    open_ = np.ones(n, dtype=bool)
    for k, entry in enumerate(entries):
        match = open_.copy()
        for dim, values in entry.when.items():
            if dim == RULES_DIMENSION:
                any_fired = np.zeros(n, dtype=bool)
                for rule in values:
                    if rule in fired:
                        any_fired |= fired[rule]
                match &= any_fired
            elif dim in dims:
                codes, uniques = dims[dim]
                accepts = np.array([u in values for u in uniques] + [None in values], dtype=bool)
                match &= accepts[codes]
            elif None not in values:
                match[:] = False
        chosen[match] = k
        open_ &= ~match
        if not open_.any():
            break
    return chosen


def factorize(values: Any) -> Dimension:
    """Codes into the distinct values (-1 for None or NaN)."""
    codes, uniques = pd.factorize(values)
    return np.asarray(codes, dtype=np.intp), list(uniques)


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

    Raises:
        ValueError: `dims` and `hits` differ in length.
    """
    n = len(hits)
    if len(dims) != n:
        raise ValueError(f"dims has {len(dims)} rows but hits {n}")
    entries = playbook_entries(crm)
    lengths = np.fromiter(map(len, hits), dtype=np.intp, count=n)
    rows = np.repeat(np.arange(n), lengths)
    rules = np.array([h.rule for row in hits for h in row], dtype=object)
    fired: dict[str, np.ndarray] = {}
    for name in {r for e in entries for r in e.when.get(RULES_DIMENSION, ())}:
        fired[name] = np.zeros(n, dtype=bool)
        fired[name][rows[rules == name]] = True
    columns = {dim: factorize(dims[dim]) for dim in dims.columns}
    chosen = choose_entries(entries, columns, fired, n)
    actions = take([e.action for e in entries] + [crm.default_action], chosen)
    priorities = take([e.priority for e in entries] + [None], chosen)
    return actions.tolist(), priorities.tolist()


def customer_value(crm: CrmSettings, frame: pd.DataFrame) -> pd.Series:
    """Estimated yearly value per customer: the value feature scaled from its window to 365 days."""
    cfg = crm.customer_value
    value = pd.to_numeric(frame[cfg.feature], errors="coerce").fillna(0.0)
    return value * cfg.per_year
