"""Parsing a raw export onto the contract: column mapping, clean dtypes, and which values did not parse."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow

from core import names
from core.config_sections import CustomersSource, EventsSource
from features.contract.fields import (
    CONTRACT_FIELDS,
    DATE_NS,
    REQUIRED_FIELDS,
    STRING,
    UNPARSEABLE_AMOUNT,
    UNPARSEABLE_CHURN_DATE,
    UNPARSEABLE_EVENT_TIMESTAMP,
    UNPARSEABLE_SIGNUP_DATE,
    UTC_NS,
    ContractError,
    TableKind,
)

# An explicit UTC offset (or Z) after a time of day; a bare date's "-01" is not an offset.
_OFFSET_PATTERN = r"[T ]\d{2}(?::\d{2}(?::\d{2}(?:[.,]\d+)?)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"


@dataclass(frozen=True)
class Parsed:
    """A raw table parsed onto the contract, before any row is judged."""

    raw: pd.DataFrame
    """The input frame with a RangeIndex."""
    frame: pd.DataFrame
    """Contract columns with clean dtypes; values that did not parse are null."""
    columns: Mapping[str, str]
    """Contract field -> the file column it was read from."""
    unparseable: Mapping[str, np.ndarray]
    """Reason kind -> rows whose non-empty value did not parse."""


def parse_events(frame: pd.DataFrame, source: EventsSource) -> Parsed:
    """Map a raw event export onto the contract columns and parse its values.

    Args:
        frame: The events as read from the file.
        source: The events config: column mapping, accepted and default event type, timestamp format.

    Returns:
        The clean columns (unparseable values null) and which non-empty values did not parse.

    Raises:
        ContractError: The default event type is not an accepted one, the mapping is off (see
            `_resolve_columns`), or the timestamp column holds numbers.
    """
    if source.default_event_type is not None and source.default_event_type not in source.event_types:
        raise ContractError(
            f"data.events.default_event_type '{source.default_event_type}' is not one of "
            f"data.events.event_types ({', '.join(source.event_types)})"
        )
    raw = _with_range_index(frame)
    optional_type = source.default_event_type is not None
    columns = _resolve_columns(raw, "events", source.columns, (), optional=(names.EVENT_TYPE,) if optional_type else ())
    n = len(raw)

    timestamps, ts_present = _instants(raw[columns[names.EVENT_TIMESTAMP]], source.timestamp_format, "events")
    unparseable = {UNPARSEABLE_EVENT_TIMESTAMP: (ts_present & timestamps.isna()).to_numpy()}

    if names.EVENT_TYPE in columns:
        types = _text(raw[columns[names.EVENT_TYPE]])
        if source.default_event_type is not None:
            types = types.fillna(source.default_event_type)
    else:
        types = _constant_text(source.default_event_type, n)

    if names.AMOUNT in columns:
        amounts, amount_present = _numbers(raw[columns[names.AMOUNT]])
        unparseable[UNPARSEABLE_AMOUNT] = (amount_present & amounts.isna()).to_numpy()
    else:
        amounts = pd.Series(np.full(n, np.nan))

    categories = _text(raw[columns[names.CATEGORY]]) if names.CATEGORY in columns else _constant_text(None, n)
    clean = pd.DataFrame(
        {
            names.CUSTOMER_ID: _text(raw[columns[names.CUSTOMER_ID]]),
            names.EVENT_TIMESTAMP: timestamps,
            names.EVENT_TYPE: types,
            names.AMOUNT: amounts,
            names.CATEGORY: categories,
        },
        index=raw.index,
    )
    return Parsed(raw=raw, frame=clean, columns=columns, unparseable=unparseable)


def parse_customers(frame: pd.DataFrame, source: CustomersSource) -> Parsed:
    """Map a raw customer export onto the contract columns and parse its values.

    Args:
        frame: The customers as read from the file.
        source: The customers config: column mapping and static attributes.

    Returns:
        The clean columns (unparseable dates null) and which non-empty dates did not parse.

    Raises:
        ContractError: The mapping is off (see `_resolve_columns`) or a date column holds numbers.
    """
    raw = _with_range_index(frame)
    columns = _resolve_columns(raw, "customers", source.columns, source.attributes, optional=())

    signup, signup_present = _instants(raw[columns[names.SIGNUP_DATE]], None, "customers")
    unparseable = {UNPARSEABLE_SIGNUP_DATE: (signup_present & signup.isna()).to_numpy()}
    if names.CHURN_DATE in columns:
        churn, churn_present = _instants(raw[columns[names.CHURN_DATE]], None, "customers")
        unparseable[UNPARSEABLE_CHURN_DATE] = (churn_present & churn.isna()).to_numpy()
    else:
        churn = pd.Series(pd.NaT, index=raw.index, dtype=UTC_NS)

    data: dict[str, pd.Series] = {
        names.CUSTOMER_ID: _text(raw[columns[names.CUSTOMER_ID]]),
        names.SIGNUP_DATE: _utc_day(signup),
        names.CHURN_DATE: _utc_day(churn),
    }
    for name in source.attributes:
        if name in columns and name not in data:
            data[name] = raw[columns[name]]
    clean = pd.DataFrame(data, index=raw.index)
    return Parsed(raw=raw, frame=clean, columns=columns, unparseable=unparseable)


def _with_range_index(frame: pd.DataFrame) -> pd.DataFrame:
    # Rows are addressed by position throughout (pandera reports index labels).
    if isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1:
        return frame
    return frame.reset_index(drop=True)


def _preview(columns: pd.Index, limit: int = 30) -> str:
    shown = ", ".join(str(c) for c in columns[:limit])
    return shown + (f", ... ({len(columns)} columns)" if len(columns) > limit else "")


def _resolve_columns(
    frame: pd.DataFrame,
    kind: TableKind,
    mapping: Mapping[str, str],
    attributes: Sequence[str],
    optional: Sequence[str],
) -> dict[str, str]:
    """Contract field -> file column, for the mapped fields whose column the file has.

    Raises:
        ContractError: The mapping names an unknown field, or a required field is unmapped or
            its column is missing from the file.
    """
    known = set(CONTRACT_FIELDS[kind]) | set(attributes)
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise ContractError(
            f"data.{kind}.columns maps unknown contract field(s) {', '.join(map(repr, unknown))}: "
            f"the {kind} contract fields are {', '.join(CONTRACT_FIELDS[kind])}"
            + (f" and the attributes {', '.join(attributes)}" if attributes else "")
        )
    problems = []
    for name in REQUIRED_FIELDS[kind]:
        if name in optional:
            continue
        hint = ""
        if name == names.EVENT_TYPE:
            hint = " (or set data.events.default_event_type if every row is one type, e.g. purchase)"
        column = mapping.get(name)
        if column is None:
            problems.append(
                f"data.{kind}.columns has no entry for required contract field '{name}': "
                f"set data.{kind}.columns.{name} in your config to the column holding it{hint}"
            )
        elif column not in frame.columns:
            problems.append(
                f"{kind} file has no column '{column}' for contract field '{name}': "
                f"set data.{kind}.columns.{name} in your config to the right column name{hint}"
            )
    if problems:
        raise ContractError("; ".join(problems) + f" (file columns: {_preview(frame.columns)})")
    resolved = {name: column for name, column in mapping.items() if column in frame.columns}
    for name in attributes:
        if name not in mapping and name in frame.columns:
            resolved[name] = name
    return resolved


def _text(values: pd.Series) -> pd.Series:
    """Strings with whitespace stripped; empty and missing values become NA."""
    if pd.api.types.is_float_dtype(values.dtype):
        finite = values.dropna()
        # Ids exported as floats (1.0, 2.0): read them as the integers they are.
        if len(finite) and np.array_equal(finite.to_numpy(dtype="float64") % 1, np.zeros(len(finite))):
            values = values.astype("Int64")
    text = values if values.dtype == STRING else values.astype(STRING)
    text = text.str.strip()
    return text.mask((text == "").fillna(False).astype(bool))


def _constant_text(value: str | None, n: int) -> pd.Series:
    if value is None:
        return pd.Series(pd.array(pyarrow.nulls(n, pyarrow.string()), dtype=STRING))
    # Arrow's take repeats one value without building n Python strings.
    return pd.Series(pd.array([value], dtype=STRING).take(np.zeros(n, dtype=np.intp)))


def _instants(values: pd.Series, fmt: str | None, kind: TableKind) -> tuple[pd.Series, pd.Series]:
    """Parse timestamps to datetime64[ns, UTC]; also say which values were present (non-empty).

    Naive values are read as UTC; values with an offset are converted. Unparseable and
    out-of-range values become NaT.
    """
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return _as_ns(values.dt.tz_convert("UTC")), values.notna()
    if dtype.kind == "M":
        return _as_ns(values.dt.tz_localize("UTC")), values.notna()
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        raise ContractError(
            f"{kind} column '{values.name}' holds numbers ({dtype}), not timestamps: map the field to a "
            "column of dates, or export it as ISO 8601 text or a Parquet timestamp"
        )
    text = _text(values)
    present = text.notna()
    if fmt is not None:
        return _as_ns(pd.to_datetime(text, utc=True, format=fmt, errors="coerce")), present
    # pandas' ISO 8601 parser applies the last seen offset to later naive values when offsets
    # and naive values are mixed, so parse the two kinds apart.
    aware = text.str.contains(_OFFSET_PATTERN, regex=True).fillna(False).astype(bool).to_numpy()
    if aware.all() or not aware.any():
        return _as_ns(pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")), present
    parsed = pd.Series(pd.NaT, index=text.index, dtype=UTC_NS)
    parsed[aware] = _as_ns(pd.to_datetime(text[aware], utc=True, format="ISO8601", errors="coerce"))
    parsed[~aware] = _as_ns(pd.to_datetime(text[~aware], utc=True, format="ISO8601", errors="coerce"))
    return parsed, present


def _as_ns(instants: pd.Series) -> pd.Series:
    if instants.dt.unit == "ns":
        return instants
    # Parquet timestamps may be in us or ms and reach beyond ns range (e.g. 9999-12-31 sentinels).
    lo, hi = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")
    if instants.notna().any() and (instants.min() < lo or instants.max() > hi):
        instants = instants.where((instants >= lo) & (instants <= hi))
    return instants.dt.as_unit("ns")


def _utc_day(instants: pd.Series) -> pd.Series:
    return instants.dt.tz_convert(None).dt.normalize().astype(DATE_NS)


def _numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse numbers to float64; also say which values were present (non-empty)."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        present = values.notna()
        numbers = values
    else:
        text = _text(values)
        present = text.notna()
        numbers = pd.to_numeric(text, errors="coerce")
    as_float = numbers.to_numpy(dtype="float64", na_value=np.nan)
    return pd.Series(as_float, index=values.index), present
