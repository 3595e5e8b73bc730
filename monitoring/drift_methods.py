"""Which drift test each column gets, and which way its value reads (drift or not).

Why an effect size, not a p-value, by default. With 100,000 rows a side a two-sample test such as
Kolmogorov-Smirnov detects shifts far too small to matter, and at p < 0.05 it also flags about 5 %
of columns that did not change at all: about 2 of 39 unshifted columns, every run, by chance. The
default numeric test (`monitoring.tests`, `core.settings.DriftTests`) is therefore Evidently's
normed Wasserstein distance (the Wasserstein-1 distance divided by the reference standard
deviation, so 0.1 is roughly a shift of a tenth of a standard deviation) at 0.15, and the
categorical one the Jensen-Shannon distance at 0.1: they measure how much a distribution moved,
which does not grow with the sample size. P-value methods (`ks`, `chisquare`, `z`, ...) can still be
configured; the verdict then is value < threshold, while distances (`wasserstein`,
`jensenshannon`, `psi`, ...) drift at value >= threshold (`is_drifted`).

Column kinds come from the reference dtypes: object, string, category and bool columns are
categorical, other numeric dtypes numeric, whatever their cardinality (Evidently's own inference
would call an integer column with few distinct values categorical). Missing values (NaN, None,
and for numeric columns +-inf) are dropped before testing, as Evidently does; a change in the
missing share alone is not drift.

Two columns cannot be tested by their distribution:

- A column with no value at all on one side (or both): Evidently refuses an empty column. It is
  tested on its missing share instead: method `MISSING_SHARE`, value = |current missing share -
  reference missing share|, drift at >= `MISSING_SHARE_THRESHOLD` (0.1). A column that went
  entirely missing is thus drifted; one missing on both sides is not.
- A constant numeric reference column: Evidently norms the Wasserstein distance by
  max(std, 0.001), so any change scores far above the threshold (0.5 % of the values off by 1
  already score 5). Such columns get `CONSTANT_REFERENCE_METHOD` (the Jensen-Shannon distance on
  their values, 0.1): 0 when the current column holds the same constant, drift when at least a
  few percent of the values differ (about 3 %).

Evidently's methods are listed in `METHODS` (name, display name, the kinds it tests, p-value or
distance) instead of being looked up in Evidently's registry, which is not public API;
`tests/unit/monitoring/test_evidently_adapter.py` checks the table against the registry of the installed version.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from core.monitoring_settings import DriftTests

Kind = Literal["numeric", "categorical"]


class Method(NamedTuple):
    """One of Evidently's drift methods.

    Attributes:
        display_name: The name Evidently records for the method when it chose it itself.
        kinds: The column kinds it can test.
        p_value: True for a test whose value is a p-value (drift when below the threshold), False
            for a distance (drift at or above it).
    """

    display_name: str
    kinds: frozenset[Kind]
    p_value: bool


_NUM: frozenset[Kind] = frozenset({"numeric"})
_CAT: frozenset[Kind] = frozenset({"categorical"})
_BOTH: frozenset[Kind] = _NUM | _CAT
_TEXT: frozenset[Kind] = frozenset()

METHODS: dict[str, Method] = {
    "anderson": Method("Anderson-Darling", _NUM, True),
    "chisquare": Method("chi-square p_value", _CAT, True),
    "cramer_von_mises": Method("Cramer-von Mises", _NUM, True),
    "ed": Method("Energy-distance", _NUM, False),
    "es": Method("Epps-Singleton", _NUM, True),
    "fisher_exact": Method("Fisher's Exact test", _CAT, True),
    "g_test": Method("g_test", _CAT, True),
    "hellinger": Method("Hellinger distance", _BOTH, False),
    "jensenshannon": Method("Jensen-Shannon distance", _BOTH, False),
    "kl_div": Method("Kullback-Leibler divergence", _BOTH, False),
    "ks": Method("K-S p_value", _NUM, True),
    "mannw": Method("Mann-Whitney U-rank test", _NUM, True),
    "empirical_mmd": Method("empirical_mmd", _NUM, True),
    "psi": Method("PSI", _BOTH, False),
    "t_test": Method("t_test", _NUM, True),
    "perc_text_content_drift": Method("Percentile text content drift", _TEXT, False),
    "abs_text_content_drift": Method("Absolute text content drift", _TEXT, False),
    "TVD": Method("Total-Variation-Distance", _CAT, True),
    "wasserstein": Method("Wasserstein distance (normed)", _NUM, False),
    "z": Method("Z-test p_value", _CAT, True),
}
"""Evidently's drift methods by registry name (text-only methods test no kind of this platform)."""

P_VALUE_METHODS = frozenset(name for name, method in METHODS.items() if method.p_value)
"""Evidently tests whose value is a p-value: drift when value < threshold."""

MISSING_SHARE = "missing_share"
"""Pseudo-method for columns without any value on one side: |current - reference missing share|."""

MISSING_SHARE_THRESHOLD = 0.1
"""Drift threshold of `MISSING_SHARE`."""

DISTANCE_METHODS = frozenset({*(name for name, method in METHODS.items() if not method.p_value), MISSING_SHARE})
"""Evidently distances (and `MISSING_SHARE`): drift when value >= threshold."""

STD_NORMED_METHODS = frozenset({"wasserstein"})
"""Numeric methods Evidently norms by the reference standard deviation (useless on constant columns)."""

