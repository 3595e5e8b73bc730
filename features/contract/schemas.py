"""Pandera schemas of the clean tables, with the checks behind the reasons they report."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pc

from core import names
from features.contract.arrow import arrow_text, is_numpy_like
from features.contract.fields import (
    CHURN_BEFORE_SIGNUP,
    DATE_NS,
    DUPLICATE_ROW,
    NEGATIVE_AMOUNT,
    STRING,
    UNKNOWN_CUSTOMER,
    UNKNOWN_EVENT_TYPE,
    UTC_NS,
)


def customers_schema(attributes: Sequence[str] = ()) -> pa.DataFrameSchema:
    """Schema of the clean customers table.

    Args:
        attributes: Static attribute columns that may be present (any dtype, nulls allowed).

    Returns:
        A strict schema: customer_id (unique, not null), signup_date (not null), churn_date
        (nullable, not before signup_date) and the optional attributes.
    """
    columns = {
        names.CUSTOMER_ID: pa.Column(STRING, nullable=False, unique=True, report_duplicates="exclude_first"),
        names.SIGNUP_DATE: pa.Column(DATE_NS, nullable=False),
        names.CHURN_DATE: pa.Column(DATE_NS, nullable=True),
    }
    for name in attributes:
        columns.setdefault(name, pa.Column(None, nullable=True, required=False))
    return pa.DataFrameSchema(
        columns,
        checks=[pa.Check(_churn_not_before_signup, error=CHURN_BEFORE_SIGNUP)],
        strict=True,
        name="customers",
    )


def events_schema(
    event_types: Sequence[str], known_customers: pd.Series | pd.Index | None = None
) -> pa.DataFrameSchema:
    """Schema of the clean events table.

    Args:
        event_types: The accepted event types.
        known_customers: When given, every customer_id must be one of these.

    Returns:
        A strict, ordered schema: customer_id, event_timestamp, event_type (all not null),
        amount (nullable, not negative), category (nullable); no row may repeat an earlier one.
    """
    id_checks = []
    if known_customers is not None:
        known = arrow_text(pd.Series(known_customers))
        id_checks.append(pa.Check(lambda ids: _isin(ids, known), error=UNKNOWN_CUSTOMER))
    return pa.DataFrameSchema(
        {
            names.CUSTOMER_ID: pa.Column(STRING, id_checks, nullable=False),
            names.EVENT_TIMESTAMP: pa.Column(UTC_NS, nullable=False),
            names.EVENT_TYPE: pa.Column(
                STRING, pa.Check.isin(list(event_types), error=UNKNOWN_EVENT_TYPE), nullable=False
            ),
            names.AMOUNT: pa.Column("float64", pa.Check.ge(0, error=NEGATIVE_AMOUNT), nullable=True),
            names.CATEGORY: pa.Column(STRING, nullable=True),
        },
        checks=[pa.Check(_not_repeated, error=DUPLICATE_ROW)],
        strict=True,
        ordered=True,
        name="events",
    )


def duplicates_schema(schema: pa.DataFrameSchema) -> pa.DataFrameSchema:
    """Only the duplicate checks of a contract schema (for the second pass over the good rows).

    Args:
        schema: What `customers_schema` or `events_schema` returned.

    Returns:
        A schema with that table's duplicate check alone.
    """
    if schema.name == "events":
        return pa.DataFrameSchema(checks=[pa.Check(_not_repeated, error=DUPLICATE_ROW)], name=schema.name)
    return pa.DataFrameSchema({names.CUSTOMER_ID: schema.columns[names.CUSTOMER_ID]}, name=schema.name)


def _isin(values: pd.Series, allowed: pyarrow.Array) -> pd.Series:
    # pandas' isin on Arrow strings builds a Python list of the allowed values on every call;
    # Arrow's is_in hashes them once, in C++.
    array = arrow_text(values)
    hits = pc.is_in(array, value_set=allowed.cast(array.type)).fill_null(False)
    return pd.Series(hits.to_numpy(zero_copy_only=False), index=values.index)


def _churn_not_before_signup(frame: pd.DataFrame) -> pd.Series:
    churn, signup = frame[names.CHURN_DATE], frame[names.SIGNUP_DATE]
    return churn.isna() | signup.isna() | (churn >= signup)


def _not_repeated(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(~later_duplicates(frame), index=frame.index)


def later_duplicates(frame: pd.DataFrame) -> np.ndarray:
    """Rows equal in every column to an earlier row (`DataFrame.duplicated(keep="first")`, faster).

    `DataFrame.duplicated` compares every row over string columns. This hashes the columns one
    at a time, cheap numeric and datetime columns first, and after each drops the rows whose
    running hash is unique (they cannot be duplicates); the exact comparison runs only on the
    rows left. An event log with fine timestamps is down to a handful of rows after one column.

    Args:
        frame: Any columns.

    Returns:
        Boolean array, True for the second and later copies.
    """
    n = len(frame)
    repeated = np.zeros(n, dtype=bool)
    if n < 2 or frame.shape[1] == 0:
        return repeated
    rows = np.arange(n)
    hashes = np.zeros(n, dtype=np.uint64)
    # Positions, not names: a frame may repeat a column name.
    for i in sorted(range(frame.shape[1]), key=lambda i: not is_numpy_like(frame.dtypes.iloc[i])):
        column = frame.iloc[:, i] if len(rows) == n else frame.iloc[rows, i]
        with np.errstate(over="ignore"):
            # Order-dependent mix (FNV-1 style); wrapping in uint64 is intended.
            hashes = (hashes * np.uint64(0x100000001B3)) ^ _hash_column(column)
        keep = _repeats(hashes)
        rows, hashes = rows[keep], hashes[keep]
        if len(rows) == 0:
            return repeated
    repeated[rows] = frame.iloc[rows].duplicated(keep="first").to_numpy()
    return repeated


def _hash_column(column: pd.Series) -> np.ndarray:
    dtype = column.dtype
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        # -0.0 == 0.0 for `duplicated`, but their bits (and so their hashes) differ.
        values = column.to_numpy() + 0.0
    elif isinstance(dtype, np.dtype) and dtype.kind in "iub":
        values = column.to_numpy()
    elif is_numpy_like(dtype):
        values = column.array.asi8
    else:
        # Codes are only compared within this call, so factorizing the subset is enough.
        values = pd.factorize(column)[0]
    return pd.util.hash_array(values, categorize=False)


def _repeats(values: np.ndarray) -> np.ndarray:
    """True where the value occurs more than once."""
    ordered = np.sort(values)
    same = ordered[1:] == ordered[:-1]
    if not same.any():
        return np.zeros(len(values), dtype=bool)
    return np.isin(values, ordered[1:][same])
