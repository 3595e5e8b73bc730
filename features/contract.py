"""The CRM data contract: pandera schemas of the clean tables, and the split of a raw export into
valid rows and quarantined rows, each quarantined row with one reason.

Pure logic, frames in and frames out: reading and writing files is `features.ingest`'s job.

Any CSV or Parquet export maps onto the contract through `data.<table>.columns` in the config
(contract field -> column in the file):

* customers: customer_id, signup_date (required), churn_date (optional), and the static
  attributes listed in `data.customers.attributes` that the file has (plan, channel, ...).
* events: customer_id, event_timestamp, event_type (required unless `default_event_type` is
  set), amount and category (optional).

Clean dtypes (what `ValidationResult.valid` holds and the schemas check):

* customer_id, event_type, category: pandas string backed by Arrow (`string[pyarrow]`), with
  surrounding whitespace stripped and an empty string read as missing.
* event_timestamp: `datetime64[ns, UTC]`. A value without an offset is read as UTC; a value
  with one is converted.
* signup_date, churn_date: `datetime64[ns]`, naive, at midnight: the UTC calendar date (a
  time of day or an offset in the input is converted to UTC, then truncated to the day).
* amount: float64, NaN when missing. Attributes keep the dtype they were read with.

How rows are judged, cheapest first: the parser turns values that do not parse into nulls and
remembers which ones did not parse; pandera then validates every row (lazily, so every failure
is collected) and its failure cases name the rows and the check they fail. Each bad row gets the
first reason in `EVENT_REASONS` / `CUSTOMER_REASONS` order. Duplicates are judged among the rows
that pass every other check, so the copy that is kept is the first *good* one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pc
from pandera.errors import SchemaErrors

from core import names
from core.config_sections import CustomersSource, EventsSource

STRING = pd.StringDtype("pyarrow")
"""Dtype of the clean string columns."""
UTC_NS = pd.DatetimeTZDtype("ns", "UTC")
"""Dtype of the clean event timestamps."""
DATE_NS = np.dtype("datetime64[ns]")
"""Dtype of the clean customer dates (naive midnight of the UTC day)."""

SOURCE_ROW = "source_row"
"""Quarantine column: the row's position in the source file, 0 for the first data row (CSV line
`source_row + 2`, counting the header)."""

TableKind = Literal["customers", "events"]

# Reason kinds: the keys of `ValidationResult.counts`.
MISSING_CUSTOMER_ID = "missing_customer_id"
MISSING_EVENT_TIMESTAMP = "missing_event_timestamp"
UNPARSEABLE_EVENT_TIMESTAMP = "unparseable_event_timestamp"
MISSING_EVENT_TYPE = "missing_event_type"
UNKNOWN_EVENT_TYPE = "unknown_event_type"
UNPARSEABLE_AMOUNT = "unparseable_amount"
NEGATIVE_AMOUNT = "negative_amount"
UNKNOWN_CUSTOMER = "unknown_customer"
DUPLICATE_ROW = "duplicate_row"
MISSING_SIGNUP_DATE = "missing_signup_date"
UNPARSEABLE_SIGNUP_DATE = "unparseable_signup_date"
UNPARSEABLE_CHURN_DATE = "unparseable_churn_date"
CHURN_BEFORE_SIGNUP = "churn_before_signup"
DUPLICATE_CUSTOMER_ID = "duplicate_customer_id"

EVENT_REASONS: tuple[str, ...] = (
    MISSING_CUSTOMER_ID,
    UNPARSEABLE_EVENT_TIMESTAMP,
    MISSING_EVENT_TIMESTAMP,
    MISSING_EVENT_TYPE,
    UNKNOWN_EVENT_TYPE,
    UNPARSEABLE_AMOUNT,
    NEGATIVE_AMOUNT,
    UNKNOWN_CUSTOMER,
    DUPLICATE_ROW,
)
"""Reason kinds of events, in priority order: a row failing several checks gets the first."""

CUSTOMER_REASONS: tuple[str, ...] = (
    MISSING_CUSTOMER_ID,
    UNPARSEABLE_SIGNUP_DATE,
    MISSING_SIGNUP_DATE,
    UNPARSEABLE_CHURN_DATE,
    CHURN_BEFORE_SIGNUP,
    DUPLICATE_CUSTOMER_ID,
)
"""Reason kinds of customers, in priority order."""

CONTRACT_FIELDS: dict[TableKind, tuple[str, ...]] = {
    "customers": (names.CUSTOMER_ID, names.SIGNUP_DATE, names.CHURN_DATE),
    "events": (names.CUSTOMER_ID, names.EVENT_TIMESTAMP, names.EVENT_TYPE, names.AMOUNT, names.CATEGORY),
}
REQUIRED_FIELDS: dict[TableKind, tuple[str, ...]] = {
    "customers": (names.CUSTOMER_ID, names.SIGNUP_DATE),
    "events": (names.CUSTOMER_ID, names.EVENT_TIMESTAMP, names.EVENT_TYPE),
}

_DUPLICATE_KINDS = frozenset({DUPLICATE_ROW, DUPLICATE_CUSTOMER_ID})
# Checks whose pandera `error` is the reason kind itself.
_NAMED_CHECKS = frozenset({UNKNOWN_EVENT_TYPE, NEGATIVE_AMOUNT, UNKNOWN_CUSTOMER, DUPLICATE_ROW, CHURN_BEFORE_SIGNUP})
# pandera's built-in checks, per column.
_NOT_NULL_KINDS = {
    names.CUSTOMER_ID: MISSING_CUSTOMER_ID,
    names.EVENT_TIMESTAMP: MISSING_EVENT_TIMESTAMP,
    names.EVENT_TYPE: MISSING_EVENT_TYPE,
    names.SIGNUP_DATE: MISSING_SIGNUP_DATE,
}
_UNIQUE_KINDS = {names.CUSTOMER_ID: DUPLICATE_CUSTOMER_ID}

# An explicit UTC offset (or Z) after a time of day; a bare date's "-01" is not an offset.
_OFFSET_PATTERN = r"[T ]\d{2}(?::\d{2}(?::\d{2}(?:[.,]\d+)?)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"


class ContractError(ValueError):
    """An export that cannot be mapped onto the contract (missing column, bad mapping)."""


@dataclass(frozen=True)
class ValidationResult:
    """A raw table split into contract rows and quarantined rows.

    Attributes:
        valid: Good rows, contract column names and clean dtypes (see the module docstring),
            in file order with a fresh RangeIndex.
        quarantined: Bad rows: `source_row`, `quarantine_reason`, then every column of the file
            as strings; sorted by `source_row`.
        counts: Reason kind -> number of quarantined rows, in priority order; kinds with no
            rows are left out.
    """

    valid: pd.DataFrame
    quarantined: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def rows_in(self) -> int:
        """Rows in the raw table."""
        return len(self.valid) + len(self.quarantined)


# ---------------------------------------------------------------- schemas


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
        known = _arrow_text(pd.Series(known_customers))
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


def _duplicates_schema(schema: pa.DataFrameSchema) -> pa.DataFrameSchema:
    """Only the duplicate checks of a contract schema (for the second pass over the good rows)."""
    if schema.name == "events":
        return pa.DataFrameSchema(checks=[pa.Check(_not_repeated, error=DUPLICATE_ROW)], name=schema.name)
    return pa.DataFrameSchema({names.CUSTOMER_ID: schema.columns[names.CUSTOMER_ID]}, name=schema.name)


def _arrow_text(values: pd.Series) -> pyarrow.Array:
    """Values as an Arrow large-string array, nulls kept, without a Python object per value."""
    if values.dtype == STRING:
        array = pyarrow.array(values.array)
    elif isinstance(values.dtype, pd.DatetimeTZDtype):
        # Arrow formats naive timestamps ~40x faster than zoned ones: format in UTC, mark it Z.
        naive = pyarrow.array(values.dt.tz_convert("UTC").dt.tz_localize(None), from_pandas=True)
        large = pyarrow.large_string()
        return pc.binary_join_element_wise(naive.cast(large), pyarrow.scalar("Z", large), pyarrow.scalar("", large))
    elif _is_numpy_like(values.dtype):
        # Arrow formats numbers and timestamps in C++; pandas' astype(str) goes value by value.
        array = pyarrow.array(values, from_pandas=True).cast(pyarrow.large_string())
    else:
        array = pyarrow.array(values.astype(STRING).array)
    return array.cast(pyarrow.large_string())


def _isin(values: pd.Series, allowed: pyarrow.Array) -> pd.Series:
    # pandas' isin on Arrow strings builds a Python list of the allowed values on every call;
    # Arrow's is_in hashes them once, in C++.
    array = _arrow_text(values)
    hits = pc.is_in(array, value_set=allowed.cast(array.type)).fill_null(False)
    return pd.Series(hits.to_numpy(zero_copy_only=False), index=values.index)


def _churn_not_before_signup(frame: pd.DataFrame) -> pd.Series:
    churn, signup = frame[names.CHURN_DATE], frame[names.SIGNUP_DATE]
    return churn.isna() | signup.isna() | (churn >= signup)


def _not_repeated(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(~later_duplicates(frame), index=frame.index)


def later_duplicates(frame: pd.DataFrame) -> np.ndarray:
    """Rows equal in every column to an earlier row (`DataFrame.duplicated(keep="first")`, faster).

    `DataFrame.duplicated` costs ~1 µs a row over string columns. This hashes the columns one
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
    for i in sorted(range(frame.shape[1]), key=lambda i: not _is_numpy_like(frame.dtypes.iloc[i])):
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


