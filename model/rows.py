"""Feature rows as the predictor takes them: a DataFrame, or columns (feature -> values), which the
request path builds without pandas; and the conversions of their values to the model's numbers."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

Rows: TypeAlias = pd.DataFrame | Mapping[str, Sequence[Any]]
"""Feature rows: a DataFrame, or columns (feature -> one value per row), which the request path
builds without pandas."""


def row_count(rows: Rows) -> int:
    """How many rows `rows` holds."""
    if isinstance(rows, pd.DataFrame):
        return len(rows)
    return len(next(iter(rows.values()))) if rows else 0


def column(rows: Rows, feature: str) -> list[Any]:
    """One column of `rows` as a list."""
    values = rows[feature]
    return values.tolist() if isinstance(values, pd.Series | np.ndarray) else list(values)


def category_codes(values: Sequence[Any], codes: Mapping[str, float]) -> list[float]:
    """Each value's code in the training categories; NaN (missing to the model) for an unknown one or no string."""
    return [codes.get(v, math.nan) if isinstance(v, str) else math.nan for v in values]


def frame_category_codes(values: pd.Series, codes: Mapping[str, float]) -> np.ndarray:
    """`_category_codes` of a column as float32, looking up each distinct value once.

    Equal values get the same code either way: the column is factorized (missing values, which
    are no strings, apart) and its distinct values coded as `_category_codes` codes each value.
    A column with unhashable values (which are no strings: NaN) is coded value by value.
    """
    try:
        positions, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError:  # e.g. a list somewhere: no string, and no key either
        return np.array(category_codes(values.tolist(), codes), dtype=np.float32)
    table = np.empty(len(uniques) + 1, dtype=np.float32)
    table[:-1] = category_codes(list(uniques), codes)
    table[-1] = math.nan  # position -1: missing
    return table[positions]


def column_numbers(rows: Mapping[str, Sequence[Any]], features: list[str]) -> np.ndarray:
    """`features` of columns as float64, one line per row; a value that is no number becomes NaN."""
    try:
        return np.array([rows[f] for f in features], dtype=np.float64).T.copy()
    except (TypeError, ValueError):  # a string or an odd object somewhere
        return numbers(pd.DataFrame({f: rows[f] for f in features}, columns=features))


def numbers(frame: pd.DataFrame) -> np.ndarray:
    """The numeric features as float64, missing values NaN; a value that is no number becomes NaN."""
    try:
        return frame.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):  # a string or an odd object somewhere: column by column, coercing
        return np.column_stack(
            [pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan) for c in frame]
        )


def plain(value: Any) -> float | str | None:  # noqa: ANN401
    """A feature value as JSON wants it: a float, a string (attributes) or None when missing."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return value
    return float(value)
