"""Splitting a raw export into valid and quarantined rows: parse, validate, give each bad row one reason."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
from pandera.errors import SchemaErrors

from core import names
from core.config_sections import CustomersSource, EventsSource
from features.contract.fields import (
    CHURN_BEFORE_SIGNUP,
    CUSTOMER_REASONS,
    DUPLICATE_CUSTOMER_ID,
    DUPLICATE_ROW,
    EVENT_REASONS,
    MISSING_CUSTOMER_ID,
    MISSING_EVENT_TIMESTAMP,
    MISSING_EVENT_TYPE,
    MISSING_SIGNUP_DATE,
    NEGATIVE_AMOUNT,
    UNKNOWN_CUSTOMER,
    UNKNOWN_EVENT_TYPE,
    TableKind,
    ValidationResult,
)
from features.contract.parsing import Parsed, parse_customers, parse_events
from features.contract.reasons import Describer, quarantine_frame
from features.contract.schemas import customers_schema, duplicates_schema, events_schema

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
        parsed = parse_events(frame, source)
        schema = events_schema(source.event_types, known_customers)
        order = EVENT_REASONS
    elif kind == "customers":
        if not isinstance(source, CustomersSource):
            raise TypeError("customers need a CustomersSource")
        if known_customers is not None:
            raise TypeError("known_customers applies to events only")
        parsed = parse_customers(frame, source)
        schema = customers_schema(source.attributes)
        order = CUSTOMER_REASONS
    else:
        raise ValueError(f"kind must be 'customers' or 'events', not {kind!r}")

    masks = _find_bad_rows(parsed, schema)
    assigned = np.zeros(len(parsed.frame), dtype=bool)
    positions: list[np.ndarray] = []
    reasons: list[pyarrow.Array] = []
    counts: dict[str, int] = {}
    describe = Describer(parsed, source)
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
    return ValidationResult(valid=valid, quarantined=quarantine_frame(parsed.raw, positions, reasons), counts=counts)


def _find_bad_rows(parsed: Parsed, schema: pa.DataFrameSchema) -> dict[str, np.ndarray]:
    n = len(parsed.frame)
    checked = failure_masks(schema, parsed.frame, n)
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
        duplicates = failure_masks(duplicates_schema(schema), parsed.frame[good], n)
    masks.update(duplicates)
    return masks


def failure_masks(
    schema: pa.DataFrameSchema,
    frame: pd.DataFrame,
    n: int,
    *,
    named: Collection[str] = _NAMED_CHECKS,
    not_null: Mapping[str, str] = _NOT_NULL_KINDS,
    unique: Mapping[str, str] = _UNIQUE_KINDS,
) -> dict[str, np.ndarray]:
    """Run pandera lazily; map its failure cases to reason kind -> mask over the `n` source rows.

    `frame` may be a subset of the rows: its index labels are source row positions. A failed check
    whose error is in `named` is its own reason; a null or a repeat in a column is the reason
    `not_null` or `unique` gives that column. Any other failure is a bug of the parser (RuntimeError).
    """
    try:
        schema.validate(frame, lazy=True, inplace=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases.reset_index(drop=True)
    else:
        return {}
    check = cases["check"].astype(str)
    column = cases["column"].astype(str)
    kind = check.where(check.isin(list(named)))
    nulls = check == "not_nullable"
    kind[nulls] = column[nulls].map(not_null)
    repeats = check == "field_uniqueness"
    kind[repeats] = column[repeats].map(unique)
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
