"""The actions contract: a CRM's log of what it did, mapped by config, every bad row quarantined
with one reason that names the field."""

from __future__ import annotations

import pandas as pd
import pytest

from core import names
from core.config_sections import ActionsSource
from features.contract.actions import split_actions
from features.contract.fields import ContractError

START = pd.Timestamp("2025-06-30", tz="UTC")
END = pd.Timestamp("2025-07-14", tz="UTC")
CUSTOMERS = ["C1", "C2", "C3"]
ACTIONS = ["time_limited_coupon", "account_care_call", "monitor"]
SOURCE = ActionsSource(columns={"customer_id": "cust", "action": "what", "action_timestamp": "when", "cost": "eur"})


def split(rows: list[dict[str, str | None]], source: ActionsSource = SOURCE) -> tuple[pd.DataFrame, pd.DataFrame]:
    result = split_actions(
        pd.DataFrame(rows, dtype="string[pyarrow]"),
        source,
        campaign_id="2025-06-30-v3",
        customers=CUSTOMERS,
        actions=ACTIONS,
        start=START,
        end=END,
    )
    assert result.rows_in == len(rows)
    return result.valid, result.quarantined


def row(
    cust: str | None = "C1",
    what: str | None = "time_limited_coupon",
    when: str | None = "2025-07-01T10:00:00Z",
    eur: str | None = "4.5",
) -> dict[str, str | None]:
    return {"cust": cust, "what": what, "when": when, "eur": eur}


def test_good_rows_are_parsed_to_the_contract() -> None:
    valid, quarantined = split([row(), row("C2", "account_care_call", "2025-07-13 23:59", None)])
    assert quarantined.empty
    assert list(valid.columns) == [names.CUSTOMER_ID, names.ACTION, names.ACTION_TIMESTAMP, names.ACTION_COST]
    assert valid[names.ACTION_TIMESTAMP].dt.tz is not None
    assert valid[names.ACTION_COST].iloc[0] == 4.5 and pd.isna(valid[names.ACTION_COST].iloc[1])


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (row(cust=None), "missing customer_id (column 'cust' is empty)"),
        (row(what=None), "missing action (column 'what' is empty)"),
        (row(when="yesterday"), "unparseable action_timestamp 'yesterday' in column 'when'"),
        (row(eur="free"), "unparseable cost 'free' in column 'eur'"),
        (row(eur="-2"), "negative cost '-2' in column 'eur'"),
        (row(cust="C9"), "unknown customer: customer_id 'C9' is not in campaign 2025-06-30-v3"),
        (
            row(what="fax"),
            "unknown action 'fax' (the playbook's actions: account_care_call, monitor, time_limited_coupon)",
        ),
        (
            row(when="2025-06-29T23:00:00Z"),
            "action_timestamp 2025-06-29T23:00:00Z is outside the campaign window 2025-06-30..2025-07-13",
        ),
        (row(when="2025-07-14T00:00:00Z"), "is outside the campaign window"),
    ],
)
def test_each_bad_row_is_quarantined_with_a_reason_naming_the_field(bad: dict[str, str | None], reason: str) -> None:
    valid, quarantined = split([row("C3"), bad])
    assert list(valid[names.CUSTOMER_ID]) == ["C3"]
    assert len(quarantined) == 1 and quarantined["source_row"].iloc[0] == 1
    assert reason in quarantined[names.QUARANTINE_REASON].iloc[0]
    assert quarantined["cust"].iloc[0] == bad["cust"] or bad["cust"] is None  # the row as in the file


def test_a_row_failing_several_checks_gets_the_first_reason_and_duplicates_keep_the_first_good_copy() -> None:
    valid, quarantined = split([row(cust=None, what="fax"), row(), row(), row(what="fax", when="2025-01-01")])
    assert len(valid) == 1
    reasons = quarantined.set_index("source_row")[names.QUARANTINE_REASON]
    assert reasons[0].startswith("missing customer_id")
    assert reasons[2].startswith("exact duplicate")
    assert reasons[3].startswith("unknown action")


def test_a_missing_mapped_column_names_the_field_and_the_config_key() -> None:
    with pytest.raises(ContractError, match=r"data\.actions\.columns\.action_timestamp"):
        split([{"cust": "C1", "what": "monitor", "time": "2025-07-01"}])
    # Cost is optional: a file without it is fine.
    source = ActionsSource(columns={"customer_id": "cust", "action": "what", "action_timestamp": "when"})
    valid, _ = split([{"cust": "C1", "what": "monitor", "when": "2025-07-01"}], source)
    assert len(valid) == 1 and pd.isna(valid[names.ACTION_COST].iloc[0])
