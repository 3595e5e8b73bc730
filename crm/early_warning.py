"""Early warning for the CRM: the combined columns of warning rules, layers, RFM segments and the playbook.

All pure: feature rows (one per customer at an observation date) and, where a model scored them,
churn probabilities and tiers in; rule hits, segments and a recommended action out. The steps live
in `crm.rules`, `crm.segments` and `crm.playbook`; this module runs them over one set of converted
columns. The config (`core.crm_settings`) is checked for structure when it loads; `check_features`
checks it against the features a dataset actually has, naming the rule or layer that asks for a
missing one.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from core import names
from core.crm_settings import RFM_DIMENSION, TIER_DIMENSION, CrmSettings
from crm.columns import Frame, height, is_plain, numeric_columns, take
from crm.playbook import Dimension, choose_entries, customer_value, factorize, playbook_entries
from crm.rules import fire, hit_lists, rule_features
from crm.segments import layer_codes, layer_edges, rfm_codes, rfm_features

SEGMENT = "segment"
ACTION = "action"
ACTION_PRIORITY = "action_priority"
RULE_HITS = "rule_hits"
RISK_TIER = "risk_tier"
CUSTOMER_VALUE = "customer_value"
EXPECTED_LOSS = "expected_loss"


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


GC_PAUSE_ROWS = 10_000
"""`early_warning_columns` pauses the garbage collector while it builds the rule hits of this many rows or more."""


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Keep the garbage collector off inside the block (as it was after it).

    For steps that make Python objects by the hundred thousand (rule hits, reasons): each
    collection started while they pile up goes over every one of them again.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _customer_ids(ids: pd.Series | Sequence[Any]) -> np.ndarray:
    """`ids.astype(str)` as an array (a copy), without the conversion when every id is already a string."""
    if not isinstance(ids, pd.Series):
        out = np.empty(len(ids), dtype=object)
        out[:] = [str(i) for i in ids]
        return out
    values = ids.to_numpy()
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=False) == "string":
        return values.copy()
    return np.asarray(ids.astype(str), dtype=object)


def early_warning(
    crm: CrmSettings,
    features: pd.DataFrame,
    probability: Sequence[float] | np.ndarray | None = None,
    tiers: Sequence[str] | np.ndarray | None = None,
    reference: pd.DataFrame | None = None,
    *,
    bounds: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Rule hits, layers, segment, customer value and recommended action for each customer.

    Args:
        crm: Rules, layers, segments and playbook (checked against the features here).
        features: One row per customer at one observation date, with customer_id.
        probability: The model's churn probabilities for the rows, if a model scored them.
        tiers: The risk tier of each row (with `probability`).
        reference: Population for quantile layers (see `crm.segments.layer_labels`); None uses `features`.
        bounds: Bin edges per layer, from `crm.segments.layer_bounds(crm, reference)` computed once
            (the same labels as passing `reference`, without resolving its quantiles on every call);
            a layer not in it is labelled as without `bounds`.

    Returns:
        customer_id, one column per layer, segment, rule_hits (list of dicts: rule, description,
        values), customer_value, and with a model: churn_probability, risk_tier, expected_loss
        (probability x value); then action and action_priority.

    Raises:
        CrmConfigError: A rule or layer names a feature the data lacks.
    """
    out = early_warning_columns(crm, features, probability, tiers, reference, bounds=bounds)
    return pd.DataFrame(out, index=pd.RangeIndex(len(features)))


def early_warning_columns(
    crm: CrmSettings,
    features: Frame,
    probability: Sequence[float] | np.ndarray | None = None,
    tiers: Sequence[str] | np.ndarray | None = None,
    reference: pd.DataFrame | None = None,
    *,
    bounds: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """`early_warning` as columns (arrays or lists, one entry per row), without building a DataFrame.

    The request path takes its answers from these straight away, and may pass `features` as
    columns (feature -> one value per row) instead of a DataFrame; see `early_warning` for the
    other arguments, the columns and the errors.
    """
    check_features(crm, list(features))
    n = height(features)
    value_feature = crm.customer_value.feature
    rfm = rfm_features(features)
    columns = numeric_columns(
        features, [*rule_features(crm.rules), *(layer.feature for layer in crm.layers.values()), *rfm, value_feature]
    )
    out: dict[str, Any] = {names.CUSTOMER_ID: _customer_ids(features[names.CUSTOMER_ID])}
    dims: dict[str, Dimension] = {}
    for name, layer in crm.layers.items():
        edges = bounds.get(name) if bounds is not None else None
        if edges is None:
            population = reference[layer.feature] if reference is not None and layer.feature in reference else None
            edges = layer_edges(layer, population if population is not None else pd.Series(features[layer.feature]))
        codes, labels = layer_codes(layer, columns[layer.feature], edges)
        out[name] = take(labels, codes)
        dims[name] = (codes, labels)
    codes, segments = rfm_codes(crm, features, columns)
    out[SEGMENT] = take(segments, codes)
    dims[RFM_DIMENSION] = (codes, segments)
    # A request's few rows need no pause (and the service's threads no process-wide switch).
    with gc_paused() if n >= GC_PAUSE_ROWS else contextlib.nullcontext():
        fired = fire(crm.rules, columns, n)
        # Rule hits and actions of no rows are an empty list, which pandas types float64 (as it always did).
        out[RULE_HITS] = hit_lists(fired, n) if n else []
    if not isinstance(features, pd.DataFrame) or is_plain(features[value_feature]):
        x, missing = columns[value_feature]
        value: Any = np.where(missing, 0.0, x) * crm.customer_value.per_year
    else:
        value = customer_value(crm, features).array
    out[CUSTOMER_VALUE] = value
    if probability is not None:
        proba = np.asarray(probability, dtype=float)
        tier_list = list(tiers) if tiers is not None else None
        out[names.PREDICTION] = proba
        out[RISK_TIER] = tier_list
        out[EXPECTED_LOSS] = proba * value
        tier_values = np.full(n, None, dtype=object)
        if tier_list is not None:
            tier_values[:] = tier_list
        dims[TIER_DIMENSION] = factorize(tier_values)
    entries = playbook_entries(crm)
    chosen = choose_entries(entries, dims, {rule.name: mask for rule, mask, _, _ in fired}, n)
    out[ACTION] = take([e.action for e in entries] + [crm.default_action], chosen) if n else []
    priority = np.array([e.priority for e in entries] + [0], dtype=np.int64)[chosen]
    out[ACTION_PRIORITY] = pd.arrays.IntegerArray(priority, chosen < 0)
    return out