def _is_numpy_like(dtype: object) -> bool:
    return (isinstance(dtype, np.dtype) and dtype.kind in "fiubM") or isinstance(dtype, pd.DatetimeTZDtype)


def _hash_column(column: pd.Series) -> np.ndarray:
    dtype = column.dtype
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        # -0.0 == 0.0 for `duplicated`, but their bits (and so their hashes) differ.
        values = column.to_numpy() + 0.0
    elif isinstance(dtype, np.dtype) and dtype.kind in "iub":
        values = column.to_numpy()
    elif _is_numpy_like(dtype):
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


# ---------------------------------------------------------------- splitting


def split_valid(
    frame: pd.DataFrame,
    kind: TableKind,
    source: CustomersSource | EventsSource,
    *,
    known_customers: pd.Series | pd.Index | None = None,
) -> ValidationResult:
    """Map a raw export onto the contract and split it into valid and quarantined rows.

    Args:
        frame: The table as read from the file: any columns, any dtypes (CSV columns as
            strings). Needs the columns that `source.columns` maps the required fields to.
        kind: Which table this is.
        source: Its config: column mapping, and for events the accepted types, the default
            type and the timestamp format.
        known_customers: Events only: the valid customer ids; events of other customers are
            quarantined as unknown customers.

    Returns:
        The valid rows under contract names and dtypes (events: customer_id, event_timestamp,
        event_type, amount, category; customers: customer_id, signup_date, churn_date and the
        configured attributes the file has), the quarantined rows with their reason, and the
        count of each reason.

    Raises:
        ContractError: A required field is not mapped or its column is not in the file, the
            mapping names an unknown field, a timestamp column holds numbers, or the default
            event type is not an accepted one. Nothing is split in that case.
    """
    if kind == "events":
        if not isinstance(source, EventsSource):
            raise TypeError("events need an EventsSource")
        parsed = _parse_events(frame, source)
        schema = events_schema(source.event_types, known_customers)
        order = EVENT_REASONS
    elif kind == "customers":
        if not isinstance(source, CustomersSource):
            raise TypeError("customers need a CustomersSource")
        if known_customers is not None:
            raise TypeError("known_customers applies to events only")
        parsed = _parse_customers(frame, source)
        schema = customers_schema(source.attributes)
        order = CUSTOMER_REASONS
    else:
        raise ValueError(f"kind must be 'customers' or 'events', not {kind!r}")

    masks = _find_bad_rows(parsed, schema)
    assigned = np.zeros(len(parsed.frame), dtype=bool)
    positions: list[np.ndarray] = []
    reasons: list[pyarrow.Array] = []
    counts: dict[str, int] = {}
    describe = _Describer(parsed, source)
    for reason in order:
        mask = masks.get(reason)
        if mask is None:
            continue
        take = mask & ~assigned
        if not take.any():
            continue
        assigned |= take
        pos = np.flatnonzero(take)
        positions.append(pos)
        reasons.append(describe(reason, pos))
        counts[reason] = len(pos)

    valid = parsed.frame[~assigned].reset_index(drop=True) if assigned.any() else parsed.frame
    return ValidationResult(valid=valid, quarantined=_quarantine(parsed.raw, positions, reasons), counts=counts)


