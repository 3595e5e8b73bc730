"""Early warning for the CRM: warning rules, behaviour layers, RFM segments and the playbook.

All pure: feature rows (one per customer at an observation date) and, where a model scored them,
churn probabilities and tiers in; rule hits, segments and a recommended action out. The config
(`core.crm_settings`) is checked for structure when it loads; `check_features` checks it against
the features a dataset actually has, naming the rule or layer that asks for a missing one.
"""

from __future__ import annotations

import contextlib
import gc
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from core import names
from core.crm_settings import (
    RFM_DIMENSION,
    RULES_DIMENSION,
    TIER_DIMENSION,
    CrmSettings,
    Layer,
    PlayEntry,
    WarningRule,
)

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


_Numeric = tuple[np.ndarray, np.ndarray]
"""A feature as floats and where it is missing (what `pd.to_numeric(errors='coerce')` makes of it)."""

Frame: TypeAlias = pd.DataFrame | Mapping[str, Sequence[Any]]
"""Feature rows: a DataFrame, or columns (feature -> one value per row)."""

_Dimension = tuple[np.ndarray, Sequence[Any]]
"""A playbook dimension as codes into its distinct values; code -1 is a missing value (None)."""


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


def _height(frame: Frame) -> int:
    """How many rows `frame` holds."""
    if isinstance(frame, pd.DataFrame):
        return len(frame)
    return len(next(iter(frame.values()))) if frame else 0


def _plain(values: pd.Series) -> bool:
    """Whether the column is a NumPy bool, integer or float column (`pd.to_numeric` leaves it as is)."""
    return isinstance(values.dtype, np.dtype) and values.dtype.kind in "biuf"


def _numeric(values: pd.Series | Sequence[Any]) -> _Numeric:
    """The column as floats and its missing rows, as `pd.to_numeric(values, errors="coerce")` reads it."""
    if not isinstance(values, pd.Series):  # a column of plain values (the request path)
        try:
            x = np.array(values, dtype=float)
            return x, np.isnan(x)
        except (TypeError, ValueError):
            values = pd.Series(values, dtype=object)
    if _plain(values):
        x = values.to_numpy(dtype=float)
        return x, np.isnan(x)
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers.to_numpy(dtype=float, na_value=np.nan), numbers.isna().to_numpy()


def _numeric_columns(frame: Frame, features: Iterable[str]) -> dict[str, _Numeric]:
    """Each named feature of `frame` as numbers, converted once however many rules use it."""
    return {feature: _numeric(frame[feature]) for feature in dict.fromkeys(features)}


def _rule_features(rules: Sequence[WarningRule]) -> list[str]:
    """Every feature the rules' conditions name."""
    return [c.feature for rule in rules for c in rule.all]


def _mask(rule: WarningRule, columns: Mapping[str, _Numeric], n: int) -> np.ndarray:
    """Rows where every condition of `rule` holds on the converted columns (missing never holds)."""
    mask = np.ones(n, dtype=bool)
    for c in rule.all:
        x, missing = columns[c.feature]
        mask &= _OPS[c.op](x, c.value) & ~missing
    return mask


_Fired = tuple[WarningRule, np.ndarray, list[int], list[dict[str, float]]]
"""A rule, the mask of rows where it fires, those rows and, for each of them, the values that triggered it."""


def _fire(rules: Sequence[WarningRule], columns: Mapping[str, _Numeric], n: int) -> list[_Fired]:
    """Each rule's mask and hits, the values built for the rows where it fires only."""
    out: list[_Fired] = []
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


def _hits(fired: Sequence[_Fired], n: int) -> np.ndarray:
    """Per row, the list of its rule hits (rule, description, values), in rule order: an object array."""
    hits: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    for rule, _, rows, values in fired:
        for i, v in zip(rows, values, strict=True):
            hits[i].append({"rule": rule.name, "description": rule.description, "values": v})
    return np.fromiter(hits, dtype=object, count=n)


def rule_mask(rule: WarningRule, frame: pd.DataFrame) -> np.ndarray:
    """Rows where every condition of `rule` holds (a missing value never satisfies a condition)."""
    return _mask(rule, _numeric_columns(frame, (c.feature for c in rule.all)), len(frame))


