"""Tests of the CRM data contract and ingestion: bad rows to quarantine with one reason, good rows on."""

from __future__ import annotations

import gzip
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from core import io as atomic_io
from core import names
from core.config_sections import CustomersSource, EventsSource
from core.io import write_atomic_csv, write_atomic_parquet
from core.settings import Settings, parse_settings
from features.contract.fields import DATE_NS, SOURCE_ROW, STRING, UTC_NS, ContractError
from features.contract.schemas import customers_schema, events_schema, later_duplicates
from features.contract.split import split_valid
from features.ingest import IngestReport, ingest, read_table

CUSTOMERS = pd.DataFrame(
    {
        "customer_id": ["c1", "c2", "c3", "c4"],
        "signup_date": ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"],
        "churn_date": ["", "2025-03-01", "", ""],
        "plan": ["basic", "premium", "basic", "standard"],
        "crm_note": ["a", "b", "c", "d"],
    }
)

# One row per kind of bad event, between good rows; `expected` says what each row must become.
EVENT_ROWS: list[tuple[str, str, str, str, str, str]] = [
    # customer_id, event_timestamp, event_type, amount, category, expected reason kind ("" = valid)
    ("c1", "2025-02-01T10:00:00Z", "purchase", "19.90", "books", ""),
    ("", "2025-02-01T11:00:00Z", "visit", "", "", "missing_customer_id"),
    ("   ", "2025-02-01T11:30:00Z", "visit", "", "", "missing_customer_id"),
    ("c2", "not-a-date", "visit", "", "", "unparseable_event_timestamp"),
    ("c2", "", "click", "", "", "missing_event_timestamp"),
    ("c3", "2025-02-02T09:00:00Z", "purchase", "-5.00", "toys", "negative_amount"),
    ("c3", "2025-02-02T09:30:00Z", "teleport", "", "", "unknown_event_type"),
    ("c1", "2025-02-01T10:00:00Z", "purchase", "19.90", "books", "duplicate_row"),
    ("c9", "2025-02-03T12:00:00Z", "visit", "", "", "unknown_customer"),
    ("c3", "2025-02-04T08:00:00Z", "purchase", "abc", "", "unparseable_amount"),
    ("c4", "2025-02-05T08:00:00Z", "complaint", "", "", ""),
]
EVENT_COLUMNS = ["customer_id", "event_timestamp", "event_type", "amount", "category"]


