"""Scoring commands: `serve` (the HTTP API), `score` (the CRM alert list) and `report` (the ops report)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from churn.cli.common import ConfigOption, console, fail, load_context, progress, require_champion, require_registry
from churn.server import exec_service
from core.settings import Settings

app = typer.Typer()


@app.command()
def serve(
    port: Annotated[int | None, typer.Option(help="Port (default: from the config).")] = None,
    config: ConfigOption = None,
) -> None:
    """Serve the champion model over HTTP with BentoML (POST /score, /score_features, /model).

    Without a champion it ends at once, saying what to run. The command becomes the BentoML server
    (same process id), so stopping it (SIGTERM, Ctrl-C) stops every worker.

    Example: churn serve --port 3000

    Then: curl -X POST localhost:3000/score -H 'content-type: application/json' -d '{"customer_ids": ["C0000001"]}'
    """
    ctx = load_context(config, "serve", **{"serving.port": port})
    s = ctx.settings
    version = require_champion(s)
    console.print(f"serving {s.training.model_name} v{version} (champion) on http://{s.serving.host}:{s.serving.port}")
    exec_service(ctx)


@app.command()
def score(
    out: Annotated[Path, typer.Option(help="Alert list to write: .csv or .parquet.")],
    as_of: Annotated[
        dt.datetime | None, typer.Option("--as-of", help="Score the newest snapshot on or before this date.")
    ] = None,
    reasons_top: Annotated[
        str | None,
        typer.Option(
            "--reasons-top",
            help="How many rows from the top of the list get reasons, or 'all' (default: serving.batch_reasons_top).",
        ),
    ] = None,
    campaign: Annotated[
        str | None,
        typer.Option(help="Campaign id (default: <as-of date>-v<model version>); it seeds the control groups."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Score every active customer with the champion and write the CRM alert list as a campaign.

    Each row: churn probability, risk tier, top reasons (for the top of the list), warning rules
    hit, segment and layers, recommended action, customer value, expected loss (probability x value),
    the action's cost and success (measured by earlier campaigns, or configured), expected profit,
    and for an alerted customer the group: treatment (contact) or control (no action), from a
    seeded hash of the campaign and customer ids. Sorted by expected profit. The campaign record
    (groups and expected cost per action) goes next to the list, into the workspace's campaigns
    folder and into MLflow.

    Example: churn score --as-of 2025-06-30 --out workspace/alerts.csv
    """
    ctx = load_context(config, "score")
    top_rows = parse_reasons_top(reasons_top, ctx.settings)  # a bad value fails before anything loads
    if out.suffix not in (".csv", ".parquet"):
        raise fail(f"--out must end in .csv or .parquet, got '{out.name}'", "pass e.g. --out workspace/alerts.csv")
    alerts, features = champion_scored(ctx.settings, as_of.date() if as_of else None, top_rows)
    planned, record = record_campaign(ctx.settings, alerts, features, out, campaign)
    top = planned.head(10)
    table = Table(title=f"top alerts as of {planned['as_of'].iloc[0] if len(planned) else '-'}")
    columns = ("customer_id", "churn_probability", "risk_tier", "segment", "action", "group", "expected_profit")
    for column in columns:
        table.add_column(column, justify="right" if column in ("churn_probability", "expected_profit") else "left")
    for row in top.itertuples(index=False):
        table.add_row(
            row.customer_id,
            f"{row.churn_probability:.2f}",
            row.risk_tier,
            row.segment,
            row.action,
            row.group or "-",
            f"{row.expected_profit:,.0f}",
        )
    console.print(table)
    console.print(f"{len(planned):,} customers scored -> {out}")
    if record is not None:
        console.print(campaign_line(record))


def campaign_line(record: dict[str, Any]) -> str:
    """One line on a planned campaign: id, groups, expected cost."""
    return (
        f"campaign {record['campaign_id']}: {record['customers']:,} alerted, {record['treatment']:,} treatment / "
        f"{record['control']:,} control, expected cost {record['expected_cost']:,.0f}; "
        f"evaluate after {record['outcome_known']}: churn campaigns evaluate --campaign {record['campaign_id']}"
    )


