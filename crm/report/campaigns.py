"""The ops report's campaign section: measured effects per action (pooled over the evaluated
campaigns, ranked by net value), the newest campaign's effects per segment, and their figure.

Pure apart from `campaign_context`, which reads the workspace's evaluations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from core.settings import Settings
from crm.campaigns.evaluation import action_table, read_evaluations
from crm.early_warning import ACTION, SEGMENT

_ZERO = "#888888"
_GOOD = "#2e8b57"
_BAD = "#c0392b"


def _colour(low: float, high: float) -> str:
    """Green when the interval lies above zero, red below it, grey when it covers zero."""
    if np.isfinite(low) and low > 0:
        return _GOOD
    if np.isfinite(high) and high < 0:
        return _BAD
    return _ZERO


def effects_figure(actions: pd.DataFrame, segments: pd.DataFrame | None, level: float) -> Figure:
    """Churn reduction (intent to treat) with its interval: per action pooled (left), per action and segment (right).

    Args:
        actions: `crm.campaigns.evaluation.action_table`.
        segments: The newest campaign's effects per action and segment; None leaves the right panel out.
        level: Confidence level of the intervals (in the axis label).
    """
    panels = 2 if segments is not None and not segments.empty else 1
    height = max(2.6, 0.34 * max(len(actions), len(segments) if panels == 2 and segments is not None else 0) + 1.4)
    fig = Figure(figsize=(5.2 * panels, height), layout="constrained")
    tables: list[tuple[pd.DataFrame, list[str], str]] = [
        (actions, [str(a) for a in actions[ACTION]], "per action, pooled over campaigns")
    ]
    if panels == 2 and segments is not None:
        labels = [f"{a} · {s}" for a, s in zip(segments[ACTION], segments[SEGMENT], strict=True)]
        tables.append((segments, labels, "per action and segment, newest campaign"))
    for k, (table, labels, title) in enumerate(tables, start=1):
        ax = fig.add_subplot(1, panels, k)
        y = np.arange(len(table))[::-1]
        itt = table["itt"].to_numpy(dtype=float)
        low = table["itt_low"].to_numpy(dtype=float)
        high = table["itt_high"].to_numpy(dtype=float)
        for yi, mid, lo, hi in zip(y, itt, low, high, strict=True):
            colour = _colour(lo, hi)
            if np.isfinite(lo) and np.isfinite(hi):
                ax.plot([lo, hi], [yi, yi], color=colour, lw=2)
            ax.plot([mid], [yi], "o", color=colour)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, labels=labels)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
        ax.set_xlabel(f"churn reduction, treatment vs control ({level:.0%} interval)")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    return fig


def campaign_context(settings: Settings, image: Any) -> dict[str, Any]:  # noqa: ANN401 - a figure -> data URI
    """The campaign section's variables: the pooled action table, the newest campaign's segments, the figure.

    Args:
        settings: The profile (where the campaigns are).
        image: Turns a figure into an `<img>` source.

    Returns:
        campaigns (ids evaluated), campaign_action_rows, campaign_segment_rows, newest (its evaluation), level,
        campaign_image (None without evaluations).
    """
    evaluations = read_evaluations(settings)
    if not evaluations:
        return {
            "campaigns": [],
            "campaign_action_rows": [],
            "campaign_segment_rows": [],
            "newest": None,
            "level": 0.95,
            "campaign_image": None,
        }
    newest = evaluations[-1]
    level = float(newest.get("level", 0.95))
    actions = action_table(evaluations, level)
    segments = pd.DataFrame(newest["by_segment"])
    for column in segments.columns:
        if column not in (ACTION, SEGMENT):
            segments[column] = pd.to_numeric(segments[column], errors="coerce")
    return {
        "campaigns": [e["campaign_id"] for e in evaluations],
        "campaign_action_rows": list(actions.itertuples(name="Row")),
        "campaign_segment_rows": list(segments.itertuples(name="Row")),
        "newest": newest,
        "level": level,
        "campaign_image": image(effects_figure(actions, segments, level)),
    }