@dataclass(frozen=True)
class _Parsed:
    raw: pd.DataFrame
    """The input frame with a RangeIndex."""
    frame: pd.DataFrame
    """Contract columns with clean dtypes; values that did not parse are null."""
    columns: Mapping[str, str]
    """Contract field -> the file column it was read from."""
    unparseable: Mapping[str, np.ndarray]
    """Reason kind -> rows whose non-empty value did not parse."""


def _find_bad_rows(parsed: _Parsed, schema: pa.DataFrameSchema) -> dict[str, np.ndarray]:
    n = len(parsed.frame)
    checked = _failures(schema, parsed.frame, n)
    duplicates = {k: checked.pop(k) for k in _DUPLICATE_KINDS & checked.keys()}
    masks = dict(parsed.unparseable)
    for reason, mask in checked.items():
        masks[reason] = mask | masks.get(reason, False)
    if not duplicates:
        return masks
    if schema.name == "events":
        # A later copy of a row has the same checked values, so it fails every check its first
        # copy fails, and the first pass is exact, unless a row is bad only through a parse
        # failure that pandera cannot see (an unparseable amount is NaN, like an empty one).
        checked_bad = np.logical_or.reduce([np.zeros(n, dtype=bool), *checked.values()])
        judge_again = any((mask & ~checked_bad).any() for mask in parsed.unparseable.values())
    else:
        # Customers repeat an id, not a whole row: any bad row may be the first with its id.
        judge_again = any(mask.any() for mask in masks.values())
    if judge_again:
        # Judge duplicates among the good rows only, so a later good copy is kept rather than
        # every copy lost.
        good = ~np.logical_or.reduce([np.zeros(n, dtype=bool), *masks.values()])
        duplicates = _failures(_duplicates_schema(schema), parsed.frame[good], n)
    masks.update(duplicates)
    return masks