def evaluate_rules(rules: Sequence[WarningRule], frame: pd.DataFrame) -> list[list[RuleHit]]:
    """Per row, the rules that fire, each with the feature values that triggered it."""
    hits: list[list[RuleHit]] = [[] for _ in range(len(frame))]
    for rule, _, rows, values in _fire(rules, _numeric_columns(frame, _rule_features(rules)), len(frame)):
        for i, v in zip(rows, values, strict=True):
            hits[i].append(RuleHit(rule.name, rule.description, v))
    return hits


def _edges(layer: Layer, population: pd.Series | None) -> np.ndarray:
    """The layer's bin edges, first edge -inf; quantile bounds resolved against `population`."""
    edges = np.array([bound for _, bound in layer.ordered()], dtype=float)
    if layer.method == "quantile":
        numbers = pd.Series(dtype=float) if population is None else pd.to_numeric(population, errors="coerce").dropna()
        edges = np.quantile(numbers, edges) if len(numbers) else np.full(len(edges), np.inf)
    edges[0] = -np.inf
    return edges


def layer_bounds(crm: CrmSettings, reference: pd.DataFrame | None) -> dict[str, np.ndarray]:
    """The bin edges of every layer that needs no scored rows, to compute once and pass to `early_warning`.

    Args:
        crm: The config with the layers.
        reference: The population quantile layers come from (the model's training sample); a
            quantile layer whose feature it lacks (or every quantile layer, when None) is left out,
            and `early_warning` computes it from the scored rows as without `bounds`.

    Returns:
        Layer name -> increasing bin edges (read-only), one per label, the first -inf.
    """
    out: dict[str, np.ndarray] = {}
    for name, layer in crm.layers.items():
        population = reference[layer.feature] if reference is not None and layer.feature in reference else None
        if layer.method == "quantile" and population is None:
            continue
        edges = _edges(layer, population)
        edges.setflags(write=False)
        out[name] = edges
    return out


