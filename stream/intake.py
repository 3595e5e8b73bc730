"""Events pushed by a CRM, held to the same contract as ingestion.

A batch is accepted whole or refused whole: one bad event refuses the batch, with every bad
event's position, id and reason, so a CRM never has to find out which half went in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from core import names
from core.config_sections import EventsSource
from features.contract.fields import ContractError
from features.contract.split import split_valid

FIELDS = (names.EVENT_ID, names.CUSTOMER_ID, names.EVENT_TIMESTAMP, names.EVENT_TYPE, names.AMOUNT, names.CATEGORY)
"""What a pushed event may hold; the first four are required."""
REQUIRED = FIELDS[:4]
MAX_TEXT = 128
"""Longest event id, customer id, event type or category accepted."""


class EventsRefused(ValueError):
    """A batch of events refused whole; `reasons` names each bad event and field."""

    def __init__(self, reasons: list[str]) -> None:
        """Keep the reasons; the message joins them."""
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def pushed_source(source: EventsSource) -> EventsSource:
    """The events config for pushed events: contract names as they are, the configured event types."""
    return source.model_copy(update={"columns": {f: f for f in FIELDS[1:]}, "default_event_type": None})


def _shape_errors(records: Sequence[Any]) -> list[str]:
    """What is wrong with the records' shape: not objects, unknown or missing fields, ids too long."""
    errors: list[str] = []
    seen: dict[str, int] = {}
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            errors.append(f"events[{i}]: not a JSON object")
            continue
        unknown = sorted(set(record) - set(FIELDS))
        if unknown:
            errors.append(f"events[{i}]: unknown field {', '.join(unknown)} (fields: {', '.join(FIELDS)})")
        for field in REQUIRED:
            value = record.get(field)
            if value is None or (isinstance(value, str) and not value.strip()):
                errors.append(f"events[{i}].{field}: missing")
        for field in (names.EVENT_ID, names.CUSTOMER_ID, names.EVENT_TYPE, names.CATEGORY):
            value = record.get(field)
            if value is not None and not isinstance(value, str):
                errors.append(f"events[{i}].{field}: must be a string, got {type(value).__name__}")
            elif isinstance(value, str) and len(value) > MAX_TEXT:
                errors.append(f"events[{i}].{field}: longer than {MAX_TEXT} characters")
        amount = record.get(names.AMOUNT)
        if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int | float | str)):
            errors.append(f"events[{i}].amount: must be a number")
        event_id = record.get(names.EVENT_ID)
        if isinstance(event_id, str) and event_id:
            if event_id in seen:
                errors.append(f"events[{i}].event_id: '{event_id}' repeats events[{seen[event_id]}] in this batch")
            seen.setdefault(event_id, i)
    return errors


def contract_events(
    records: Sequence[Any], source: EventsSource, known_customers: pd.Index | pd.Series | None
) -> pd.DataFrame:
    """Pushed events as contract rows, or a refusal naming every bad event.

    Args:
        records: The events as JSON objects: event_id, customer_id, event_timestamp (ISO 8601;
            naive means UTC), event_type, optional amount and category.
        source: The events config (accepted event types).
        known_customers: The valid customer ids; an event of another customer is refused.

    Returns:
        Columns event_id, customer_id, event_timestamp (UTC), event_type, amount, category, in
        the order sent.

    Raises:
        EventsRefused: An event is malformed or breaks the contract (unknown type, bad
            timestamp, negative amount, unknown customer); nothing of the batch is kept.
    """
    if not records:
        raise EventsRefused(["events: empty, send at least one event"])
    errors = _shape_errors(records)
    if errors:
        raise EventsRefused(errors)
    raw = pd.DataFrame(
        {f: [None if r.get(f) is None else str(r.get(f)) for r in records] for f in FIELDS}, dtype="string"
    )
    try:
        result = split_valid(raw, "events", pushed_source(source), known_customers=known_customers)
    except ContractError as exc:
        raise EventsRefused([f"events: {exc}"]) from None
    if len(result.quarantined):
        bad = result.quarantined
        raise EventsRefused(
            [
                f"events[{int(row.source_row)}] (event_id '{raw[names.EVENT_ID].iloc[int(row.source_row)]}'): "
                f"{row.quarantine_reason}"
                for row in bad.itertuples()
            ]
        )
    valid = result.valid.copy()
    valid.insert(0, names.EVENT_ID, raw[names.EVENT_ID].astype(str).to_numpy())
    return valid
