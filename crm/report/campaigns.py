"""The ops report's campaign section: measured effects per action (pooled over the evaluated
campaigns, ranked by net value), the newest campaign's effects per segment, and their figure.

Pure apart from `campaign_context`, which reads the workspace's evaluations.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from core.settings import Settings
from crm.campaigns.evaluation import action_table, read_evaluations
from crm.early_warning import ACTION, SEGMENT

MIN_SHOWN = 30
"""A cell is drawn when both its arms hold this many customers (fewer: its interval means little)."""
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


def effects_figure(
    actions: pd.DataFrame, segments: pd.DataFrame | None, level: float, actions_title: str = "pooled over campaigns"
) -> Figure:
    """Churn reduction (intent to treat) with its interval: per action pooled (left), per action and segment (right).

    Cells whose arms hold fewer than `MIN_SHOWN` customers are left out of the figure (the tables keep them).

    Args:
        actions: `crm.campaigns.evaluation.action_table`.
        segments: The newest campaign's effects per action and segment; None leaves the right panel out.
        level: Confidence level of the intervals (in the axis label).
    """
    actions = actions[(actions["treatment_n"] >= MIN_SHOWN) & (actions["control_n"] >= MIN_SHOWN)]
    if segments is not None:
        segments = segments[(segments["treatment_n"] >= MIN_SHOWN) & (segments["control_n"] >= MIN_SHOWN)]
    panels = 2 if segments is not None and not segments.empty else 1
    height = max(2.6, 0.34 * max(len(actions), len(segments) if panels == 2 and segments is not None else 0) + 1.4)
    fig = Figure(figsize=(7.0 * panels, height), layout="constrained")
    tables: list[tuple[pd.DataFrame, list[str], str]] = [
        (actions, [str(a) for a in actions[ACTION]], f"per action, {actions_title}")
    ]
    if panels == 2 and segments is not None:
        labels = [f"{a} · {s}" for a, s in zip(segments[ACTION], segments[SEGMENT], strict=True)]
        tables.append((segments, labels, "per action and segment"))
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
    uplift = uplift_context(settings)
    if not evaluations:
        return uplift | {
            "campaigns": [],
            "campaign_action_rows": [],
            "campaign_segment_rows": [],
            "newest": None,
            "level": 0.95,
            "campaign_image": None,
            "min_arm": settings.crm.campaigns.min_arm_customers,
        }
    newest = evaluations[-1]
    level = float(newest.get("level", 0.95))
    actions = action_table(evaluations, level)
    segments = pd.DataFrame(newest["by_segment"])
    for column in segments.columns:
        if column not in (ACTION, SEGMENT):
            segments[column] = pd.to_numeric(segments[column], errors="coerce")
    return uplift | {
        "campaigns": [e["campaign_id"] for e in evaluations],
        "campaign_action_rows": list(actions.itertuples(name="Row")),
        "campaign_segment_rows": list(segments.itertuples(name="Row")),
        "newest": newest,
        "level": level,
        "campaign_image": image(effects_figure(actions, segments, level)),
        "min_arm": settings.crm.campaigns.min_arm_customers,
    }


QINI_LABELS = {
    "uplift": "by expected uplift (T-learner)",
    "churn_probability": "by churn probability",
    "random": "at random",
}


def qini_figure(curves: dict[str, pd.DataFrame], held_out: str) -> Figure:
    """Qini curves on the held-out customers: churners avoided against the share targeted, per ranking."""
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    colours = {"uplift": _GOOD, "churn_probability": "#1f77b4", "random": _ZERO}
    for name, curve in curves.items():
        ax.plot(curve["share"], curve["avoided"], color=colours.get(name), label=QINI_LABELS.get(name, name))
    ends = next(iter(curves.values()))["avoided"].iloc[-1] if curves else 0.0
    ax.plot([0, 1], [0, ends], ls="--", color="black", lw=0.8, label="random targeting (expected)")
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlabel("share of the held-out customers targeted, best first")
    ax.set_ylabel("churners avoided (Qini)")
    ax.set_title(f"Qini curves on {held_out}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, loc="upper left")
    return fig


def uplift_context(settings: Settings) -> dict[str, Any]:
    """The uplift model's figures for the campaign section (`uplift` None when none was trained)."""
    from crm.campaigns.store import campaigns_root, read_json
    from crm.campaigns.targeting import FOLDER, META

    path = campaigns_root(settings) / FOLDER / META
    if not path.exists():
        return {"uplift": None, "qini_image": None}
    meta = read_json(path)
    png = path.parent / "qini.png"
    image = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode() if png.exists() else None
    rows = [
        {"ranking": QINI_LABELS.get(name, name), "qini": value, "avoided": meta["avoided_at_30pct"].get(name)}
        for name, value in meta["qini"].items()
    ]
    return {"uplift": {**meta, "qini_rows": rows}, "qini_image": image}
