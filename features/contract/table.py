"""The contract of an entity-level table: one row per customer (per snapshot) with a given churn label.

Each row is parsed into contract columns (customer_id, event_timestamp = the snapshot date at UTC
midnight, churned 0/1) and attributes (`profile_<column>`: numbers as floats, categories as
strings), then held to a pandera schema. A row without an id, with a label value the config does
not know, with a snapshot date that does not parse, or repeating an id within its snapshot is
quarantined with its reason; the first row of an id and snapshot stays. A number that does not
parse (Telco's blank `TotalCharges` of brand-new customers) becomes null and is counted per column:
the row stays, and nothing becomes a silent zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from core import names
from core.config_sections import TableSource
from features.contract.fields import DUPLICATE_CUSTOMER_ID, MISSING_CUSTOMER_ID, SOURCE_ROW, STRING, ContractError

UNKNOWN_LABEL = "unknown_label"
UNPARSEABLE_SNAPSHOT_DATE = "unparseable_snapshot_date"
TABLE_REASONS = (MISSING_CUSTOMER_ID, UNKNOWN_LABEL, UNPARSEABLE_SNAPSHOT_DATE, DUPLICATE_CUSTOMER_ID)
"""Reason kinds of a table's rows, in priority order: a row failing several checks gets the first."""

PREFIX = names.VIEW_PROFILE + "_"
"""A table's attributes are profile features: `profile_<column>`."""


@dataclass(frozen=True)
class TableValidation:
    """A raw table split into contract rows and quarantined rows.

    Attributes:
        valid: customer_id, event_timestamp, churned and one `profile_<column>` per attribute.
        quarantined: `source_row`, `quarantine_reason`, then every column of the file as strings.
        counts: Reason kind -> quarantined rows.
        unparsed: Numeric column -> values that did not parse and became null (kept rows only).
    """

    valid: pd.DataFrame
    quarantined: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    unparsed: dict[str, int] = field(default_factory=dict)

    @property
    def rows_in(self) -> int:
        """Rows in the raw table."""
        return len(self.valid) + len(self.quarantined)


def feature_name(column: str) -> str:
    """The feature a table column becomes."""
    return PREFIX + column


_NOT_NULL_KINDS = {
    names.CUSTOMER_ID: MISSING_CUSTOMER_ID,
    names.LABEL: UNKNOWN_LABEL,
    names.EVENT_TIMESTAMP: UNPARSEABLE_SNAPSHOT_DATE,
}
"""A parsed contract column that is null means: no id, a label value the config does not know, a date
that did not parse."""


def _schema() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            names.CUSTOMER_ID: pa.Column(STRING, nullable=False),
            names.LABEL: pa.Column(float, nullable=False, checks=pa.Check.isin([0.0, 1.0])),
            names.EVENT_TIMESTAMP: pa.Column(pd.DatetimeTZDtype("ns", "UTC"), nullable=False),
        },
        checks=pa.Check(
            lambda f: (
                ~f.duplicated([names.CUSTOMER_ID, names.EVENT_TIMESTAMP], keep="first") | f[names.CUSTOMER_ID].isna()
            ),
            error=DUPLICATE_CUSTOMER_ID,
        ),
        strict=False,
    )


def _reasons(contract: pd.DataFrame) -> pd.Series:
    """Each row's quarantine reason (None for a good row), from the schema's failure cases."""
    reasons = pd.Series(None, index=contract.index, dtype="object")
    try:
        _schema().validate(contract, lazy=True)
    except SchemaErrors as errors:
        failed = errors.failure_cases.dropna(subset=["index"])
        kinds = np.where(
            failed["check"].astype(str) == "not_nullable",
            failed["column"].map(_NOT_NULL_KINDS).astype(object),
            failed["check"].astype(str),
        )
        for kind in reversed(TABLE_REASONS):  # the first kind in priority order wins
            reasons[failed["index"][kinds == kind].astype(int).to_numpy()] = kind
    return reasons


