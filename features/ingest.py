"""Ingestion: read the CRM exports, hold them to the data contract, write clean Parquet and
quarantine CSVs.

The I/O edge around `features.contract.split.split_valid`. Both tables are read and validated before
anything is written, and every file is replaced atomically, so a run that fails (a missing
column, say) leaves the previous output untouched.

Output, under the workspace:

* `<data.clean_dir>/customers.parquet`, `<data.clean_dir>/events.parquet`: the valid rows with
  contract names and dtypes (see `features.contract`).
* `<data.quarantine_dir>/customers.csv`, `<data.quarantine_dir>/events.csv`: the rejected rows,
  as in the file, with `source_row` and `quarantine_reason`; written (header only) even when
  empty, so no stale rows from an earlier run remain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.table import Table

from core import names
from core.io import write_atomic_csv, write_atomic_parquet
from core.settings import Settings
from features.contract.fields import STRING, ContractError, TableKind, ValidationResult
from features.contract.split import split_valid
from features.contract.table import TableValidation, split_table

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
CUSTOMERS_FILE = "customers"
EVENTS_FILE = "events"
TABLE_FILE = "table"


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet export, chosen by the file suffix.

    CSV columns are all read as strings, so a bad value reaches validation (and the quarantine)
    as it is in the file instead of failing the read or turning a whole column into floats.
    Empty fields and the usual null markers (NA, NULL, NaN, ...) are read as missing. Parquet
    columns keep their types; string columns become `string[pyarrow]` and dates timestamps.

    Args:
        path: A `.csv`, `.csv.gz`, `.parquet` or `.pq` file.

    Returns:
        Every column of the file, with a RangeIndex.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The suffix is none of the above.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    lowered = path.name.lower()
    if lowered.endswith(CSV_SUFFIXES):
        table = _read_csv_as_text(path)
    elif lowered.endswith(PARQUET_SUFFIXES):
        table = pq.read_table(path)
    else:
        raise ValueError(f"{path}: unsupported file type, expected one of {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}")
    # ignore_metadata: a pandas index saved in the file comes back as an ordinary column.
    return table.to_pandas(types_mapper=_pandas_type, ignore_metadata=True, date_as_object=False)


def _read_csv_as_text(path: Path) -> pa.Table:
    # The header is needed to type every column as string; the streaming reader parses only it
    # and the first block.
    with pacsv.open_csv(path) as reader:
        header = reader.schema.names
    convert = pacsv.ConvertOptions(column_types={name: pa.string() for name in header}, strings_can_be_null=True)
    return pacsv.read_csv(path, convert_options=convert)


def _pandas_type(arrow_type: pa.DataType) -> pd.api.extensions.ExtensionDtype | None:
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return STRING
    return None


@dataclass(frozen=True)
class TableReport:
    """What ingesting one table did.

    Attributes:
        name: customers or events.
        source: The file read.
        clean_path: Parquet file of the valid rows.
        quarantine_path: CSV file of the quarantined rows.
        input_rows: Rows read.
        valid_rows: Rows written to `clean_path`.
        quarantined_rows: Rows written to `quarantine_path`.
        reasons: Reason kind -> quarantined rows (only kinds that occurred).
    """

    name: TableKind | str
    source: Path
    clean_path: Path
    quarantine_path: Path
    input_rows: int
    valid_rows: int
    quarantined_rows: int
    reasons: dict[str, int] = field(default_factory=dict)


def _write(
    name: str, source: Path, result: ValidationResult | TableValidation, clean: Path, quarantine: Path
) -> TableReport:
    """Write a validated table's clean rows (Parquet) and quarantined rows (CSV), atomically; what was done."""
    return TableReport(
        name=name,
        source=source,
        clean_path=write_atomic_parquet(result.valid, clean),
        quarantine_path=write_atomic_csv(result.quarantined, quarantine),
        input_rows=result.rows_in,
        valid_rows=len(result.valid),
        quarantined_rows=len(result.quarantined),
        reasons=dict(result.counts),
    )


@dataclass(frozen=True)
class IngestReport:
    """What `ingest` did, per table."""

    customers: TableReport
    events: TableReport

    @property
    def tables(self) -> tuple[TableReport, TableReport]:
        """Customers, then events."""
        return self.customers, self.events

    def summary_table(self) -> Table:
        """A table for the console: rows in, valid and quarantined per table, and why."""
        table = Table(title="CRM ingest: data contract check")
        table.add_column("table")
        table.add_column("rows in", justify="right")
        table.add_column("valid", justify="right")
        table.add_column("quarantined", justify="right")
        table.add_column("reasons")
        for report in self.tables:
            reasons = "\n".join(f"{kind}: {count:,}" for kind, count in report.reasons.items()) or "-"
            table.add_row(
                report.name,
                f"{report.input_rows:,}",
                f"{report.valid_rows:,}",
                f"{report.quarantined_rows:,}",
                reasons,
            )
        table.caption = (
            f"clean: {self.customers.clean_path.parent}  quarantine: {self.customers.quarantine_path.parent}"
        )
        return table