def _layer_codes(layer: Layer, numbers: _Numeric, edges: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each value's index into the layer's labels (lowest bound first), and those labels."""
    labels = [label for label, _ in layer.ordered()]
    if len(edges) != len(labels):
        raise ValueError(f"layer on '{layer.feature}' has {len(labels)} bins but {len(edges)} bounds were given")
    x, missing = numbers
    codes = np.searchsorted(edges, x, side="right") - 1
    np.maximum(codes, 0, out=codes)
    codes[missing] = labels.index(layer.missing)
    return codes, labels


def _take(values: Sequence[Any], codes: np.ndarray) -> np.ndarray:
    """`values[code]` for each code, as an object array."""
    table = np.empty(len(values), dtype=object)
    table[:] = values
    return table[codes]


def layer_labels(
    layer: Layer, values: pd.Series, reference: pd.Series | None = None, *, bounds: np.ndarray | None = None
) -> pd.Series:
    """Each value's bin label.

    Args:
        layer: The layer's feature, bins and missing label.
        values: The feature for the customers to label.
        reference: For quantile bins, the population the quantiles come from (e.g. the model's
            training sample, so one customer gets the same label in a batch and in a single
            request); `values` itself when None.
        bounds: The layer's bin edges from `layer_bounds`; `reference` is not used then.
    """
    edges = bounds if bounds is not None else _edges(layer, reference if reference is not None else values)
    codes, labels = _layer_codes(layer, _numeric(values), edges)
    return pd.Series(_take(labels, codes), index=values.index, dtype="object")


def _rfm_codes(crm: CrmSettings, frame: Frame, columns: Mapping[str, _Numeric]) -> tuple[np.ndarray, list[str]]:
    """Each row's index into the segment names (the configured segments, then the catch-all)."""
    segments = crm.rfm_segments
    names_ = [s.name for s in segments] + [crm.other_segment]
    if not segments or RFM_RECENCY not in frame or RFM_FREQUENCY not in frame:
        return np.full(_height(frame), len(segments), dtype=np.intp), names_
    r, f = columns[RFM_RECENCY][0], columns[RFM_FREQUENCY][0]
    lows_r, highs_r, lows_f, highs_f = (
        np.array(bounds, dtype=float)[:, None]
        for bounds in zip(*((*s.recency, *s.frequency) for s in segments), strict=True)
    )
    covers = (r >= lows_r) & (r <= highs_r) & (f >= lows_f) & (f <= highs_f)  # segment x row
    return np.where(covers.any(axis=0), covers.argmax(axis=0), len(segments)), names_


def rfm_segments(crm: CrmSettings, frame: pd.DataFrame) -> pd.Series:
    """Each row's RFM segment: the first configured segment covering its recency and frequency scores."""
    columns = _numeric_columns(frame, [c for c in (RFM_RECENCY, RFM_FREQUENCY) if c in frame])
    codes, segments = _rfm_codes(crm, frame, columns)
    return pd.Series(_take(segments, codes), index=frame.index, dtype="object")


def _choose(
    entries: Sequence[PlayEntry], dims: Mapping[str, _Dimension], fired: Mapping[str, np.ndarray], n: int
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


def _factorize(values: Any) -> _Dimension:
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
    entries = sorted(crm.playbook, key=lambda e: e.priority)
    lengths = np.fromiter(map(len, hits), dtype=np.intp, count=n)
    rows = np.repeat(np.arange(n), lengths)
    rules = np.array([h.rule for row in hits for h in row], dtype=object)
    fired: dict[str, np.ndarray] = {}
    for name in {r for e in entries for r in e.when.get(RULES_DIMENSION, ())}:
        fired[name] = np.zeros(n, dtype=bool)
        fired[name][rows[rules == name]] = True
    columns = {dim: _factorize(dims[dim]) for dim in dims.columns}
    chosen = _choose(entries, columns, fired, n)
    actions = _take([e.action for e in entries] + [crm.default_action], chosen)
    priorities = _take([e.priority for e in entries] + [None], chosen)
    return actions.tolist(), priorities.tolist()


def customer_value(crm: CrmSettings, frame: pd.DataFrame) -> pd.Series:
    """Estimated yearly value per customer: the value feature scaled from its window to 365 days."""
    cfg = crm.customer_value
    value = pd.to_numeric(frame[cfg.feature], errors="coerce").fillna(0.0)
    return value * 365.0 / cfg.window_days


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
        reference: Population for quantile layers (see `layer_labels`); None uses `features`.
        bounds: Bin edges per layer, from `layer_bounds(crm, reference)` computed once (the same
            labels as passing `reference`, without resolving its quantiles on every call); a layer
            not in it is labelled as without `bounds`.

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
    n = _height(features)
    value_feature = crm.customer_value.feature
    rfm = [c for c in (RFM_RECENCY, RFM_FREQUENCY) if c in features]
    columns = _numeric_columns(
        features, [*_rule_features(crm.rules), *(layer.feature for layer in crm.layers.values()), *rfm, value_feature]
    )
    out: dict[str, Any] = {names.CUSTOMER_ID: _customer_ids(features[names.CUSTOMER_ID])}
    dims: dict[str, _Dimension] = {}
    for name, layer in crm.layers.items():
        edges = bounds.get(name) if bounds is not None else None
        if edges is None:
            population = reference[layer.feature] if reference is not None and layer.feature in reference else None
            edges = _edges(layer, population if population is not None else pd.Series(features[layer.feature]))
        codes, labels = _layer_codes(layer, columns[layer.feature], edges)
        out[name] = _take(labels, codes)
        dims[name] = (codes, labels)
    codes, segments = _rfm_codes(crm, features, columns)
    out[SEGMENT] = _take(segments, codes)
    dims[RFM_DIMENSION] = (codes, segments)
    # A request's few rows need no pause (and the service's threads no process-wide switch).
    with gc_paused() if n >= GC_PAUSE_ROWS else contextlib.nullcontext():
        fired = _fire(crm.rules, columns, n)
        # Rule hits and actions of no rows are an empty list, which pandas types float64 (as it always did).
        out[RULE_HITS] = _hits(fired, n) if n else []
    if not isinstance(features, pd.DataFrame) or _plain(features[value_feature]):
        x, missing = columns[value_feature]
        value: Any = np.where(missing, 0.0, x) * 365.0 / crm.customer_value.window_days
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
        dims[TIER_DIMENSION] = _factorize(tier_values)
    entries = sorted(crm.playbook, key=lambda e: e.priority)
    chosen = _choose(entries, dims, {rule.name: mask for rule, mask, _, _ in fired}, n)
    out[ACTION] = _take([e.action for e in entries] + [crm.default_action], chosen) if n else []
    priority = np.array([e.priority for e in entries] + [0], dtype=np.int64)[chosen]
    out[ACTION_PRIORITY] = pd.arrays.IntegerArray(priority, chosen < 0)
    return out