def _failures(schema: pa.DataFrameSchema, frame: pd.DataFrame, n: int) -> dict[str, np.ndarray]:
    """Run pandera lazily; map its failure cases to reason kind -> mask over the `n` source rows.

    `frame` may be a subset of the rows: its index labels are source row positions.
    """
    try:
        schema.validate(frame, lazy=True, inplace=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases.reset_index(drop=True)
    else:
        return {}
    check = cases["check"].astype(str)
    column = cases["column"].astype(str)
    kind = check.where(check.isin(_NAMED_CHECKS))
    not_null = check == "not_nullable"
    kind[not_null] = column[not_null].map(_NOT_NULL_KINDS)
    unique = check == "field_uniqueness"
    kind[unique] = column[unique].map(_UNIQUE_KINDS)
    unmapped = kind.isna() | cases["index"].isna()
    if unmapped.any():
        # A dtype or column failure means the parser produced something off-contract: a bug.
        raise RuntimeError(f"{schema.name}: failures that are not row reasons:\n{cases[unmapped].head(20)}")
    codes, kinds = pd.factorize(kind)
    rows = cases["index"].to_numpy(dtype=np.int64)
    masks = {}
    for code, reason in enumerate(kinds):
        mask = np.zeros(n, dtype=bool)
        mask[rows[codes == code]] = True
        masks[str(reason)] = mask
    return masks


# ---------------------------------------------------------------- parsing


def _parse_events(frame: pd.DataFrame, source: EventsSource) -> _Parsed:
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
    return _Parsed(raw=raw, frame=clean, columns=columns, unparseable=unparseable)


def _parse_customers(frame: pd.DataFrame, source: CustomersSource) -> _Parsed:
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
    return _Parsed(raw=raw, frame=clean, columns=columns, unparseable=unparseable)


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


# ---------------------------------------------------------------- reasons


_ISO_DATE = " (expected ISO 8601, e.g. 2025-01-31)"
_KEPT = " (the first good row with this id is kept)"


class _Describer:
    """Builds the reason text of the rows of one kind, vectorised over those rows."""

    def __init__(self, parsed: _Parsed, source: CustomersSource | EventsSource) -> None:
        self.parsed = parsed
        fmt = getattr(source, "timestamp_format", None)
        expected = f" (expected format '{fmt}')" if fmt else " (expected ISO 8601, e.g. 2025-01-31T09:30:00Z)"
        allowed = ", ".join(getattr(source, "event_types", ()))
        # Same text for every row: reason -> (field whose column is named, text).
        self.fixed = {
            MISSING_CUSTOMER_ID: (names.CUSTOMER_ID, "missing customer_id"),
            MISSING_EVENT_TIMESTAMP: (names.EVENT_TIMESTAMP, "missing event_timestamp"),
            MISSING_EVENT_TYPE: (names.EVENT_TYPE, "missing event_type"),
            MISSING_SIGNUP_DATE: (names.SIGNUP_DATE, "missing signup_date"),
            DUPLICATE_ROW: (None, "exact duplicate of an earlier row (the first copy is kept)"),
        }
        # The value as the file has it, so the reason shows what failed: reason -> (field, what, note).
        self.raw_value = {
            UNPARSEABLE_EVENT_TIMESTAMP: (names.EVENT_TIMESTAMP, "unparseable event_timestamp", expected),
            UNPARSEABLE_AMOUNT: (names.AMOUNT, "unparseable amount", " (not a number)"),
            NEGATIVE_AMOUNT: (names.AMOUNT, "negative amount", ""),
            UNPARSEABLE_SIGNUP_DATE: (names.SIGNUP_DATE, "unparseable signup_date", _ISO_DATE),
            UNPARSEABLE_CHURN_DATE: (names.CHURN_DATE, "unparseable churn_date", _ISO_DATE),
        }
        # The cleaned value: reason -> (field, prefix, suffix).
        self.clean_value = {
            UNKNOWN_EVENT_TYPE: (names.EVENT_TYPE, "unknown event_type '", f"' (allowed: {allowed})"),
            UNKNOWN_CUSTOMER: (
                names.CUSTOMER_ID,
                "unknown customer: customer_id '",
                "' is not a valid customer",
            ),
            DUPLICATE_CUSTOMER_ID: (names.CUSTOMER_ID, "duplicate customer_id '", "'" + _KEPT),
        }

    def __call__(self, reason: str, pos: np.ndarray) -> pyarrow.Array:
        if reason in self.fixed:
            name, text = self.fixed[reason]
            column = self.parsed.columns.get(name) if name else None
            where = f" (column '{column}' is empty)" if column else ""
            return _repeat(text + where, len(pos))
        if reason in self.raw_value:
            name, what, note = self.raw_value[reason]
            column = self.parsed.columns[name]
            return _join(f"{what} '", self.parsed.raw[column].iloc[pos], f"' in column '{column}'{note}")
        if reason in self.clean_value:
            name, prefix, suffix = self.clean_value[reason]
            return _join(prefix, self.parsed.frame[name].iloc[pos], suffix)
        if reason == CHURN_BEFORE_SIGNUP:
            rows = self.parsed.frame.iloc[pos]
            churn = rows[names.CHURN_DATE].dt.strftime("%Y-%m-%d")
            signup = rows[names.SIGNUP_DATE].dt.strftime("%Y-%m-%d")
            return _join("churn_date ", churn.astype(STRING) + " is before signup_date " + signup, "")
        raise KeyError(reason)


def _join(prefix: str, values: pd.Series, suffix: str) -> pyarrow.Array:
    text = _arrow_text(values).fill_null("")
    large = pyarrow.large_string()
    return pc.binary_join_element_wise(
        pyarrow.scalar(prefix, large), text, pyarrow.scalar(suffix, large), pyarrow.scalar("", large)
    )


def _repeat(text: str, n: int) -> pyarrow.Array:
    codes = pyarrow.array(np.zeros(n, dtype=np.int32))
    return pyarrow.DictionaryArray.from_arrays(codes, pyarrow.array([text], pyarrow.large_string())).dictionary_decode()


def _quarantine(raw: pd.DataFrame, positions: list[np.ndarray], reasons: list[pyarrow.Array]) -> pd.DataFrame:
    # A re-ingested quarantine file carries an old reason and row number: the new ones replace them.
    raw = raw.drop(columns=[c for c in (SOURCE_ROW, names.QUARANTINE_REASON) if c in raw.columns])
    if positions:
        pos = np.concatenate(positions)
        order = np.argsort(pos, kind="stable")
        pos = pos[order]
        why = pyarrow.concat_arrays([r.cast(pyarrow.large_string()) for r in reasons]).take(order)
    else:
        pos, why = np.zeros(0, dtype=np.int64), pyarrow.array([], pyarrow.large_string())
    bad = raw.iloc[pos]
    # Positional keys: a file may repeat a column name.
    body = pd.DataFrame({i: pd.array(_arrow_text(bad.iloc[:, i]), dtype=STRING) for i in range(bad.shape[1])})
    body.columns = bad.columns
    body.insert(0, names.QUARANTINE_REASON, pd.array(why, dtype=STRING))
    body.insert(0, SOURCE_ROW, pos.astype(np.int64))
    return body
