"""Backtests of the monitor: consecutive windows over history, and the figures ops ask about.

`backtest` runs `run_monitor` window after window (each run acting as of its window's end, so
labels and retraining see only what was known then), which is how the drift scenario test and
`bench/drift_scenario.py` measure detection delay and false alarms on generated data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.settings import Settings
from monitoring.current import Mode, Window
from monitoring.jobs import MonitorResult, Retrainer, run_monitor
from monitoring.summary import MonitorSummary


def windows(first_end: dt.datetime, last_end: dt.datetime, length: dt.timedelta, step: dt.timedelta) -> list[Window]:
    """Windows of `length` whose ends run from `first_end` to `last_end` (inclusive) every `step`."""
    if step <= dt.timedelta(0) or length <= dt.timedelta(0):
        raise ValueError("window length and step must be positive")
    out, end = [], first_end
    while end <= last_end:
        out.append(Window(end - length, end))
        end += step
    return out


def backtest(
    settings: Settings,
    spans: Sequence[Window],
    *,
    mode: Mode = "batch",
    retrainer: Retrainer | None = None,
    on_run: Callable[[MonitorResult], None] | None = None,
) -> list[MonitorResult]:
    """Monitor each window in turn, as of its end (see the module docstring)."""
    results = []
    for window in spans:
        result = run_monitor(settings, window, mode=mode, retrainer=retrainer, backtest=True)
        results.append(result)
        if on_run is not None:
            on_run(result)
    return results


@dataclass(frozen=True)
class DetectionFigures:
    """How a monitor did on a run with a known drift start (or none)."""

    windows: int
    flagged_before: int
    """Windows ending at or before the drift start that were flagged: false alarms."""
    clean_windows: int
    """Windows ending at or before the drift start (all windows when there is no drift)."""
    first_flag_after: dt.datetime | None
    """End of the first flagged window that contains drifted data."""
    delay_days: float | None
    """first_flag_after - drift start, in days; None when the drift was never flagged."""

    @property
    def false_alarm_rate(self) -> float:
        """Flagged clean windows / clean windows (0 when there are none)."""
        return self.flagged_before / self.clean_windows if self.clean_windows else 0.0


def detection_figures(summaries: Sequence[MonitorSummary], drift_start: dt.datetime | None) -> DetectionFigures:
    """Detection delay and false alarms of runs over windows; "flagged" means status drift.

    Args:
        summaries: The runs, any order.
        drift_start: When the drift began; None for a run without drift (every window is clean).
    """
    ordered = sorted(summaries, key=lambda s: s.window_end)
    clean = [s for s in ordered if drift_start is None or s.window_end <= drift_start]
    drifted = [s for s in ordered if drift_start is not None and s.window_end > drift_start]
    first = next((s for s in drifted if s.status == "drift"), None)
    return DetectionFigures(
        windows=len(ordered),
        flagged_before=sum(s.status == "drift" for s in clean),
        clean_windows=len(clean),
        first_flag_after=first.window_end if first else None,
        delay_days=(first.window_end - drift_start).total_seconds() / 86400 if first and drift_start else None,
    )
