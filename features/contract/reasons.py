"""Why each quarantined row was set aside, as text, and the quarantine table itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.compute as pc

from core import names
from core.config_sections import CustomersSource, EventsSource
from features.contract.arrow import arrow_text
from features.contract.fields import (
    CHURN_BEFORE_SIGNUP,
    DUPLICATE_CUSTOMER_ID,
    DUPLICATE_ROW,
    MISSING_CUSTOMER_ID,
    MISSING_EVENT_TIMESTAMP,
    MISSING_EVENT_TYPE,
    MISSING_SIGNUP_DATE,
    NEGATIVE_AMOUNT,
    SOURCE_ROW,
    STRING,
    UNKNOWN_CUSTOMER,
    UNKNOWN_EVENT_TYPE,
    UNPARSEABLE_AMOUNT,
    UNPARSEABLE_CHURN_DATE,
    UNPARSEABLE_EVENT_TIMESTAMP,
    UNPARSEABLE_SIGNUP_DATE,
)
from features.contract.parsing import Parsed

_ISO_DATE = " (expected ISO 8601, e.g. 2025-01-31)"
_KEPT = " (the first good row with this id is kept)"


class Describer:
    """Builds the reason text of the rows of one kind, vectorised over those rows."""

    def __init__(self, parsed: Parsed, source: CustomersSource | EventsSource) -> None:
        """Prepare the texts of every reason kind.

        Args:
            parsed: The parsed table whose rows are described.
            source: Its config (the timestamp format and accepted event types appear in reasons).
        """
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
        """The reason text of the rows at positions `pos`, all of kind `reason`.

        Raises:
            KeyError: `reason` is not a reason kind.
        """
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
    text = arrow_text(values).fill_null("")
    large = pyarrow.large_string()
    return pc.binary_join_element_wise(
        pyarrow.scalar(prefix, large), text, pyarrow.scalar(suffix, large), pyarrow.scalar("", large)
    )


def _repeat(text: str, n: int) -> pyarrow.Array:
    codes = pyarrow.array(np.zeros(n, dtype=np.int32))
    return pyarrow.DictionaryArray.from_arrays(codes, pyarrow.array([text], pyarrow.large_string())).dictionary_decode()


def quarantine_frame(raw: pd.DataFrame, positions: list[np.ndarray], reasons: list[pyarrow.Array]) -> pd.DataFrame:
    """The quarantine table: the bad rows of `raw` as text, each with its row number and reason.

    Args:
        raw: The table as read, with a RangeIndex.
        positions: Row positions, one array per reason kind.
        reasons: The reason texts, one array per entry of `positions`, row for row.

    Returns:
        Columns `source_row`, `quarantine_reason`, then every column of `raw` as strings;
        sorted by `source_row`.
    """
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
    body = pd.DataFrame({i: pd.array(arrow_text(bad.iloc[:, i]), dtype=STRING) for i in range(bad.shape[1])})
    body.columns = bad.columns
    body.insert(0, names.QUARANTINE_REASON, pd.array(why, dtype=STRING))
    body.insert(0, SOURCE_ROW, pos.astype(np.int64))
    return body