def _events_frame(rows: Sequence[tuple[str, ...]] = EVENT_ROWS) -> pd.DataFrame:
    return pd.DataFrame([r[:5] for r in rows], columns=EVENT_COLUMNS)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    """Write a frame of strings as CSV or Parquet (by suffix); empty strings stay empty in CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        # Empty strings become nulls, as a database export would have them.
        pq.write_table(pa.Table.from_pandas(frame.replace("", None), preserve_index=False), path)
    else:
        frame.to_csv(path, index=False)
    return path


def _settings(tmp_path: Path, data: dict[str, Any] | None = None) -> Settings:
    return parse_settings({"workspace": str(tmp_path), "data": data or {}}, source="test")


def _ingest_files(
    tmp_path: Path,
    suffix: str = ".csv",
    events: pd.DataFrame | None = None,
    data: dict[str, Any] | None = None,
) -> IngestReport:
    """Write CUSTOMERS and the events (default: EVENT_ROWS) under tmp_path/raw and ingest them."""
    customers_path = _write(CUSTOMERS, tmp_path / "raw" / f"customers{suffix}")
    events_path = _write(_events_frame() if events is None else events, tmp_path / "raw" / f"events{suffix}")
    return ingest(_settings(tmp_path, data), customers_path=customers_path, events_path=events_path)


def _render(report: IngestReport) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=200, color_system=None).print(report.summary_table())
    return buffer.getvalue()


def _table_rows(text: str) -> list[list[str]]:
    """Cells of the body rows of a rendered rich table that start a table row (first cell filled)."""
    lines = [line.split("│") for line in text.splitlines() if line.startswith("│")]
    return [cells for cells in lines if cells[1].strip()]


# ---------------------------------------------------------------- bad rows


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_each_bad_event_goes_to_quarantine_with_its_reason_and_good_rows_go_on(tmp_path: Path, suffix: str) -> None:
    report = _ingest_files(tmp_path, suffix)

    quarantine = pd.read_csv(report.events.quarantine_path, dtype=str, keep_default_na=False)
    expected_bad = {i: kind for i, (*_, kind) in enumerate(EVENT_ROWS) if kind}
    assert quarantine[SOURCE_ROW].astype(int).tolist() == sorted(expected_bad)
    reasons = dict(zip(quarantine[SOURCE_ROW].astype(int), quarantine[names.QUARANTINE_REASON], strict=True))
    # The reason text says what is wrong and shows the offending value.
    assert reasons[1].startswith("missing customer_id")
    assert reasons[3] == (
        "unparseable event_timestamp 'not-a-date' in column 'event_timestamp' "
        "(expected ISO 8601, e.g. 2025-01-31T09:30:00Z)"
    )
    assert reasons[4].startswith("missing event_timestamp")
    assert "negative amount '-5" in reasons[5]
    assert reasons[6].startswith("unknown event_type 'teleport' (allowed: purchase, visit, click")
    assert reasons[7].startswith("exact duplicate of an earlier row")
    assert reasons[8].startswith("unknown customer: customer_id 'c9'")
    assert "unparseable amount 'abc'" in reasons[9]
    # The raw value survives into the quarantine, next to the reason.
    assert quarantine.loc[quarantine[SOURCE_ROW] == "3", "event_timestamp"].item() == "not-a-date"
    assert quarantine.loc[quarantine[SOURCE_ROW] == "6", "event_type"].item() == "teleport"

    counts: dict[str, int] = {}
    for kind in expected_bad.values():
        counts[kind] = counts.get(kind, 0) + 1
    assert report.events.reasons == counts
    assert (report.events.input_rows, report.events.valid_rows, report.events.quarantined_rows) == (11, 2, 9)

    clean = pd.read_parquet(report.events.clean_path)
    assert clean[names.CUSTOMER_ID].tolist() == ["c1", "c4"]
    assert clean[names.EVENT_TYPE].tolist() == ["purchase", "complaint"]
    assert clean[names.AMOUNT].iloc[0] == pytest.approx(19.90)
    assert np.isnan(clean[names.AMOUNT].iloc[1])
    assert clean[names.EVENT_TIMESTAMP].tolist() == [
        pd.Timestamp("2025-02-01 10:00", tz="UTC"),
        pd.Timestamp("2025-02-05 08:00", tz="UTC"),
    ]
    assert list(clean.columns) == EVENT_COLUMNS


def test_each_bad_customer_goes_to_quarantine_and_attributes_are_kept(tmp_path: Path) -> None:
    customers = pd.DataFrame(
        {
            "customer_id": ["c1", "", "c2", "c3", "c1", "c4", "c5", "c5"],
            "signup_date": [
                "2025-01-01",
                "2025-01-01",
                "31/01/2025",
                "2025-02-01",
                "2025-01-05",
                "2025-01-01",
                "2025-01-10",
                "2025-01-11",
            ],
            "churn_date": ["", "", "", "2025-01-15", "", "someday", "", ""],
            "plan": ["basic", "basic", "basic", "premium", "basic", "basic", "basic", "premium"],
            "crm_note": list("abcdefgh"),
        }
    )
    result = split_valid(customers, "customers", CustomersSource())

    assert result.counts == {
        "missing_customer_id": 1,
        "unparseable_signup_date": 1,
        "unparseable_churn_date": 1,
        "churn_before_signup": 1,
        "duplicate_customer_id": 2,
    }
    reasons = dict(zip(result.quarantined[SOURCE_ROW], result.quarantined[names.QUARANTINE_REASON], strict=True))
    assert reasons[2] == (
        "unparseable signup_date '31/01/2025' in column 'signup_date' (expected ISO 8601, e.g. 2025-01-31)"
    )
    assert reasons[3] == "churn_date 2025-01-15 is before signup_date 2025-02-01"
    assert reasons[4] == "duplicate customer_id 'c1' (the first good row with this id is kept)"
    assert reasons[7].startswith("duplicate customer_id 'c5'")
    assert "someday" in reasons[5]

    valid = result.valid
    assert valid[names.CUSTOMER_ID].tolist() == ["c1", "c5"]
    assert valid[names.SIGNUP_DATE].tolist() == [pd.Timestamp("2025-01-01"), pd.Timestamp("2025-01-10")]
    # Configured attributes the file has are kept; other columns are not.
    assert list(valid.columns) == [names.CUSTOMER_ID, names.SIGNUP_DATE, names.CHURN_DATE, "plan"]
    assert valid.dtypes[names.SIGNUP_DATE] == DATE_NS and valid.dtypes[names.CHURN_DATE] == DATE_NS
    # The quarantine has every raw column, as strings.
    assert "crm_note" in result.quarantined.columns
    assert result.rows_in == len(customers)
    customers_schema(("plan",)).validate(valid)


def test_a_customer_whose_first_row_is_bad_keeps_its_later_good_row() -> None:
    customers = pd.DataFrame(
        {"customer_id": ["c1", "c1", "c1"], "signup_date": ["garbage", "2025-01-02", "2025-01-03"]}
    )
    result = split_valid(customers, "customers", CustomersSource())
    assert result.valid[names.SIGNUP_DATE].tolist() == [pd.Timestamp("2025-01-02")]
    assert result.counts == {"unparseable_signup_date": 1, "duplicate_customer_id": 1}


def test_an_event_repeating_a_row_bad_only_by_its_unparseable_amount_is_kept() -> None:
    # Both rows parse to the same values (amount NaN), but only the first is bad.
    frame = pd.DataFrame(
        {
            "customer_id": ["c1", "c1", "c1"],
            "event_timestamp": ["2025-02-01T10:00:00Z"] * 3,
            "event_type": ["visit"] * 3,
            "amount": ["n/a?", "", ""],
        }
    )
    result = split_valid(frame, "events", EventsSource())
    assert result.counts == {"unparseable_amount": 1, "duplicate_row": 1}
    assert result.quarantined[SOURCE_ROW].tolist() == [0, 2]
    assert len(result.valid) == 1


def test_a_row_failing_several_checks_gets_one_reason() -> None:
    frame = pd.DataFrame({"customer_id": [""], "event_timestamp": ["bad"], "event_type": ["nope"], "amount": ["-1"]})
    result = split_valid(frame, "events", EventsSource(), known_customers=pd.Series(["c1"]))
    assert result.counts == {"missing_customer_id": 1}
    assert len(result.quarantined) == 1


def test_valid_events_have_contract_dtypes_and_pass_the_schema() -> None:
    result = split_valid(_events_frame(), "events", EventsSource(), known_customers=CUSTOMERS["customer_id"])
    dtypes = result.valid.dtypes
    assert dtypes[names.CUSTOMER_ID] == STRING and dtypes[names.EVENT_TYPE] == STRING
    assert dtypes[names.CATEGORY] == STRING
    assert dtypes[names.EVENT_TIMESTAMP] == UTC_NS
    assert dtypes[names.AMOUNT] == np.float64
    events_schema(EventsSource().event_types, CUSTOMERS["customer_id"]).validate(result.valid)
    assert result.quarantined.dtypes[SOURCE_ROW] == np.int64
    assert result.quarantined[names.QUARANTINE_REASON].notna().all()


# ---------------------------------------------------------------- the report


def test_summary_table_prints_the_counts(tmp_path: Path) -> None:
    report = _ingest_files(tmp_path)
    text = _render(report)
    rows = {cells[1].strip(): [c.strip() for c in cells[2:5]] for cells in _table_rows(text)}
    assert rows == {"customers": ["4", "4", "0"], "events": ["11", "2", "9"]}
    for kind, count in report.events.reasons.items():
        assert f"{kind}: {count}" in text
    assert "missing_customer_id: 2" in text


# ---------------------------------------------------------------- mapping


def test_missing_column_error_names_the_column_the_field_and_the_mapping_key() -> None:
    frame = pd.DataFrame({"cust": ["c1"], "when": ["2025-01-01"], "kind": ["visit"]})
    source = EventsSource(columns={"customer_id": "cust", "event_timestamp": "ts", "event_type": "kind"})
    with pytest.raises(ContractError) as error:
        split_valid(frame, "events", source)
    assert str(error.value) == (
        "events file has no column 'ts' for contract field 'event_timestamp': set "
        "data.events.columns.event_timestamp in your config to the right column name "
        "(file columns: cust, when, kind)"
    )


def test_ingest_error_for_a_missing_column_names_the_file(tmp_path: Path) -> None:
    events = _events_frame().rename(columns={"event_type": "type"})
    with pytest.raises(ContractError, match=r"events\.csv: events file has no column 'event_type'") as error:
        _ingest_files(tmp_path, events=events)
    assert "data.events.columns.event_type" in str(error.value)
    assert "default_event_type" in str(error.value)


def test_an_unknown_mapping_key_is_an_error() -> None:
    source = EventsSource(columns={"customer_id": "customer_id", "event_timestamp": "ts", "amout": "value"})
    with pytest.raises(ContractError, match="unknown contract field.*'amout'"):
        split_valid(pd.DataFrame({"customer_id": ["c1"], "ts": ["2025-01-01"]}), "events", source)


def test_a_custom_column_mapping_works(tmp_path: Path) -> None:
    export = pd.DataFrame(
        {
            "cust": ["c1", "c2", "c3"],
            "ts": ["2025-02-01 10:00:00", "2025-02-02 11:00:00", "2025-02-03 12:00:00"],
            "kind": ["purchase", "visit", "purchase"],
            "value": ["10.5", "", "3"],
            "ignored": ["x", "y", "z"],
        }
    )
    mapping = {"customer_id": "cust", "event_timestamp": "ts", "event_type": "kind", "amount": "value"}
    customers_path = _write(CUSTOMERS, tmp_path / "raw" / "customers.csv")
    events_path = _write(export, tmp_path / "raw" / "transactions.csv")
    settings = _settings(tmp_path, {"events": {"columns": mapping}})
    report = ingest(settings, customers_path=customers_path, events_path=events_path)

    clean = pd.read_parquet(report.events.clean_path)
    assert list(clean.columns) == EVENT_COLUMNS  # contract names; unmapped columns dropped
    assert clean[names.CUSTOMER_ID].tolist() == ["c1", "c2", "c3"]
    assert clean[names.AMOUNT].tolist()[0::2] == [10.5, 3.0]
    assert clean[names.CATEGORY].isna().all()  # optional field absent from the mapping
    assert report.events.quarantined_rows == 0


def test_a_purchases_only_export_gets_the_default_event_type(tmp_path: Path) -> None:
    export = pd.DataFrame(
        {"customer_id": ["c1", "c2"], "event_timestamp": ["2025-02-01", "2025-02-02"], "amount": ["5", "7.5"]}
    )
    data = {
        "events": {
            "columns": {
                "customer_id": "customer_id",
                "event_timestamp": "event_timestamp",
                "amount": "amount",
            },
            "default_event_type": "purchase",
        }
    }
    report = _ingest_files(tmp_path, events=export, data=data)
    clean = pd.read_parquet(report.events.clean_path)
    assert clean[names.EVENT_TYPE].tolist() == ["purchase", "purchase"]
    assert clean[names.AMOUNT].tolist() == [5.0, 7.5]
    assert report.events.quarantined_rows == 0

    # The default mapping still names an event_type column; with a default type its absence is fine.
    source = EventsSource(default_event_type="purchase")
    assert split_valid(export, "events", source).valid[names.EVENT_TYPE].tolist() == ["purchase", "purchase"]


def test_a_default_event_type_outside_the_accepted_set_is_an_error() -> None:
    source = EventsSource(default_event_type="order")
    with pytest.raises(ContractError, match="default_event_type 'order' is not one of"):
        split_valid(pd.DataFrame({"customer_id": ["c1"], "event_timestamp": ["2025-01-01"]}), "events", source)


# ---------------------------------------------------------------- atomicity


def test_a_failed_run_leaves_the_previous_output_byte_identical(tmp_path: Path) -> None:
    report = _ingest_files(tmp_path)
    outputs = [p for t in report.tables for p in (t.clean_path, t.quarantine_path)]
    before = {p: p.read_bytes() for p in outputs}

    broken = _events_frame().drop(columns=["event_timestamp"])
    changed_customers = CUSTOMERS.assign(plan="enterprise")
    _write(changed_customers, tmp_path / "raw" / "customers.csv")
    events_path = _write(broken, tmp_path / "raw" / "events.csv")
    with pytest.raises(ContractError, match="event_timestamp"):
        ingest(_settings(tmp_path), customers_path=tmp_path / "raw" / "customers.csv", events_path=events_path)

    assert {p: p.read_bytes() for p in outputs} == before
    leftovers = [p.name for d in {p.parent for p in outputs} for p in d.iterdir() if p not in before]
    assert leftovers == []


def test_atomic_writes_replace_whole_files_and_clean_up_on_failure(tmp_path: Path, monkeypatch: Any) -> None:
    target = tmp_path / "out" / "table.parquet"
    write_atomic_parquet(pa.table({"a": [1, 2]}), target)
    write_atomic_parquet(pd.DataFrame({"a": [3]}, index=[7]), target)
    assert pq.read_table(target).to_pydict() == {"a": [3]}  # index not written

    def explode(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(atomic_io.pq, "write_table", explode)
    with pytest.raises(OSError, match="disk full"):
        write_atomic_parquet(pa.table({"a": [4]}), target)
    assert pq.read_table(target).to_pydict() == {"a": [3]}
    assert [p.name for p in target.parent.iterdir()] == ["table.parquet"]

    gz = write_atomic_csv(pd.DataFrame({"x": ["1"]}), tmp_path / "out" / "q.csv.gz")
    assert gzip.decompress(gz.read_bytes()).decode() == "x\n1\n"


# ---------------------------------------------------------------- timestamps


def test_timestamps_with_offsets_are_converted_to_utc() -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["c1"] * 6,
            "event_timestamp": [
                "2025-03-01T10:00:00+02:00",
                "2025-03-01 10:00:00",  # naive after an offset: read as UTC, not +02:00
                "2025-03-01T10:00:00Z",
                "2025-03-01T10:00:00.250-05:00",
                "2025-03-01",
                "2025-03-01T23:30:00-0130",
            ],
            "event_type": ["visit", "click", "message", "purchase", "complaint", "support_ticket"],
        }
    )
    result = split_valid(frame, "events", EventsSource())
    assert result.valid[names.EVENT_TIMESTAMP].tolist() == [
        pd.Timestamp("2025-03-01 08:00:00", tz="UTC"),
        pd.Timestamp("2025-03-01 10:00:00", tz="UTC"),
        pd.Timestamp("2025-03-01 10:00:00", tz="UTC"),
        pd.Timestamp("2025-03-01 15:00:00.250", tz="UTC"),
        pd.Timestamp("2025-03-01 00:00:00", tz="UTC"),
        pd.Timestamp("2025-03-02 01:00:00", tz="UTC"),
    ]


def test_parquet_timestamps_in_any_zone_and_unit_become_utc_ns(tmp_path: Path) -> None:
    berlin = pd.Series(pd.to_datetime(["2025-07-01 12:00", "2025-07-01 13:00"]).tz_localize("Europe/Berlin"))
    table = pa.table(
        {
            "customer_id": ["c1", "c2"],
            "event_timestamp": pa.array(berlin.dt.as_unit("us")),
            "event_type": ["visit", "visit"],
            "amount": [1.0, None],
        }
    )
    pq.write_table(table, tmp_path / "events.parquet")
    result = split_valid(read_table(tmp_path / "events.parquet"), "events", EventsSource())
    assert result.valid.dtypes[names.EVENT_TIMESTAMP] == UTC_NS
    assert result.valid[names.EVENT_TIMESTAMP].tolist() == [
        pd.Timestamp("2025-07-01 10:00", tz="UTC"),
        pd.Timestamp("2025-07-01 11:00", tz="UTC"),
    ]

    naive = pd.DataFrame({"customer_id": ["c1"], "event_timestamp": pd.to_datetime(["2025-07-01 12:00"])})
    naive_result = split_valid(naive, "events", EventsSource(default_event_type="visit"))
    assert naive_result.valid[names.EVENT_TIMESTAMP].tolist() == [pd.Timestamp("2025-07-01 12:00", tz="UTC")]


def test_a_timestamp_format_from_the_config_is_used() -> None:
    frame = pd.DataFrame({"customer_id": ["c1", "c2"], "ts": ["31/01/2025 09:15", "2025-01-31"], "kind": ["visit"] * 2})
    source = EventsSource(
        columns={"customer_id": "customer_id", "event_timestamp": "ts", "event_type": "kind"},
        timestamp_format="%d/%m/%Y %H:%M",
    )
    result = split_valid(frame, "events", source)
    assert result.valid[names.EVENT_TIMESTAMP].tolist() == [pd.Timestamp("2025-01-31 09:15", tz="UTC")]
    assert "expected format '%d/%m/%Y %H:%M'" in result.quarantined[names.QUARANTINE_REASON].item()


def test_customer_dates_are_naive_midnight_of_the_utc_day() -> None:
    frame = pd.DataFrame(
        {"customer_id": ["c1", "c2"], "signup_date": ["2025-01-03T23:30:00-05:00", "2025-01-03 08:00"]}
    )
    result = split_valid(frame, "customers", CustomersSource())
    assert result.valid[names.SIGNUP_DATE].tolist() == [
        pd.Timestamp("2025-01-04"),
        pd.Timestamp("2025-01-03"),
    ]
    assert result.valid[names.CHURN_DATE].isna().all()


# ---------------------------------------------------------------- reading and helpers


def test_read_table_keeps_csv_values_as_strings(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text("customer_id,signup_date,score\n007,2025-01-01,1.50\n008,,x\n")
    frame = read_table(path)
    assert frame["customer_id"].tolist() == ["007", "008"]
    assert frame["score"].tolist() == ["1.50", "x"]
    assert frame["signup_date"].isna().tolist() == [False, True]

    gz = tmp_path / "customers.csv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert read_table(gz)["customer_id"].tolist() == ["007", "008"]

    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="unsupported file type"):
        read_table(tmp_path / "x.json")
    with pytest.raises(FileNotFoundError):
        read_table(tmp_path / "missing.parquet")


def test_later_duplicates_matches_pandas() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        n = int(rng.integers(0, 80))
        frame = pd.DataFrame(
            {
                "a": pd.array(rng.choice(np.array(["x", "y", None], dtype=object), n), dtype=STRING),
                "t": pd.to_datetime(rng.choice([0, 1, 2], n), unit="D", utc=True),
                "f": rng.choice([0.0, -0.0, 1.5, np.nan], n),
                "i": rng.integers(0, 2, n),
            }
        )
        assert later_duplicates(frame).tolist() == frame.duplicated(keep="first").tolist()
