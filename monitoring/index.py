"""The report index: one static HTML page listing every monitoring run, newest first.

The page sits beside the runs' summaries in the reports folder (`index.html`) and links each run's
Evidently report and JSON summary by relative address, so the folder can be copied or served as is.
It is self-contained: inline CSS and an inline SVG sparkline, no scripts, no external assets.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

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

_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#222;margin:0;background:#f6f7f9}
header,main{max-width:1500px;margin:0 auto;padding:0 24px}
header{padding-top:20px}
h1{margin:0 0 10px;font-size:26px}
section{background:#fff;border:1px solid #e3e6ea;border-radius:8px;padding:14px 18px;margin:16px 0}
.kpis{display:flex;flex-wrap:wrap;gap:12px;align-items:stretch}
.kpi{border:1px solid #e3e6ea;border-radius:6px;padding:8px 14px;background:#fff;min-width:130px}
.kpi .label{font-size:12px;color:#666;text-transform:uppercase;letter-spacing:.04em}
.kpi .value{font-size:22px;font-weight:600;margin-top:2px}
.kpi svg{display:block;margin-top:4px}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{padding:5px 8px;border-bottom:1px solid #e8eaed;text-align:left;vertical-align:top}
th{background:#f0f2f5;font-weight:600;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:nth-child(even){background:#fafbfc}
ul{margin:2px 0 0;padding-left:16px}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-weight:600;font-size:12px}
.nowrap{white-space:nowrap}
.drifted{color:#a61b1b;font-weight:600}
.note{color:#666;font-size:12px}
.empty{font-size:16px;color:#8a4b00;background:#fff4e0;border:1px solid #f0d9a8;border-radius:6px;padding:10px 14px}
a{color:#1f5fa8}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _href(name: str) -> str:
    """A relative address of a file in the reports folder, escaped for an attribute.

    Every reserved character is percent-encoded (`safe=""`): a name with spaces, `#` or `?` still
    points at its file, and as `:` and `/` are encoded too, a hand-edited summary cannot turn its
    report link into a `javascript:` or remote address, nor into one outside the folder (`../`).
    """
    return _e(quote(name, safe=""))


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


def _badge(status: Status) -> str:
    background, colour = _STATUS_COLOURS[status]
    return f'<span class="badge status-{status}" style="background:{background};color:{colour}">{_e(status)}</span>'


def _sparkline(runs: Sequence[MonitorSummary], width: int = 220, height: int = 44) -> str:
    """Drifted share per run, oldest to newest, as an inline SVG (0 at the bottom, 1 at the top)."""
    pad = 4
    step = (width - 2 * pad) / max(len(runs) - 1, 1)
    points = [
        (pad + i * step, pad + (1 - min(max(s.features.drifted_share, 0.0), 1.0)) * (height - 2 * pad))
        for i, s in enumerate(runs)
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{_STATUS_COLOURS[s.status][1]}">'
        f"<title>{_e(s.run_id)}: {s.features.drifted_share:.0%} drifted</title></circle>"
        for (x, y), s in zip(points, runs, strict=True)
    )
    return (
        f'<svg class="sparkline" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Share of drifted columns per run, oldest to newest">'
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fafbfc"/>'
        f'<polyline points="{line}" fill="none" stroke="#5b6b7f" stroke-width="1.5"/>{dots}</svg>'
    )


def _kpi(label: str, value: str) -> str:
    """A labelled figure; `value` is HTML (escaped by the caller)."""
    ident = "kpi-" + "-".join(label.split())
    return (
        f'<div class="kpi"><div class="label">{_e(label)}</div><div class="value" id="{_e(ident)}">{value}</div></div>'
    )


def _header(runs: Sequence[MonitorSummary]) -> str:
    """Totals over the runs (oldest first) and the sparkline."""
    retrainings = [s.retraining for s in runs if s.retraining is not None]
    kpis = [
        _kpi("runs", f"{len(runs):,}"),
        _kpi("drift", f"{sum(s.status == 'drift' for s in runs):,}"),
        _kpi("warning", f"{sum(s.status == 'warning' for s in runs):,}"),
        _kpi("retrainings", f"{len(retrainings):,}"),
        _kpi("promotions", f"{sum(r.promoted for r in retrainings):,}"),
        _kpi("current champion", _e(_version(current_champion(runs)))),
    ]
    if runs:
        kpis.append(_kpi("drifted share per run", _sparkline(runs)))
    return f'<div class="kpis" id="totals">{"".join(kpis)}</div>'


def _drift_cell(summary: MonitorSummary) -> str:
    features = summary.features
    head = f'<span class="nowrap">{features.drifted_columns} of {features.n_columns}</span>'
    top = [
        f'<li title="{_e(c.method)}, threshold {_e(_num(c.threshold))}">{_e(c.column)} {_e(_num(c.value))}</li>'
        for c in top_drifted(summary)
    ]
    return head + (f"<ul>{''.join(top)}</ul>" if top else "")


def _prediction_cell(summary: MonitorSummary) -> str:
    p = summary.prediction
    if p is None:
        return _DASH
    title = f"{p.method}, threshold {_num(p.threshold)}; mean {_num(p.reference_mean)} -> {_num(p.current_mean)}"
    css = ' class="drifted"' if p.drifted else ""
    return f'<span{css} title="{_e(title)}">{_e(_num(p.value))}{" drifted" if p.drifted else ""}</span>'


def _performance_cell(summary: MonitorSummary) -> str:
    perf = summary.performance
    if perf is None:
        return '<span class="note">labels not matured</span>'
    auc = _num(perf.roc_auc) if perf.roc_auc is not None else "one class"
    drop = "" if perf.auc_drop is None else f"<br>drop {perf.auc_drop:+.3f}"
    labels = f"{perf.labelled_rows:,} labels"
    if perf.window_end is not None:
        labels += f", window ending {_when(perf.window_end)}"
    return f'{_e(auc)}{drop}<br><span class="note">{_e(labels)}</span>'


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


def _decision_cell(summary: MonitorSummary) -> str:
    d = summary.decision
    verdict = _e(describe_decision(d))
    reasons = "".join(f"<li>{_e(r)}</li>" for r in d.reasons)
    return (f"<strong>{verdict}</strong>" if d.retrain else verdict) + (f"<ul>{reasons}</ul>" if reasons else "")


def _retraining_cell(summary: MonitorSummary) -> str:
    r = summary.retraining
    if r is None:
        return _DASH
    run = f"run {r.training_run_id}" if r.training_run_id is not None else "no training run"
    if r.error is not None:
        return f'{_e(run)}{_e(_ARROW)}<span class="drifted">failed: {_e(r.error)}</span>'
    outcome = "promoted" if r.promoted else "kept"
    steps = [
        _e(run),
        _e(f"challenger {_version(r.challenger_version)}"),
        f"<strong>{outcome}</strong> ({_e(r.gate_reason)})",
        _e(f"champion {_version(r.champion_after)}"),
    ]
    return _e(_ARROW).join(steps)


def _row(summary: MonitorSummary) -> str:
    json_name = summary_path(Path("."), summary.run_id).name
    links = f'<a href="{_href(summary.html)}">report</a><br><a href="{_href(json_name)}">json</a>'
    window = f"{_when(summary.window_start)}{_ARROW}{_when(summary.window_end)}"
    cells = [
        f'<td class="nowrap">{_e(_when(summary.created))}</td>',
        f"<td>{_e(summary.mode)}</td>",
        f"<td>{_e(window)}</td>",
        f"<td>{_e(_version(summary.model_version))}</td>",
        f"<td>{_badge(summary.status)}</td>",
        f"<td>{_drift_cell(summary)}</td>",
        f'<td class="num">{_prediction_cell(summary)}</td>',
        f'<td class="num">{_performance_cell(summary)}</td>',
        f"<td>{_decision_cell(summary)}</td>",
        f"<td>{_retraining_cell(summary)}</td>",
        f'<td class="nowrap">{links}</td>',
    ]
    return f'<tr id="run-{_e(summary.run_id)}">{"".join(cells)}</tr>'


_HEADERS = (
    "Time",
    "Mode",
    "Window",
    "Model",
    "Status",
    "Drifted columns",
    "Prediction drift",
    "ROC AUC",
    "Decision",
    "Retraining",
    "Files",
)


def render_index(summaries: Sequence[MonitorSummary], *, title: str = "Churn monitoring") -> str:
    """The index page of the monitoring runs.

    Args:
        summaries: The runs, in any order (listed newest first by run id).
        title: Page title and heading.

    Returns:
        A self-contained HTML document; every text from the summaries is escaped.
    """
    runs = sorted(summaries, key=lambda s: s.run_id)
    if runs:
        head = "".join(f'<th scope="col">{_e(h)}</th>' for h in _HEADERS)
        rows = "".join(_row(s) for s in reversed(runs))
        body = f'<table id="runs"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
    else:
        body = f'<p class="empty" id="no-runs">{_e(NO_RUNS)}</p>'
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_e(title)}</h1>{_header(runs)}</header>"
        f"<main><section>{body}</section></main></body></html>\n"
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