def ingest(settings: Settings, customers_path: Path | None = None, events_path: Path | None = None) -> IngestReport:
    """Validate the customers and events exports and write clean Parquet and quarantine CSVs.

    Events whose customer is not among the valid customers are quarantined as unknown
    customers. Nothing is written until both tables have been validated.

    Args:
        settings: Source paths and column mappings (`data.customers`, `data.events`) and the
            output directories (`data.clean_dir`, `data.quarantine_dir`).
        customers_path: Customers export; default `data.customers.path` in the workspace.
        events_path: Events export; default `data.events.path` in the workspace.

    Returns:
        Paths and row counts per table.

    Raises:
        FileNotFoundError: An export does not exist.
        ContractError: An export cannot be mapped onto the contract; the message names the
            file, the missing column and the config key to fix.
    """
    data = settings.data
    events_source = Path(events_path) if events_path is not None else settings.path(data.events.path)
    configured = settings.path(data.customers.path) if data.customers.path is not None else None
    customers_file = Path(customers_path) if customers_path is not None else configured
    if customers_file is None:
        # A transactions export without a customers table: customers are who appears in the events.
        events = _validate(events_source, "events", settings)
        customers = derive_customers(events.valid)
        customers_source = events_source
    else:
        customers_source = customers_file
        customers = _validate(customers_source, "customers", settings)
        events = _validate(events_source, "events", settings, customers.valid[names.CUSTOMER_ID])
    sources: dict[TableKind, Path] = {"customers": customers_source, "events": events_source}

    clean_dir = settings.path(data.clean_dir)
    quarantine_dir = settings.path(data.quarantine_dir)
    results: tuple[tuple[TableKind, ValidationResult], ...] = (("customers", customers), ("events", events))
    reports = []
    for kind, result in results:
        stem = CUSTOMERS_FILE if kind == "customers" else EVENTS_FILE
        reports.append(
            _write(kind, sources[kind], result, clean_dir / f"{stem}.parquet", quarantine_dir / f"{stem}.csv")
        )
    return IngestReport(customers=reports[0], events=reports[1])


@dataclass(frozen=True)
class TableIngestReport:
    """What `ingest_table` did: the table's rows, and the numbers that did not parse per column."""

    table: TableReport
    unparsed: dict[str, int] = field(default_factory=dict)

    def summary_table(self) -> Table:
        """A table for the console: rows in, valid and quarantined, why, and values that became null."""
        table = Table(title="CRM ingest: data contract check (customer table)")
        for column in ("table", "rows in", "valid", "quarantined", "reasons", "not a number (now null)"):
            table.add_column(column, justify="right" if column in ("rows in", "valid", "quarantined") else "left")
        report = self.table
        table.add_row(
            report.name,
            f"{report.input_rows:,}",
            f"{report.valid_rows:,}",
            f"{report.quarantined_rows:,}",
            "\n".join(f"{kind}: {count:,}" for kind, count in report.reasons.items()) or "-",
            "\n".join(f"{column}: {count:,}" for column, count in self.unparsed.items()) or "-",
        )
        table.caption = f"clean: {report.clean_path}  quarantine: {report.quarantine_path}"
        return table


def ingest_table(settings: Settings, path: Path | None = None) -> TableIngestReport:
    """Validate an entity-level table (`data.table`) and write its clean Parquet and quarantine CSV.

    Raises:
        FileNotFoundError: The table does not exist.
        ContractError: A configured column is missing; the message names it and the config key.
    """
    source = settings.data.table
    if source is None:
        raise ValueError("data.table is not set: this profile ingests customers and events")
    file = Path(path) if path is not None else settings.path(source.path)
    try:
        raw = read_table(file)
    except FileNotFoundError:
        raise FileNotFoundError(f"table file {file} does not exist (data.table.path in the config)") from None
    try:
        result = split_table(raw, source)
    except ContractError as exc:
        raise ContractError(f"{file}: {exc}") from None
    report = _write(
        TABLE_FILE,
        file,
        result,
        settings.path(settings.data.clean_dir) / f"{TABLE_FILE}.parquet",
        settings.path(settings.data.quarantine_dir) / f"{TABLE_FILE}.csv",
    )
    return TableIngestReport(report, dict(result.unparsed))


def derive_customers(events: pd.DataFrame) -> ValidationResult:
    """Customers of an export that has none: every customer id in the valid events, signed up
    on the (UTC) day of their first event, without churn date or attributes."""
    first = events.groupby(names.CUSTOMER_ID, sort=True, observed=True)[names.EVENT_TIMESTAMP].min()
    stamps = pd.to_datetime(first.to_numpy(), utc=True)
    frame = pd.DataFrame(
        {
            names.CUSTOMER_ID: pd.array(first.index.astype(str), dtype="string"),
            names.SIGNUP_DATE: stamps.floor("D").tz_localize(None),
            names.CHURN_DATE: pd.Series(pd.NaT, index=range(len(first)), dtype="datetime64[ns]"),
        }
    )
    quarantined = pd.DataFrame(columns=["source_row", names.QUARANTINE_REASON])
    return ValidationResult(valid=frame, quarantined=quarantined)


def _validate(
    path: Path, kind: TableKind, settings: Settings, known_customers: pd.Series | None = None
) -> ValidationResult:
    try:
        raw = read_table(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{kind} file {path} does not exist (data.{kind}.path in the config)") from None
    source = settings.data.customers if kind == "customers" else settings.data.events
    try:
        return split_valid(raw, kind, source, known_customers=known_customers)
    except ContractError as exc:
        raise ContractError(f"{path}: {exc}") from None
