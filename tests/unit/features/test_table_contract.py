"""The contract of an entity-level table: dirty rows are quarantined with a reason or become counted nulls."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from core import names
from core.config_sections import TableSource
from features.contract.fields import ContractError
from features.contract.table import split_table

SOURCE = TableSource(
    path="raw/table.csv",
    id="customerID",
    label="Churn",
    positive=("Yes",),
    negative=("No",),
    as_of=dt.date(2024, 1, 1),
    numeric=("tenure", "TotalCharges"),
    categorical=("Contract",),
)


def _raw(
    rows: list[tuple[str | None, ...]],
    columns: tuple[str, ...] = ("customerID", "Churn", "tenure", "TotalCharges", "Contract"),
) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns)).astype("string")  # as a CSV is read: every column text


def test_dirty_rows_are_quarantined_with_their_reason_and_bad_numbers_become_counted_nulls() -> None:
    raw = _raw(
        [
            ("7590-VHVEG", "No", "1", "29.85", "Month-to-month"),
            ("3668-QPYBK", "Yes", "0", " ", "Two year"),  # Telco's blank TotalCharges for a new customer
            ("5575-GNVDE", "yes", "34", "1889.5", None),  # label values compare case-insensitively
            (None, "No", "2", "10", "One year"),  # no id
            ("9237-HQITU", "Maybe", "2", "10", "One year"),  # a label value the config does not know
            ("7590-VHVEG", "Yes", "5", "99", "One year"),  # the same id again in the same snapshot
            ("1452-KIOVK", "No", "many", None, "One year"),  # not a number; an empty field (the CSV reader: null)
        ]
    )
    result = split_table(raw, SOURCE)
    assert result.counts == {"missing_customer_id": 1, "unknown_label": 1, "duplicate_customer_id": 1}
    assert result.unparsed == {"tenure": 1, "TotalCharges": 1}  # the empty field is missing, not unparsed
    valid = result.valid.set_index(names.CUSTOMER_ID)
    assert list(valid.index) == ["7590-VHVEG", "3668-QPYBK", "5575-GNVDE", "1452-KIOVK"]
    assert valid[names.LABEL].tolist() == [0, 1, 1, 0]
    assert pd.isna(valid.loc["3668-QPYBK", "profile_TotalCharges"])  # null, never a silent zero
    assert valid.loc["7590-VHVEG", "profile_TotalCharges"] == 29.85  # the first of a repeated id stays
    assert pd.isna(valid.loc["1452-KIOVK", "profile_tenure"])
    assert (valid[names.EVENT_TIMESTAMP] == pd.Timestamp("2024-01-01", tz="UTC")).all()
    assert set(valid.columns) == {
        names.EVENT_TIMESTAMP,
        names.LABEL,
        "profile_tenure",
        "profile_TotalCharges",
        "profile_Contract",
    }
    quarantined = result.quarantined
    assert quarantined["source_row"].tolist() == [3, 4, 5]
    assert quarantined[names.QUARANTINE_REASON].tolist() == [
        "missing_customer_id",
        "unknown_label",
        "duplicate_customer_id",
    ]
    assert quarantined["Churn"].tolist()[1] == "Maybe"  # the row as it was in the file
    assert result.rows_in == len(raw)


def test_a_table_of_monthly_snapshots_keeps_one_row_per_customer_and_month() -> None:
    source = SOURCE.model_copy(update={"snapshot_date": "month", "as_of": None})
    raw = _raw(
        [
            ("a", "No", "1", "10", "x", "2024-01-31"),
            ("a", "No", "2", "20", "x", "2024-02-29"),
            ("a", "Yes", "3", "30", "x", "2024-02-29"),  # twice in February
            ("b", "No", "1", "10", "y", "not a date"),
        ],
        columns=("customerID", "Churn", "tenure", "TotalCharges", "Contract", "month"),
    )
    result = split_table(raw, source)
    assert result.counts == {"unparseable_snapshot_date": 1, "duplicate_customer_id": 1}
    assert result.valid[names.EVENT_TIMESTAMP].dt.strftime("%Y-%m-%d").tolist() == ["2024-01-31", "2024-02-29"]


def test_a_missing_column_names_itself_and_the_config_key() -> None:
    raw = _raw([("a", "No", "1", "10", "x")]).drop(columns=["TotalCharges"])
    with pytest.raises(ContractError, match=r"data.table.numeric/categorical: 'TotalCharges'"):
        split_table(raw, SOURCE)


def test_the_config_refuses_an_inconsistent_table() -> None:
    with pytest.raises(ValueError, match="snapshot_date .* or as_of"):
        TableSource(path="x", id="i", label="l", numeric=("n",))
    with pytest.raises(ValueError, match="share the label values"):
        TableSource(
            path="x", id="i", label="l", as_of=dt.date(2024, 1, 1), positive=("Y",), negative=("y",), numeric=("n",)
        )