def record_campaign(
    settings: Settings,
    alerts: Any,
    features: Any,
    out: Path,
    campaign: str | None,  # noqa: ANN401 - DataFrames
) -> tuple[Any, dict[str, Any] | None]:  # noqa: ANN401
    """Plan the alert list as a campaign, write the list and the record next to it, keep it, log it to MLflow.

    Args:
        settings: The profile.
        alerts: The champion's alert list.
        features: The feature rows it scored.
        out: The alert list's file (.csv or .parquet).
        campaign: The campaign id; None: `<as-of>-v<model version>`.

    Returns:
        The planned alert list, and the record (None when nobody was scored).
    """
    from crm.alerts import write_alerts
    from crm.campaigns.evaluation import measured_success
    from crm.campaigns.plan import campaign_id_for, campaign_record, plan_campaign
    from crm.campaigns.store import RECORD, record_beside, write_campaign, write_json
    from crm.campaigns.tracking import log_campaign

    if alerts.empty:
        write_alerts(alerts, out)
        return alerts, None
    as_of = alerts["as_of"].iloc[0]
    version = str(alerts["model_version"].iloc[0])
    campaign_id = campaign or campaign_id_for(as_of, version)
    measured = measured_success(settings)
    uplift = None
    if settings.crm.campaigns.rank_by == "uplift":
        from crm.campaigns.targeting import UpliftModelMissingError, load_uplift, predict_uplift

        try:
            uplift = predict_uplift(load_uplift(settings), features_in_order(alerts, features), alerts)
        except UpliftModelMissingError as exc:
            raise fail(
                str(exc), "run `churn campaigns uplift` (or set crm.campaigns.rank_by: expected_profit)"
            ) from None
    try:
        planned = plan_campaign(alerts, settings, campaign_id, measured, uplift)
    except ValueError as exc:
        raise fail(str(exc)) from None
    record = campaign_record(planned, settings, as_of, version, dt.datetime.now(dt.UTC))
    write_alerts(planned, out)
    folder = write_campaign(settings, record, planned, features)
    beside = write_json(record, record_beside(out))
    record["mlflow_run_id"] = log_campaign(settings, record, [folder / RECORD])
    write_json(record, folder / RECORD)
    write_json(record, beside)
    return planned, record


def features_in_order(alerts: Any, features: Any) -> Any:  # noqa: ANN401 - DataFrames
    """The scored feature rows in the alert list's order (one per customer)."""
    from core import names

    ids = features[names.CUSTOMER_ID].astype(str)
    return features.set_index(ids).loc[alerts[names.CUSTOMER_ID].astype(str).to_numpy()].reset_index(drop=True)


def parse_reasons_top(text: str | None, settings: Settings) -> int | None:
    """`--reasons-top`: a count of rows, or None for 'all'; when not given, `serving.batch_reasons_top`.

    Args:
        text: The option's value; None when not given.
        settings: The profile.
    """
    if text is None:
        return settings.serving.batch_reasons_top
    if text.strip().lower() == "all":
        return None
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise fail(f"--reasons-top: expected a count of rows (0 or more) or 'all', got '{text}'")
    return count


def champion_alerts(settings: Settings, as_of: dt.date | None, reasons_top: int | None) -> Any:  # noqa: ANN401
    """The champion's alert list as of `as_of`, with a progress bar (`champion_scored` without the features)."""
    return champion_scored(settings, as_of, reasons_top)[0]


def champion_scored(settings: Settings, as_of: dt.date | None, reasons_top: int | None) -> tuple[Any, Any]:
    """The champion's alert list as of `as_of` and the feature rows it scored, with a progress bar.

    Args:
        settings: The profile.
        as_of: Score the newest snapshot on or before this date; None for the newest.
        reasons_top: How many rows from the top get reasons; None for every row.

    Returns:
        The alert list (a DataFrame), sorted by expected loss, and the features (a DataFrame).
    """
    require_registry(settings)
    from crm.alerts import scored_features
    from crm.early_warning import CrmConfigError
    from model.champion import NoChampionError, load_champion
    from model.predictor import predictor_of

    try:
        predictor = predictor_of(load_champion(settings.mlflow_uri, settings.training.model_name), settings.serving)
        with progress() as bar:
            task = bar.add_task("scoring customers", total=None)
            return scored_features(
                settings,
                predictor,
                as_of,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                reasons_top=reasons_top,
            )
    except (NoChampionError, FileNotFoundError, ValueError, CrmConfigError) as exc:
        raise fail(str(exc)) from None


@app.command()
def report(
    out: Annotated[Path | None, typer.Option(help="HTML file (default: <workspace>/reports/ops-<time>.html).")] = None,
    as_of: Annotated[
        dt.datetime | None, typer.Option("--as-of", help="Alerts of the newest snapshot on or before this date.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Write the ops report: churn trend, cohort retention, risk mix, segments, actions and top alerts (HTML).

    Example: churn report --out workspace/reports/ops.html
    """
    ctx = load_context(config, "report")
    alerts = champion_alerts(ctx.settings, as_of.date() if as_of else None, ctx.settings.serving.batch_reasons_top)
    from core.io import write_atomic_text
    from crm.report.page import build_report

    with console.status("building the ops report"):
        html = build_report(ctx.settings, alerts)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = out or ctx.settings.path(ctx.settings.monitoring.reports_dir) / f"ops-{stamp}.html"
    write_atomic_text(html, target)
    console.print(f"ops report for {len(alerts):,} customers -> {target}")
