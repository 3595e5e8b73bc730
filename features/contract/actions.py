"""The contract of what the CRM did in a campaign: one row per action taken.

Fields (mapped by `data.actions.columns`, as the other inputs): customer_id, action,
action_timestamp (UTC; naive values read as UTC) and an optional cost. Parsed like the event log,
then held to a pandera schema whose checks are the quarantine reasons; a row failing several gets
the first in `ACTION_REASONS` order:

* a missing customer id, action or timestamp; a timestamp or cost that does not parse; a negative cost;
* an unknown customer: not one of the campaign's alerted customers;
* an unknown action: not one the playbook can recommend;
* outside the campaign window: before the campaign's as-of date or on or after its window end;
* an exact duplicate of an earlier good row (the first copy is kept).

Pure: frames in, frames out; reading and writing is the caller's (`churn campaigns import-actions`).
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow

from core import names
from core.config_sections import ActionsSource
from features.contract.fields import STRING, UTC_NS, ContractError, ValidationResult
from features.contract.parsing import _instants, _numbers, _resolve_columns, _text, _with_range_index
from features.contract.reasons import quarantine_frame
from features.contract.schemas import later_duplicates
from features.contract.split import failure_masks

MISSING_CUSTOMER_ID = "missing_customer_id"
MISSING_ACTION = "missing_action"
UNPARSEABLE_ACTION_TIMESTAMP = "unparseable_action_timestamp"
MISSING_ACTION_TIMESTAMP = "missing_action_timestamp"
UNPARSEABLE_COST = "unparseable_cost"
NEGATIVE_COST = "negative_cost"
UNKNOWN_CUSTOMER = "unknown_customer"
UNKNOWN_ACTION = "unknown_action"
OUTSIDE_WINDOW = "outside_campaign_window"
DUPLICATE_ROW = "duplicate_row"

ACTION_REASONS: tuple[str, ...] = (
    MISSING_CUSTOMER_ID,
    MISSING_ACTION,
    UNPARSEABLE_ACTION_TIMESTAMP,
    MISSING_ACTION_TIMESTAMP,
    UNPARSEABLE_COST,
    NEGATIVE_COST,
    UNKNOWN_CUSTOMER,
    UNKNOWN_ACTION,
    OUTSIDE_WINDOW,
    DUPLICATE_ROW,
)
"""Reason kinds of an actions file, in priority order."""

_NOT_NULL = {
    names.CUSTOMER_ID: MISSING_CUSTOMER_ID,
    names.ACTION: MISSING_ACTION,
    names.ACTION_TIMESTAMP: MISSING_ACTION_TIMESTAMP,
}
_NAMED = {UNKNOWN_CUSTOMER, UNKNOWN_ACTION, OUTSIDE_WINDOW, NEGATIVE_COST}


def actions_schema(
    customers: Collection[str], actions: Collection[str], start: pd.Timestamp, end: pd.Timestamp
) -> pa.DataFrameSchema:
    """Schema of a campaign's clean actions.

    Args:
        customers: The campaign's customers.
        actions: The actions the playbook can recommend.
        start: The campaign window's first instant (its as-of date, UTC midnight).
        end: The first instant after the window.
    """
    known = pd.Index(list(customers), dtype=STRING)
    return pa.DataFrameSchema(
        {
            names.CUSTOMER_ID: pa.Column(
                STRING, pa.Check(lambda ids: ids.isin(known), error=UNKNOWN_CUSTOMER), nullable=False
            ),
            names.ACTION: pa.Column(STRING, pa.Check.isin(sorted(actions), error=UNKNOWN_ACTION), nullable=False),
            names.ACTION_TIMESTAMP: pa.Column(
                UTC_NS, pa.Check(lambda t: (t >= start) & (t < end), error=OUTSIDE_WINDOW), nullable=False
            ),
            names.ACTION_COST: pa.Column("float64", pa.Check.ge(0, error=NEGATIVE_COST), nullable=True),
        },
        strict=True,
        ordered=True,
        name="actions",
    )


def split_actions(
    frame: pd.DataFrame,
    source: ActionsSource,
    *,
    campaign_id: str,
    customers: Collection[str],
    actions: Collection[str],
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> ValidationResult:
    """Map a CRM's actions export onto the contract and split it into valid and quarantined rows.

    Args:
        frame: The file as read (CSV columns as strings).
        source: `data.actions`: the column mapping and timestamp format.
        campaign_id: The campaign the actions belong to (named in reasons).
        customers: The campaign's customers.
        actions: The actions the playbook can recommend.
        start: The campaign window's first instant (UTC).
        end: The first instant after it.

    Returns:
        Valid rows (customer_id, action, action_timestamp, cost: NaN when not given), quarantined
        rows with their reason, and the count per reason.

    Raises:
        ContractError: A required field is unmapped or its column is missing; the message names
            the field and the config key.
    """
    raw = _with_range_index(frame)
    columns = _resolve_columns(raw, "actions", source.columns, (), optional=())
    stamps, stamp_present = _instants(raw[columns[names.ACTION_TIMESTAMP]], source.timestamp_format, "actions")
    unparseable = {UNPARSEABLE_ACTION_TIMESTAMP: (stamp_present & stamps.isna()).to_numpy()}
    if names.ACTION_COST in columns:
        cost, cost_present = _numbers(raw[columns[names.ACTION_COST]])
        unparseable[UNPARSEABLE_COST] = (cost_present & cost.isna()).to_numpy()
    else:
        cost = pd.Series(np.full(len(raw), np.nan), index=raw.index)
    clean = pd.DataFrame(
        {
            names.CUSTOMER_ID: _text(raw[columns[names.CUSTOMER_ID]]),
            names.ACTION: _text(raw[columns[names.ACTION]]),
            names.ACTION_TIMESTAMP: stamps,
            names.ACTION_COST: cost,
        },
        index=raw.index,
    )
    masks = dict(unparseable)
    schema = actions_schema(customers, actions, start, end)
    for reason, mask in failure_masks(schema, clean, len(clean), named=_NAMED, not_null=_NOT_NULL, unique={}).items():
        masks[reason] = mask | masks.get(reason, False)
    bad = np.logical_or.reduce([np.zeros(len(raw), dtype=bool), *masks.values()])
    duplicate = np.zeros(len(raw), dtype=bool)
    duplicate[np.flatnonzero(~bad)] = later_duplicates(clean[~bad])
    masks[DUPLICATE_ROW] = duplicate

    assigned = np.zeros(len(raw), dtype=bool)
    positions: list[np.ndarray] = []
    reasons: list[pyarrow.Array] = []
    counts: dict[str, int] = {}
    window = f"{start:%Y-%m-%d}..{(end - pd.Timedelta(days=1)):%Y-%m-%d}"
    known_actions = ", ".join(sorted(actions))
    for reason in ACTION_REASONS:
        take = masks.get(reason, np.zeros(len(raw), dtype=bool)) & ~assigned
        if not take.any():
            continue
        assigned |= take
        pos = np.flatnonzero(take)
        positions.append(pos)
        texts = _describe(reason, raw, clean, columns, pos, campaign_id, window, known_actions)
        reasons.append(pyarrow.array(texts, pyarrow.large_string()))
        counts[reason] = len(pos)
    valid = clean[~assigned].reset_index(drop=True)
    return ValidationResult(valid=valid, quarantined=quarantine_frame(raw, positions, reasons), counts=counts)


def _describe(
    reason: str,
    raw: pd.DataFrame,
    clean: pd.DataFrame,
    columns: dict[str, str],
    pos: np.ndarray,
    campaign_id: str,
    window: str,
    known_actions: str,
) -> list[str]:
    """The reason text of the rows at `pos`, all of kind `reason`, naming the field and its column."""

    def raw_values(field: str) -> list[str]:
        return [str(v) for v in raw[columns[field]].iloc[pos]]

    def clean_values(field: str) -> list[str]:
        return [str(v) for v in clean[field].iloc[pos]]

    if reason in (MISSING_CUSTOMER_ID, MISSING_ACTION, MISSING_ACTION_TIMESTAMP):
        field = {MISSING_CUSTOMER_ID: names.CUSTOMER_ID, MISSING_ACTION: names.ACTION}.get(
            reason, names.ACTION_TIMESTAMP
        )
        return [f"missing {field} (column '{columns[field]}' is empty)"] * len(pos)
    if reason == UNPARSEABLE_ACTION_TIMESTAMP:
        column = columns[names.ACTION_TIMESTAMP]
        return [
            f"unparseable action_timestamp '{v}' in column '{column}' (expected ISO 8601, e.g. 2025-07-01T09:30:00Z)"
            for v in raw_values(names.ACTION_TIMESTAMP)
        ]
    if reason in (UNPARSEABLE_COST, NEGATIVE_COST):
        what = "unparseable" if reason == UNPARSEABLE_COST else "negative"
        column = columns[names.ACTION_COST]
        return [f"{what} cost '{v}' in column '{column}'" for v in raw_values(names.ACTION_COST)]
    if reason == UNKNOWN_CUSTOMER:
        return [
            f"unknown customer: customer_id '{v}' is not in campaign {campaign_id}"
            for v in clean_values(names.CUSTOMER_ID)
        ]
    if reason == UNKNOWN_ACTION:
        return [f"unknown action '{v}' (the playbook's actions: {known_actions})" for v in clean_values(names.ACTION)]
    if reason == OUTSIDE_WINDOW:
        stamps = clean[names.ACTION_TIMESTAMP].iloc[pos]
        return [
            f"action_timestamp {t:%Y-%m-%dT%H:%M:%SZ} is outside the campaign window {window} of {campaign_id}"
            for t in stamps
        ]
    if reason == DUPLICATE_ROW:
        return ["exact duplicate of an earlier row (the first copy is kept)"] * len(pos)
    raise KeyError(reason)


__all__ = ["ACTION_REASONS", "ContractError", "actions_schema", "split_actions"]
