"""The contract's fields and dtypes, the reason kinds of quarantined rows, and the result of a split."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from core import names

STRING = pd.StringDtype("pyarrow")
"""Dtype of the clean string columns."""
UTC_NS = pd.DatetimeTZDtype("ns", "UTC")
"""Dtype of the clean event timestamps."""
DATE_NS = np.dtype("datetime64[ns]")
"""Dtype of the clean customer dates (naive midnight of the UTC day)."""

SOURCE_ROW = "source_row"
"""Quarantine column: the row's position in the source file, 0 for the first data row (CSV line
`source_row + 2`, counting the header)."""

TableKind = Literal["customers", "events", "actions"]

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
    "actions": (names.CUSTOMER_ID, names.ACTION, names.ACTION_TIMESTAMP, names.ACTION_COST),
}
REQUIRED_FIELDS: dict[TableKind, tuple[str, ...]] = {
    "customers": (names.CUSTOMER_ID, names.SIGNUP_DATE),
    "events": (names.CUSTOMER_ID, names.EVENT_TIMESTAMP, names.EVENT_TYPE),
    "actions": (names.CUSTOMER_ID, names.ACTION, names.ACTION_TIMESTAMP),
}


class ContractError(ValueError):
    """An export that cannot be mapped onto the contract (missing column, bad mapping)."""


@dataclass(frozen=True)
class ValidationResult:
    """A raw table split into contract rows and quarantined rows.

    Attributes:
        valid: Good rows, contract column names and clean dtypes (see `features.contract`),
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
