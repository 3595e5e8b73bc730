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
    config: ConfigOption = None,
) -> None:
    """Score every active customer with the champion and write the CRM alert list, sorted by expected loss.

    Each row: churn probability, risk tier, top reasons (for the top of the list), warning rules
    hit, segment and layers, recommended action, customer value and expected loss (probability x value).

    Example: churn score --as-of 2025-06-30 --out workspace/alerts.csv
    """
    ctx = load_context(config, "score")
    top_rows = parse_reasons_top(reasons_top, ctx.settings)  # a bad value fails before anything loads
    alerts = champion_alerts(ctx.settings, as_of.date() if as_of else None, top_rows)
    from crm.alerts import write_alerts

    try:
        write_alerts(alerts, out)
    except ValueError as exc:
        raise fail(str(exc)) from None
    top = alerts.head(10)
    table = Table(title=f"top alerts as of {alerts['as_of'].iloc[0] if len(alerts) else '-'}")
    for column in ("customer_id", "churn_probability", "risk_tier", "segment", "action", "expected_loss"):
        table.add_column(column, justify="right" if column in ("churn_probability", "expected_loss") else "left")
    for row in top.itertuples(index=False):
        table.add_row(
            row.customer_id,
            f"{row.churn_probability:.2f}",
            row.risk_tier,
            row.segment,
            row.action,
            f"{row.expected_loss:,.0f}",
        )
    console.print(table)
    console.print(f"{len(alerts):,} customers scored -> {out}")


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
    """The champion's alert list as of `as_of`, with a progress bar.

    Args:
        settings: The profile.
        as_of: Score the newest snapshot on or before this date; None for the newest.
        reasons_top: How many rows from the top get reasons; None for every row.

    Returns:
        The alert list (a DataFrame), sorted by expected loss.
    """
    require_registry(settings)
    from crm.alerts import score_alerts
    from crm.early_warning import CrmConfigError
    from model.champion import NoChampionError, load_champion
    from model.predictor import predictor_of

    try:
        predictor = predictor_of(load_champion(settings.mlflow_uri, settings.training.model_name), settings.serving)
        with progress() as bar:
            task = bar.add_task("scoring customers", total=None)
            return score_alerts(
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
