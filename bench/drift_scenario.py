"""Drift detection over a year of generated data: detection delay and false-alarm rate.

Two workspaces with the same seed and size: one with the generator's drift from day `--drift-at`
(the event mix shifts and baskets grow by 30 %), one without. Each trains a champion as of day
`--as-of` (before the drift; `training.as_of`), then `churn monitor` runs in batch mode over
consecutive weekly windows up to the end of the year, each run acting as of its window's end
(`monitoring.backtest`), with the configured policy (`configs/default.yaml`). No retraining, so
every window is judged against the same champion.

Figures:
- detection delay: days from the drift start to the end of the first window with status drift;
- false-alarm rate: windows with status drift among the windows that hold no drifted data (all
  windows of the no-drift run, and those ending by the drift start in the drift run);
- time per monitoring run (Feast retrieval, scoring, Evidently report, HTML, MLflow).

Run: `.venv/bin/python bench/drift_scenario.py [--customers 5000] [--days 365] [--drift-at 200]
[--as-of 180] [--workdir DIR]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if __name__ == "__main__":
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

START = dt.date(2025, 1, 1)


def scenario(ws: Path, args: argparse.Namespace, drift: bool, console: Console) -> dict[str, Any]:
    """Build one workspace, train its champion as of `--as-of`, monitor every week; return the figures."""
    from core.settings import load_settings, parse_settings
    from features.generator.dataset import generate, write_generated
    from features.ingest import ingest
    from features.pipeline import apply_features, build_features
    from monitoring.backtest import backtest, detection_figures, windows
    from training.pipeline import train

    shutil.rmtree(ws, ignore_errors=True)
    tree = load_settings(env={}).model_dump(mode="json")
    tree["workspace"] = str(ws)
    tree["features"]["first_observation_after_days"] = 90  # past the longest window: no warm-up bias
    tree["training"] |= {"n_trials": args.trials, "as_of": (START + dt.timedelta(days=args.as_of)).isoformat()}
    settings = parse_settings(tree, "bench drift scenario", env={})
    started = time.perf_counter()
    data = generate(args.customers, args.days, seed=args.seed, drift_at=args.drift_at if drift else None)
    customers, events = write_generated(data, ws / "raw")
    ingest(settings, customers_path=customers, events_path=events)
    build_features(settings)
    apply_features(settings)
    prepared = time.perf_counter() - started
    started = time.perf_counter()
    trained = train(settings)
    train_s = time.perf_counter() - started
    origin = dt.datetime.combine(START, dt.time(), dt.UTC)
    week = dt.timedelta(days=7)
    spans = windows(origin + dt.timedelta(days=args.as_of) + week, origin + dt.timedelta(days=args.days), week, week)
    started = time.perf_counter()

    def show(result: Any) -> None:  # noqa: ANN401
        s = result.summary
        console.print(
            f"  {'drift' if drift else 'steady'} window ending day {(s.window_end - origin).days}: {s.status:7} "
            f"{s.features.drifted_columns}/{s.features.n_columns} features, {s.current_rows} rows"
        )

    results = backtest(settings, spans, on_run=show)
    per_run = (time.perf_counter() - started) / len(results)
    drift_start = origin + dt.timedelta(days=args.drift_at) if drift else None
    figures = detection_figures([r.summary for r in results], drift_start)
    return {
        "drift": drift,
        "windows": figures.windows,
        "clean_windows": figures.clean_windows,
        "false_alarms": figures.flagged_before,
        "false_alarm_rate": figures.false_alarm_rate,
        "delay_days": figures.delay_days,
        "rows_per_window": sum(r.summary.current_rows for r in results) / len(results),
        "seconds_per_run": per_run,
        "prepare_s": prepared,
        "train_s": train_s,
        "champion_test_auc": trained.metrics.get("test_roc_auc"),
        "statuses": {(r.summary.window_end - origin).days: r.summary.status for r in results},
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--drift-at", type=int, default=200)
    parser.add_argument("--as-of", type=int, default=180, help="day the champion is trained as of")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path("bench/results/drift-scenario"))
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run both scenarios and print the table."""
    args = parse_args(argv)
    console = Console()
    runs = [scenario(args.workdir / name, args, drift, console) for name, drift in (("drift", True), ("steady", False))]
    title = f"Drift detection: {args.customers:,} customers x {args.days} days, drift at day {args.drift_at}"
    table = Table(title=title)
    for column in ("run", "windows", "false alarms", "false-alarm rate", "detection delay", "rows/window", "s/run"):
        table.add_column(column)
    for r in runs:
        table.add_row(
            "drift injected" if r["drift"] else "no drift",
            str(r["windows"]),
            f"{r['false_alarms']} of {r['clean_windows']}",
            f"{r['false_alarm_rate']:.0%}",
            "-" if not r["drift"] else (f"{r['delay_days']:.0f} days" if r["delay_days"] is not None else "never"),
            f"{r['rows_per_window']:,.0f}",
            f"{r['seconds_per_run']:.1f}",
        )
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2, default=str))


if __name__ == "__main__":
    main()
