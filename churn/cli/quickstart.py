"""`churn quickstart`: the whole loop once, on embedded defaults, ending with where everything is."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
from rich.table import Table

from churn.cli.common import ConfigOption, console, load_context
from churn.cli.data import generate_data, ingest_data
from churn.cli.features import build_snapshots
from churn.cli.scoring import champion_alerts
from churn.cli.training import train_model
from churn.server import running_service
from core import names
from core.settings import Settings

if TYPE_CHECKING:
    from monitoring.jobs import MonitorResult

app = typer.Typer()


@app.command()
def quickstart(
    customers: Annotated[int, typer.Option(help="Customers to generate.")] = 2000,
    days: Annotated[int, typer.Option(help="Days of history to generate.")] = 180,
    trials: Annotated[int, typer.Option(help="Optuna trials.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed for data and tuning.")] = 42,
    config: ConfigOption = None,
) -> None:
    """Run the whole loop on embedded defaults: data, features, Feast, Optuna+MLflow, BentoML, Evidently.

    Example: churn quickstart --customers 2000 --days 180 --trials 10
    """
    ctx = load_context(
        config,
        "quickstart",
        **{
            "generator.customers": customers,
            "generator.days": days,
            "generator.seed": seed,
            "training.n_trials": trials,
            "training.seed": seed,
        },
    )
    settings = ctx.settings
    started = time.perf_counter()
    steps: list[tuple[str, str]] = []

    def step(name: str, detail: str) -> None:
        steps.append((name, detail))
        console.print(f"[green]✓[/] {name}: {detail}")

    generated = generate_data(settings)
    step("generate", f"{customers:,} customers, {generated['events']:,} events -> {generated['events_path'].parent}")
    report = ingest_data(settings)
    step("ingest", f"{report.events.valid_rows:,} valid events, {report.events.quarantined_rows:,} quarantined")
    built = build_snapshots(settings)
    step("features", f"{built.rows:,} snapshots x {len(built.features)} features, churn rate {built.churn_rate:.1%}")

    from features.pipeline import apply_features, latest_snapshot, materialize

    with console.status("feast apply + materialize"):
        apply_features(settings)
        start, end = materialize(settings)
    step(
        "feast",
        f"applied and materialized {start:%Y-%m-%d}..{end:%Y-%m-%d} "
        f"into the {settings.feast.online_store.type} online store",
    )
    trained = train_model(settings)
    step(
        "train",
        f"{trained.n_trials} trials; v{trained.version} test AUC {trained.metrics['test_roc_auc']:.3f}, "
        f"{'beats every baseline' if trained.verdict.beats_all else 'loses to a baseline'} "
        f"({trained.verdict.margin:+.3f} over {trained.verdict.best_baseline}); "
        f"{'champion' if trained.decision.promote else 'challenger'} ({trained.decision.reason})",
    )
    if not trained.decision.promote:
        _promote_for_the_demo(settings, trained)

    ids = latest_snapshot(settings, columns=[names.CUSTOMER_ID])[names.CUSTOMER_ID].head(5).tolist()
    with (
        console.status("starting the BentoML service"),
        running_service(ctx, settings.serving.startup_timeout_s) as url,
    ):
        response = httpx.post(f"{url}/score", json={"customer_ids": ids}, timeout=60)
        response.raise_for_status()
        scores = response.json()
    step("serve", f"POST {url}/score answered {len(scores)} scores")

    with console.status("Evidently drift report") as status:
        monitored = monitor_newest(settings, on_step=lambda text: status.update(text))
    step(
        "monitor",
        f"drift status {monitored.summary.status} ({monitored.summary.features.drifted_columns}/"
        f"{monitored.summary.features.n_columns} features drifted; "
        f"{len(monitored.summary.features.untested)} cumulative not tested)",
    )

    alerts = champion_alerts(settings, None, settings.serving.batch_reasons_top)
    from core.io import write_atomic_text
    from crm.alerts import write_alerts
    from crm.report.page import build_report

    alerts_path = write_alerts(alerts, settings.path("alerts.csv"))
    with console.status("ops report"):
        ops_path = write_atomic_text(
            build_report(settings, alerts), settings.path(settings.monitoring.reports_dir) / "ops-quickstart.html"
        )
    step("alerts", f"{len(alerts):,} customers scored, sorted by expected loss -> {alerts_path}; ops report {ops_path}")

    with console.status("pushing complaints through the real-time path"):
        pushed = push_complaints(settings)
    alert = pushed["alert"]
    step(
        "real time",
        f"{pushed['accepted']} complaints pushed for {pushed['customer_id']} (the path of POST /events, in process)"
        + (
            f" -> alert: customer {alert['customer_id']}, rules hit {', '.join(alert['new_rules']) or '-'}, "
            f"tier {alert['risk_tier']}, probability {alert['churn_probability']:.3f}, action {alert['action']}"
            if alert
            else " -> no alert (the customer already met every rule the complaints touch)"
        ),
    )

    summary = {
        "workspace": str(Path(settings.workspace).resolve()),
        "mlflow_tracking_uri": settings.mlflow_uri,
        "model": f"models:/{trained.model_name}@champion",
        "model_version": trained.version,
        "metrics": trained.metrics,
        "service_url": url,
        "drift_report": str(monitored.html),
        "drift_summary": str(monitored.summary_json),
        "drift_status": monitored.summary.status,
        "monitoring_index": str(monitored.index),
        "ui_commands": ui_commands(settings),
        "scores": scores,
        "alerts": str(alerts_path),
        "ops_report": str(ops_path),
        "top_actions": alerts["action"].value_counts().head(5).to_dict(),
        "pushed_alert": alert,
        "stream_alert_log": str(settings.path(settings.stream.alert_log)),
    }
    summary_path = write_atomic_text(json.dumps(summary, indent=2), settings.path("quickstart-summary.json"))
    table = Table(title="churn quickstart: where everything is", show_lines=False)
    table.add_column("what")
    table.add_column("where / value", overflow="fold")
    table.add_row("workspace", str(Path(settings.workspace).resolve()))
    table.add_row("MLflow tracking URI", settings.mlflow_uri)
    for name, command in ui_commands(settings).items():
        table.add_row(name, command)
    table.add_row("registered model", f"models:/{trained.model_name}@champion (v{trained.version})")
    table.add_row("Feast registry", str(settings.path(settings.feast.registry)))
    table.add_row("Feast online store", str(settings.path(settings.feast.online_store.path)))
    table.add_row("quarantine", str(settings.path(settings.data.quarantine_dir)))
    table.add_row("service URL used", f"{url}/score (stopped after the check; `churn serve` runs it)")
    table.add_row("drift report", str(monitored.html))
    table.add_row("drift summary", str(monitored.summary_json))
    table.add_row("CRM alert list", str(alerts_path))
    table.add_row("ops report", str(ops_path))
    table.add_row("real-time alerts (POST /events, churn stream)", str(settings.path(settings.stream.alert_log)))
    table.add_row("this summary as JSON", str(summary_path))
    table.add_row("elapsed", f"{time.perf_counter() - started:.0f} s")
    console.print(table)
    _print_scores(scores)
    print_campaign_cycle()


CAMPAIGN_CYCLE = "churn campaigns simulate --campaigns 2 --every 28 --catch-all time_limited_coupon"
"""The command the README gives right after the quickstart: one simulated campaign cycle on its
workspace (score with control groups, simulated actions and outcomes, evaluation, uplift model,
the report's campaign section). Apart from the quickstart, which it would make twice as long."""


def print_campaign_cycle() -> None:
    """The quickstart's last line: the command that plays retention campaigns on its workspace."""
    console.print(
        "next: play retention campaigns with control groups on this data, measure what each action did and "
        "train the uplift model:"
    )
    console.print(CAMPAIGN_CYCLE, soft_wrap=True, highlight=False)


def monitor_newest(settings: Settings, on_step: Callable[[str], None] | None = None) -> MonitorResult:
    """The quickstart's monitoring run: the newest feature snapshots (batch mode) against the champion's reference."""
    from features.pipeline import latest_snapshot
    from monitoring.current import Window
    from monitoring.jobs import run_monitor

    newest = latest_snapshot(settings, columns=[names.CUSTOMER_ID])[names.EVENT_TIMESTAMP].max().to_pydatetime()
    return run_monitor(settings, Window(newest, newest + dt.timedelta(days=1)), mode="batch", on_step=on_step)


def push_complaints(settings: Settings, complaints: int = 2) -> dict[str, Any]:
    """Push complaints for one customer through the real-time path, in process, and return its alert.

    The path is POST /events's (`stream.processor.StreamProcessor.apply`): the events are checked
    against the contract, appended to the event log, the customer's online features recomputed and
    written through Feast, the customer scored and the alert logged. The processor's clock is the
    newest snapshot's time, so the features before the complaints are the materialized ones and the
    complaints (in the hours before it) are all that changes. The customer is the first active
    one in the newest snapshot that no complaint rule flags yet.

    Returns:
        customer_id, accepted (events taken) and alert (the alert body, or None).
    """
    from features.pipeline import latest_snapshot, open_store
    from stream.processor import open_processor
    from stream.scoring import OnlineScorer

    store = open_store(settings)
    newest = latest_snapshot(settings, columns=[names.CUSTOMER_ID])
    at = newest[names.EVENT_TIMESTAMP].max().to_pydatetime()
    at = at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)
    scorer = OnlineScorer(settings, store)
    processor = open_processor(settings, store, scorer, clock=lambda: at)
    try:
        processor.online.refresh_population(at)
        ids = newest[names.CUSTOMER_ID].astype(str).head(200).tolist()
        answers = [a for a in scorer(ids) if "error" not in a]
        quiet = [a for a in answers if not any("complaint" in h["rule"] for h in a.get("rule_hits", []))]
        customer = str((quiet or answers)[0][names.CUSTOMER_ID])
        run = uuid.uuid4().hex[:8]  # a rerun's events are new events, not repeats of the last run's
        events = [
            {
                "event_id": f"quickstart-{run}-complaint-{i}",
                "customer_id": customer,
                "event_timestamp": (at - dt.timedelta(hours=i + 1)).isoformat(),
                "event_type": "complaint",
            }
            for i in range(complaints)
        ]
        outcome = processor.apply(events, arrived_at=at)
    finally:
        if processor.sender is not None:
            processor.sender.close()
    mine = [a for a in outcome.alerts if a["customer_id"] == customer]
    return {"customer_id": customer, "accepted": outcome.accepted, "alert": mine[0] if mine else None}


