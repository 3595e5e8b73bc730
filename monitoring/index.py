"""The report index: one static HTML page listing every monitoring run, newest first.

The page sits beside the runs' summaries in the reports folder (`index.html`) and links each run's
Evidently report and JSON summary by relative address, so the folder can be copied or served as is.
The page is `templates/index.html`, which extends core's `base.html` (`core.html.render`): the
shared stylesheet inlined, an inline SVG sparkline, no scripts, no external assets. Jinja2 escapes
every text from the summaries; links are percent-encoded file names (`_href`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from core.html import render
from core.io import write_atomic_text
from monitoring.summary import ColumnResult, Decision, MonitorSummary, Status, read_summaries, summary_path

INDEX_NAME = "index.html"
"""File name of the index page in the reports folder."""

TOP_COLUMNS = 3
"""How many drifted columns a run's row names."""

NO_RUNS = "No monitoring runs yet."
"""What the page says when the reports folder holds no summary."""

_DASH = "\u2013"
_ARROW = " \u2192 "

_STATUS_COLOURS: dict[Status, tuple[str, str]] = {
    "ok": ("#e3f4e8", "#1b6b34"),
    "warning": ("#fff1d6", "#8a5300"),
    "drift": ("#fde2e1", "#a61b1b"),
}
"""Status -> (background, text) colour of its badge and sparkline dot."""


def _href(name: str) -> str:
    """A relative address of a file in the reports folder (the template escapes it for the attribute).

    Every reserved character is percent-encoded (`safe=""`): a name with spaces, `#` or `?` still
    points at its file, and as `:` and `/` are encoded too, a hand-edited summary cannot turn its
    report link into a `javascript:` or remote address, nor into one outside the folder (`../`).
    """
    return quote(name, safe="")


def _summary_name(summary: MonitorSummary) -> str:
    """File name of a run's JSON summary in the reports folder."""
    return summary_path(Path("."), summary.run_id).name


def _version(version: str | None) -> str:
    """`v3` for a registry version number; other names as they are."""
    if version is None:
        return _DASH
    return f"v{version}" if version.isdigit() else version


def _when(moment: dt.datetime) -> str:
    """Minutes in UTC (aware times are converted); a midnight shows as the date alone."""
    utc = moment.astimezone(dt.UTC) if moment.tzinfo is not None else moment
    return utc.strftime("%Y-%m-%d") if utc.time() == dt.time() else utc.strftime("%Y-%m-%d %H:%M")


def _num(value: float | None, digits: int = 3) -> str:
    """`digits` decimals, or `digits` significant digits below 10**-digits (a tiny p-value); missing as '–'."""
    if value is None or not math.isfinite(value):
        return _DASH
    return f"{value:.{digits}g}" if abs(value) < 10**-digits else f"{value:.{digits}f}"


def flags_small_values(column: ColumnResult) -> bool:
    """Whether the column's test flags drift by a small value (a p-value) rather than a large one (a distance).

    Read off the test's own verdict: a p-value test drifts when its value is below the threshold, a
    distance when its value is at or above it.

    Args:
        column: One column's drift test.

    Returns:
        True for a p-value test, False for a distance.
    """
    return column.drifted == (column.value < column.threshold)


def severity(column: ColumnResult) -> float:
    """How far a column's drift figure is past its threshold: 1 at the threshold, above 1 when drifted.

    `value / threshold` for a distance, `threshold / value` for a p-value, so columns tested with
    different methods rank on one scale. A zero denominator gives infinity.

    Args:
        column: One column's drift test.

    Returns:
        The ratio, at least 0.
    """
    numerator, denominator = (
        (column.threshold, column.value) if flags_small_values(column) else (column.value, column.threshold)
    )
    if denominator <= 0:
        return math.inf if numerator > 0 else 1.0
    return max(numerator / denominator, 0.0)


def top_drifted(summary: MonitorSummary, n: int = TOP_COLUMNS) -> list[ColumnResult]:
    """The run's drifted columns furthest past their thresholds, most severe first.

    Args:
        summary: One monitoring run.
        n: At most this many columns.

    Returns:
        Up to `n` drifted columns (ties keep the summary's order).
    """
    drifted = [c for c in summary.features.columns if c.drifted]
    return sorted(drifted, key=severity, reverse=True)[:n]


def current_champion(summaries: Sequence[MonitorSummary]) -> str | None:
    """The champion after the newest run: its retraining's `champion_after`, else the version it monitored.

    Args:
        summaries: Monitoring runs, in any order.

    Returns:
        The model version, or None without runs.
    """
    if not summaries:
        return None
    newest = max(summaries, key=lambda s: s.run_id)
    if newest.retraining is not None and newest.retraining.champion_after is not None:
        return newest.retraining.champion_after
    return newest.model_version


@dataclass(frozen=True)
class _Dot:
    x: str
    y: str
    run: MonitorSummary


@dataclass(frozen=True)
class _Sparkline:
    """Drifted share per run, oldest to newest, as the points of an inline SVG (0 at the bottom, 1 at the top)."""

    width: int
    height: int
    line: str
    dots: list[_Dot]


def _sparkline(runs: Sequence[MonitorSummary], width: int = 180, height: int = 44) -> _Sparkline:
    pad = 4
    step = (width - 2 * pad) / max(len(runs) - 1, 1)
    dots = [
        _Dot(
            f"{pad + i * step:.1f}",
            f"{pad + (1 - min(max(s.features.drifted_share, 0.0), 1.0)) * (height - 2 * pad):.1f}",
            s,
        )
        for i, s in enumerate(runs)
    ]
    return _Sparkline(width, height, " ".join(f"{d.x},{d.y}" for d in dots), dots)


def describe_decision(decision: Decision) -> str:
    """The policy's verdict in a few words (without its reasons).

    Args:
        decision: A run's decision.

    Returns:
        `retrain`; `cool-down until <time>` when a rule fired during the cool-down; `no retraining`
        when a rule fired but neither holds; `nothing` when no rule fired.
    """
    if decision.retrain:
        return "retrain"
    if decision.cooldown_until is not None:
        return f"cool-down until {_when(decision.cooldown_until)}"
    return "no retraining" if decision.reasons else "nothing"


def render_index(summaries: Sequence[MonitorSummary], *, title: str = "Churn monitoring") -> str:
    """The index page of the monitoring runs.

    Args:
        summaries: The runs, in any order (listed newest first by run id).
        title: Page title and heading.

    Returns:
        A self-contained HTML document; every text from the summaries is escaped.
    """
    runs = sorted(summaries, key=lambda s: s.run_id)
    return render(
        "monitoring",
        "index.html",
        title=title,
        wide=True,
        runs=runs,
        retrainings=[s.retraining for s in runs if s.retraining is not None],
        champion=current_champion(runs),
        sparkline=_sparkline(runs) if runs else None,
        no_runs=NO_RUNS,
        status_colours=_STATUS_COLOURS,
        arrow=_ARROW,
        dash=_DASH,
        when=_when,
        num=_num,
        version=_version,
        href=_href,
        summary_name=_summary_name,
        top_drifted=top_drifted,
        describe_decision=describe_decision,
    )


def write_index(reports_dir: Path) -> Path:
    """Write `index.html` of the runs in `reports_dir`, atomically (a reader never sees half a page).

    Args:
        reports_dir: The folder of the runs' summaries and reports; created if missing.

    Returns:
        The path of the index page.

    Raises:
        ValueError: A summary file does not match the schema (the message names the file); the
            previous index, if any, is left as it was.
    """
    page = render_index(read_summaries(reports_dir))
    return write_atomic_text(page, reports_dir / INDEX_NAME)