def _text(values: pd.Series) -> pd.Series:
    """Trimmed strings, blanks as missing."""
    text = values.astype("object").where(values.notna(), None)
    stripped = pd.Series([v.strip() if isinstance(v, str) else v for v in text], index=values.index, dtype="object")
    return stripped.where(stripped.map(lambda v: v is not None and v != ""), None).astype(STRING)


def split_table(raw: pd.DataFrame, source: TableSource) -> TableValidation:
    """Map a raw entity-level table onto the contract and split it into valid and quarantined rows.

    Args:
        raw: The table as read from the file (CSV columns as strings).
        source: Its config: id, label and its values, snapshot date, attribute columns.

    Raises:
        ContractError: A configured column is not in the file; the message names it and the key.
    """
    wanted = {"id": source.id, "label": source.label, "snapshot_date": source.snapshot_date}
    missing = [f"data.table.{key}: '{column}'" for key, column in wanted.items() if column and column not in raw]
    missing += [
        f"data.table.numeric/categorical: '{c}'" for c in (*source.numeric, *source.categorical) if c not in raw
    ]
    if missing:
        raise ContractError(
            f"the table lacks {', '.join(missing)}; its columns are {', '.join(map(str, raw.columns[:30]))}"
        )
    frame = raw.reset_index(drop=True)
    labels = _text(frame[source.label]).str.lower()
    positive = {v.strip().lower() for v in source.positive}
    negative = {v.strip().lower() for v in source.negative}
    churned = pd.Series(np.nan, index=frame.index)
    churned[labels.isin(positive).fillna(False).to_numpy()] = 1.0
    churned[labels.isin(negative).fillna(False).to_numpy()] = 0.0
    if source.snapshot_date is None:
        stamps = pd.Series(pd.Timestamp(source.as_of, tz="UTC"), index=frame.index)
    else:
        parsed = pd.to_datetime(frame[source.snapshot_date], format=source.date_format or "ISO8601", errors="coerce")
        stamps = (parsed.dt.tz_convert("UTC") if parsed.dt.tz is not None else parsed.dt.tz_localize("UTC")).dt.floor(
            "D"
        )
    contract = pd.DataFrame(
        {
            names.CUSTOMER_ID: _text(frame[source.id]),
            names.EVENT_TIMESTAMP: stamps.astype(pd.DatetimeTZDtype("ns", "UTC")),
            names.LABEL: churned,
        }
    )
    reasons = _reasons(contract)
    bad = reasons.notna().to_numpy()
    unparsed: dict[str, int] = {}
    attributes: dict[str, pd.Series] = {}
    for column in source.numeric:
        text = _text(frame[column])
        numbers = pd.to_numeric(text, errors="coerce").astype("float64")
        # A value in the file that is no number: Telco's " " for brand-new customers counts, an empty field does not.
        unparsed[column] = int((frame[column].notna() & numbers.isna())[~bad].sum())
        attributes[feature_name(column)] = numbers
    for column in source.categorical:
        attributes[feature_name(column)] = _text(frame[column])
    valid = pd.concat([contract, pd.DataFrame(attributes, index=frame.index)], axis=1)[~bad]
    valid[names.LABEL] = valid[names.LABEL].astype("int64")
    quarantined = frame[bad].astype("string").assign(**{SOURCE_ROW: np.flatnonzero(bad)})
    quarantined.insert(0, names.QUARANTINE_REASON, reasons[bad].to_numpy())
    quarantined = quarantined[[SOURCE_ROW, names.QUARANTINE_REASON, *frame.columns]]
    counts = {k: int((reasons == k).sum()) for k in TABLE_REASONS if (reasons == k).any()}
    return TableValidation(
        valid.reset_index(drop=True),
        quarantined.reset_index(drop=True),
        counts,
        {c: n for c, n in unparsed.items() if n},
    )