def ui_commands(settings: Settings) -> dict[str, str]:
    """The commands that open the MLflow, Evidently and Optuna UIs on this workspace's stores."""
    return {
        "MLflow UI": f"mlflow ui --backend-store-uri {settings.mlflow_uri}",
        "Evidently UI": f"evidently ui --workspace {settings.path(settings.monitoring.evidently_workspace)}",
        "Optuna dashboard": f"optuna-dashboard {settings.optuna_uri}",
    }


def _print_scores(scores: list[dict[str, Any]]) -> None:
    table = Table(title="scores returned over HTTP")
    for col in ("customer_id", "churn_probability", "risk_tier", "top reason"):
        table.add_column(col)
    for s in scores:
        if "error" in s:
            table.add_row(s["customer_id"], "-", "-", s["error"])
            continue
        reason = s["reasons"][0]["phrase"] if s["reasons"] else "-"
        table.add_row(s["customer_id"], f"{s['churn_probability']:.3f}", s["risk_tier"], reason)
    console.print(table)


def _promote_for_the_demo(settings: Settings, trained: Any) -> None:  # noqa: ANN401 - a TrainResult
    """Without a champion the loop cannot go on: make the challenger champion by hand, and say so.

    The quickstart shows the whole loop; on data too small for the model to beat its baselines the
    gate rightly refuses it, so the quickstart promotes it as a person would (`churn promote`), with
    the gate's reason recorded, and tells the user.
    """
    from mlflow import MlflowClient

    from training.registry import champion_version, promote

    client = MlflowClient(settings.mlflow_uri)
    if champion_version(client, trained.model_name) is not None:
        return
    reason = f"quickstart: promoted by hand to show the loop, although the gate refused it ({trained.decision.reason})"
    promote(client, trained.model_name, trained.version, by="quickstart", reason=reason)
    console.print(f"[yellow]note:[/] {reason}; on real data, train on more history before serving such a model")
