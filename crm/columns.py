"""Feature columns as the early-warning steps read them: rows as a DataFrame or as plain columns,
each feature converted once to floats and a missing mask, and labels taken by code."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

Frame: TypeAlias = pd.DataFrame | Mapping[str, Sequence[Any]]
"""Feature rows: a DataFrame, or columns (feature -> one value per row)."""

Numeric: TypeAlias = tuple[np.ndarray, np.ndarray]
"""A feature as floats and where it is missing (what `pd.to_numeric(errors='coerce')` makes of it)."""


def height(frame: Frame) -> int:
    """How many rows `frame` holds."""
    if isinstance(frame, pd.DataFrame):
        return len(frame)
    return len(next(iter(frame.values()))) if frame else 0


def is_plain(values: pd.Series) -> bool:
    """Whether the column is a NumPy bool, integer or float column (`pd.to_numeric` leaves it as is)."""
    return isinstance(values.dtype, np.dtype) and values.dtype.kind in "biuf"


def numeric(values: pd.Series | Sequence[Any]) -> Numeric:
    """The column as floats and its missing rows, as `pd.to_numeric(values, errors="coerce")` reads it."""
    if not isinstance(values, pd.Series):  # a column of plain values (the request path)
        try:
            x = np.array(values, dtype=float)
            return x, np.isnan(x)
        except (TypeError, ValueError):
            values = pd.Series(values, dtype=object)
    if is_plain(values):
        x = values.to_numpy(dtype=float)
        return x, np.isnan(x)
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers.to_numpy(dtype=float, na_value=np.nan), numbers.isna().to_numpy()


def numeric_columns(frame: Frame, features: Iterable[str]) -> dict[str, Numeric]:
    """Each named feature of `frame` as numbers, converted once however many steps use it."""
    return {feature: numeric(frame[feature]) for feature in dict.fromkeys(features)}


def take(values: Sequence[Any], codes: np.ndarray) -> np.ndarray:
    """`values[code]` for each code, as an object array."""
    table = np.empty(len(values), dtype=object)
    table[:] = values
    return table[codes]
