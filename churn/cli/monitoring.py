"""`churn monitor`: drift of a window against the champion's training sample, and the policy's verdict."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer

from churn.cli.common import ConfigOption, console, fail, load_context, require_registry

app = typer.Typer()


@app.command()
def monitor(
    window: Annotated[
        str | None,
        typer.Option(help="Window length before --end (or now): 7d, 36h, 2w. Default: monitoring.window_days."),
    ] = None,
    start: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Window start (UTC midnight); default: end - window."),
    ] = None,
    end: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Window end (UTC midnight): the run acts as of this date (backtest)."),
    ] = None,
    mode: Annotated[
        str | None, typer.Option(help="serving (prediction log), batch (feature snapshots) or auto.")
    ] = None,
    retrain_on_drift: Annotated[
        bool, typer.Option("--retrain-on-drift", help="On a retrain decision: fresh features, a challenger, the gate.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Drift of a window's data and scores vs the champion's training sample (Evidently), and the policy's verdict.

    Writes an HTML report and a JSON summary per run to the reports folder, refreshes its
    index.html, adds the run to the Evidently workspace and records it in MLflow. With
    --retrain-on-drift, a "retrain" decision trains a challenger and runs the promotion gate.

    Example: churn monitor --window 7d --retrain-on-drift
    """
    # Options and config are checked before Feast, MLflow and Evidently load (seconds of imports).
    if mode is not None and mode not in ("auto", "serving", "batch"):
        raise fail(f"--mode {mode!r}: expected serving, batch or auto", "run `churn monitor --help` for the options")
    ctx = load_context(config, "monitor")
    settings = ctx.settings
    from monitoring.policy import parse_window

    try:
        length = parse_window(window) if window else dt.timedelta(days=settings.monitoring.window_days)
    except ValueError as exc:
        raise fail(f"--window: {exc}", "run `churn monitor --help` for the options") from None
    backtest = end is not None
    stop = end.replace(tzinfo=dt.UTC) if end else dt.datetime.now(dt.UTC)
    begin = start.replace(tzinfo=dt.UTC) if start else stop - length
    if begin >= stop:
        raise fail(
            f"--start {begin:%Y-%m-%d} is not before the window's end {stop:%Y-%m-%d %H:%M}",
            "run `churn monitor --help` for the options",
        )
    require_registry(settings)
    from churn.loop import retrainer_for
    from model.champion import NoChampionError
    from monitoring.current import Window
    from monitoring.jobs import run_monitor

    try:
        with console.status("monitoring") as status:
            result = run_monitor(
                settings,
                Window(begin, stop),
                mode=mode,  # type: ignore[arg-type]
                retrainer=retrainer_for(settings) if retrain_on_drift else None,
                backtest=backtest,
                on_step=lambda text: status.update(text),
            )
    except (NoChampionError, FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    _print_monitor(result)


def _print_monitor(result: Any) -> None:  # noqa: ANN401
    s = result.summary
    colour = {"ok": "green", "warning": "yellow", "drift": "red"}[s.status]
    console.print(
        f"[bold {colour}]{s.status}[/] {s.mode} mode, "
        f"{s.window_start:%Y-%m-%d %H:%M} .. {s.window_end:%Y-%m-%d %H:%M}, "
        f"champion v{s.model_version}: {s.current_rows:,} rows; {s.features.drifted_columns}/{s.features.n_columns} "
        "features drifted"
        + (f" ({len(s.features.untested)} cumulative not tested)" if s.features.untested else "")
        + (f"; prediction drift {s.prediction.value:.3f}" if s.prediction else "")
        + (
            f"; AUC on matured labels {s.performance.roc_auc:.3f}"
            if s.performance and s.performance.roc_auc is not None
            else ""
        )
    )
    if s.freshness is not None:
        console.print(f"real-time path: {s.freshness.describe()}")
    d = s.decision
    verdict = (
        "retrain"
        if d.retrain
        else (f"cool-down until {d.cooldown_until:%Y-%m-%d}" if d.cooldown_until else "no action")
    )
    console.print(f"decision: {verdict}" + (f" ({'; '.join(d.reasons)})" if d.reasons else ""))
    if s.retraining is not None:
        r = s.retraining
        if r.error:
            console.print(f"[red]retraining failed:[/] {r.error}; champion stays v{r.champion_after}")
        else:
            console.print(
                f"retrained: run {r.training_run_id} -> v{r.challenger_version}: "
                f"{'promoted to champion' if r.promoted else 'champion kept'} ({r.gate_reason}); "
                f"champion v{r.champion_before} -> v{r.champion_after}"
            )
    console.print(f"report {result.html}\nsummary {result.summary_json}\nindex {result.index}")
