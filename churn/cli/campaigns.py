"""`churn campaigns ...`: what the CRM did in a campaign, what it achieved, and whom to target next.

`churn score` plans a campaign (control groups, record, MLflow run); these commands take it on:
`import-actions` reads what the CRM did, `evaluate` measures the effects once the label horizon
has passed, `uplift` trains the uplift model on evaluated campaigns, `list` shows them, and
`simulate` plays whole campaign cycles on generated data with a known truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from churn.cli.common import ConfigOption, console, fail, load_context

app = typer.Typer(help="Retention campaigns: actions taken, measured effects, uplift targeting.", no_args_is_help=True)

CampaignOption = Annotated[str, typer.Option("--campaign", help="The campaign's id (see `churn campaigns list`).")]


@app.command("list")
def list_campaigns(config: ConfigOption = None) -> None:
    """List the workspace's campaigns: as-of date, model, groups, expected cost, what is known of them.

    Example: churn campaigns list
    """
    ctx = load_context(config, "campaigns-list")
    from crm.campaigns.store import campaign_folder, campaign_ids, read_record

    ids = campaign_ids(ctx.settings)
    if not ids:
        raise fail("no campaigns in this workspace yet", "run `churn score --out workspace/alerts.csv` to plan one")
    table = Table(title="campaigns")
    for column in ("campaign", "as of", "model", "treatment", "control", "expected cost", "actions", "evaluated"):
        table.add_column(column)
    for campaign in ids:
        record = read_record(ctx.settings, campaign)
        folder = campaign_folder(ctx.settings, campaign)
        table.add_row(
            campaign,
            record["as_of"],
            f"v{record['model_version']}",
            f"{record['treatment']:,}",
            f"{record['control']:,}",
            f"{record['expected_cost']:,.0f}",
            "imported" if (folder / "actions.parquet").exists() else "-",
            "yes" if (folder / "evaluation.json").exists() else f"after {record['outcome_known']}",
        )
    console.print(table)


@app.command("import-actions")
def import_actions(
    campaign: CampaignOption,
    file: Annotated[Path | None, typer.Option(help="The CRM's actions export (default: data.actions.path).")] = None,
    config: ConfigOption = None,
) -> None:
    """Import what the CRM did in a campaign (CSV or Parquet: customer id, action, timestamp, optional cost).

    Columns are mapped by `data.actions.columns`. Rows of unknown customers, unknown actions, outside
    the campaign window, with a missing or unparseable value go to the quarantine with their reason.

    Example: churn campaigns import-actions --campaign 2025-06-30-v3 --file exports/actions.csv
    """
    ctx = load_context(config, "campaigns-import-actions")
    from crm.campaigns.actions import import_actions as run
    from crm.campaigns.store import CampaignNotFoundError
    from features.contract.fields import ContractError

    try:
        done = run(ctx.settings, campaign, file)
    except CampaignNotFoundError as exc:
        raise fail(str(exc), "run `churn campaigns list` to see the campaigns' ids") from None
    except FileNotFoundError as exc:
        raise fail(str(exc), "pass the CRM's export with --file, or set data.actions.path") from None
    except ContractError as exc:
        raise fail(str(exc), "fix data.actions.columns in the config (contract field -> column in your file)") from None
    table = Table(title=f"actions of campaign {campaign}: contract check")
    for column in ("rows in", "valid", "quarantined", "reasons"):
        table.add_column(column, justify="left" if column == "reasons" else "right")
    reasons = "\n".join(f"{kind}: {count:,}" for kind, count in done.reasons.items()) or "-"
    table.add_row(f"{done.rows_in:,}", f"{done.valid_rows:,}", f"{done.quarantined_rows:,}", reasons)
    table.caption = f"clean: {done.clean_path}  quarantine: {done.quarantine_path}"
    console.print(table)