CONSTANT_REFERENCE_METHOD = ("jensenshannon", 0.1)
"""Method and threshold for a numeric column whose reference is constant (see the module docstring)."""

_BY_DISPLAY_NAME = {method.display_name: name for name, method in METHODS.items()}


@dataclass(frozen=True)
class ColumnTest:
    """The test chosen for one column.

    Attributes:
        column: Column name.
        kind: How Evidently treats the column.
        method: Evidently's name of the test or distance, or `MISSING_SHARE`.
        threshold: Its threshold.
    """

    column: str
    kind: Kind
    method: str
    threshold: float


def method_name(method: str) -> str:
    """Evidently's registry name of `method`, which may also be a display name such as 'K-S p_value'.

    Evidently records the display name when it chose the method itself (`ValueDrift` without one).
    """
    return _BY_DISPLAY_NAME.get(method, method)


def is_drifted(method: str, threshold: float, value: float) -> bool:
    """Whether a test's value means drift.

    Args:
        method: Evidently's name (or display name) of the test, or `MISSING_SHARE`.
        threshold: The test's threshold.
        value: The test's value: a p-value or a distance.

    Returns:
        value < threshold for p-value tests, value >= threshold for distances. (Evidently itself
        differs at the boundary for two methods: `ed` drifts at value > threshold and
        `cramer_von_mises` at value <= threshold.)

    Raises:
        ValueError: Unknown method, or a value that is not a finite number.
    """
    if not math.isfinite(value):
        raise ValueError(f"drift value of method {method!r} is not a finite number: {value}")
    name = method_name(method)
    if name in P_VALUE_METHODS:
        return value < threshold
    if name in DISTANCE_METHODS:
        return value >= threshold
    raise ValueError(
        f"unknown drift method {method!r}: not one of the p-value tests {sorted(P_VALUE_METHODS)} "
        f"nor the distances {sorted(DISTANCE_METHODS)}"
    )


def kind_of(series: pd.Series) -> Kind:
    """The kind of a column by its dtype (see the module docstring).

    Raises:
        ValueError: A dtype that is neither numeric nor categorical (e.g. datetime).
    """
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        return "categorical"
    raise ValueError(f"column {series.name!r} has dtype {dtype}, neither numeric nor categorical")


def finite(series: pd.Series) -> np.ndarray:
    """The finite values of a numeric column as float64 (NaN, None and +-inf dropped)."""
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    return values[np.isfinite(values)]


def missing_share(series: pd.Series, kind: Kind) -> float:
    """The share of missing values: NaN and None, and +-inf in a numeric column; 1.0 when empty."""
    if not len(series):
        return 1.0
    if kind == "numeric" and pd.api.types.is_numeric_dtype(series.dtype):
        return 1.0 - finite(series).size / len(series)
    return float(series.isna().mean())


def _check_method(column: str, kind: Kind, method: str) -> None:
    known = METHODS.get(method)
    if known is None:
        raise ValueError(f"drift method {method!r} cannot test {kind} column {column!r}: not one of {sorted(METHODS)}")
    if kind not in known.kinds:
        raise ValueError(
            f"drift method {method!r} cannot test {kind} column {column!r}: it tests "
            f"{' and '.join(sorted(known.kinds)) or 'text'} columns"
        )


def choose_tests(reference: pd.DataFrame, columns: Sequence[str], methods: DriftTests) -> list[ColumnTest]:
    """Choose each column's test from its reference dtype.

    A numeric column whose reference values are all equal gets `CONSTANT_REFERENCE_METHOD` when the
    numeric method is normed by the standard deviation (Wasserstein).

    Args:
        reference: The reference data.
        columns: Columns to test, all in `reference`.
        methods: The methods per kind (`monitoring.tests`); the prediction's are not used here.

    Returns:
        One test per column, in the order of `columns`.

    Raises:
        ValueError: A column is missing from `reference`, has another dtype (e.g. datetime), or the
            method does not apply to its kind.
    """
    missing = [c for c in columns if c not in reference.columns]
    if missing:
        raise ValueError(f"columns not in the reference data: {missing}")
    tests = []
    for column in columns:
        kind = kind_of(reference[column])
        if kind == "categorical":
            method, threshold = methods.categorical, methods.categorical_threshold
        else:
            method, threshold = methods.numeric, methods.numeric_threshold
            if method in STD_NORMED_METHODS:
                values = finite(reference[column])
                if values.size and values.min() == values.max():
                    method, threshold = CONSTANT_REFERENCE_METHOD
        _check_method(column, kind, method)
        tests.append(ColumnTest(column, kind, method, float(threshold)))
    return tests


def prediction_test(reference: pd.DataFrame, column: str, methods: DriftTests) -> ColumnTest:
    """The test of the (numeric) prediction column: `methods.prediction` at its threshold."""
    by_prediction = methods.model_copy(
        update={"numeric": methods.prediction, "numeric_threshold": methods.prediction_threshold}
    )
    return choose_tests(reference, [column], by_prediction)[0]


def with_missing_share(tests: Sequence[ColumnTest], reference: pd.DataFrame, current: pd.DataFrame) -> list[ColumnTest]:
    """`tests`, with `MISSING_SHARE` for the columns that have no value on one side or both."""
    return [
        replace(t, method=MISSING_SHARE, threshold=MISSING_SHARE_THRESHOLD)
        if missing_share(reference[t.column], t.kind) == 1.0 or missing_share(current[t.column], t.kind) == 1.0
        else t
        for t in tests
    ]
