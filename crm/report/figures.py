"""The ops report's figures: `matplotlib.figure.Figure`s (no pyplot state) of its tables, and PNG bytes."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.dates import ConciseDateFormatter, DateFormatter, MonthLocator
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from core import names
from crm.early_warning import ACTION, RISK_TIER
from crm.report.tables import Trend, tier_order

_DPI = 110


def tier_colours(order: Sequence[str]) -> dict[str, Any]:
    """A colour per tier, red for the highest tier to green for the lowest."""
    cmap = LinearSegmentedColormap.from_list("tiers", ["#c0392b", "#e67e22", "#2e8b57"])
    spots = np.linspace(0.0, 1.0, len(order)) if len(order) > 1 else np.array([0.0])
    return {tier: cmap(float(spot)) for tier, spot in zip(order, spots, strict=True)}


def trend_figure(trend: Trend) -> Figure:
    """Churn rate per period (left axis) and its annualised value (right axis)."""
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax = fig.add_subplot()
    table = trend.table
    x = pd.to_datetime(table["period"])
    (rate_line,) = ax.plot(x, table["churn_rate"], marker="o", color="#1f77b4", label=trend.rate_label)
    ax.set_ylabel(trend.rate_label)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.set_ylim(bottom=0, top=max(float(table["churn_rate"].max()) * 1.25, 0.01))
    yearly = ax.twinx()
    (year_line,) = yearly.plot(x, table["annualised"], ls="--", marker=".", color="#d62728", label="annualised")
    yearly.set_ylabel("annualised churn rate")
    yearly.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    yearly.set_ylim(bottom=0, top=max(float(table["annualised"].max()) * 1.25, 0.01))
    if trend.basis == "monthly":
        ax.xaxis.set_major_locator(MonthLocator(interval=max(1, math.ceil(len(table) / 12))))
        ax.xaxis.set_major_formatter(DateFormatter("%b %Y"))
        ax.set_xlabel("month")
        ax.set_title("Contractual churn per month")
    else:
        ax.xaxis.set_major_formatter(ConciseDateFormatter(ax.xaxis.get_major_locator()))
        ax.set_xlabel("observation date")
        ax.set_title(f"Share of customers churning within {trend.horizon_days} days of each observation date")
    ax.grid(alpha=0.3)
    ax.legend(handles=[rate_line, year_line], loc="upper left", frameon=False)
    return fig


def retention_figure(table: pd.DataFrame, contractual: bool) -> Figure:
    """Annotated heatmap of cohort retention: cohorts down, months since signup across, % in the cells."""
    values = table.to_numpy(dtype=float)
    rows, cols = values.shape
    fig = Figure(figsize=(max(6.0, 0.62 * cols + 2.8), 0.36 * rows + 1.7), layout="constrained")
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["YlGnBu"].with_extremes(bad="white")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for i in range(rows):
        for j in range(cols):
            v = values[i, j]
            if np.isfinite(v):
                ax.text(j, i, f"{v:.0%}", ha="center", va="center", fontsize=8, color="white" if v > 0.6 else "black")
    ax.set_xticks(range(cols), labels=[str(c) for c in table.columns])
    ax.set_yticks(range(rows), labels=[str(c) for c in table.index])
    ax.set_xlabel("months since signup")
    ax.set_ylabel("signup cohort")
    what = "not churned yet" if contractual else "active (any event) in the month"
    ax.set_title(f"Share of each signup cohort retained: {what}")
    bar = fig.colorbar(image, ax=ax, format=PercentFormatter(1.0, decimals=0), fraction=0.04)
    bar.set_label("retained")
    return fig


def risk_figure(alerts: pd.DataFrame, tiers: Mapping[str, float]) -> Figure:
    """Histogram of churn probabilities, stacked by tier, with the tier cut-offs as labelled lines."""
    order = tier_order(tiers, alerts[RISK_TIER].dropna())
    colours = tier_colours(order)
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax = fig.add_subplot()
    stack = list(reversed(order))  # lowest tier at the bottom
    probability = alerts[names.PREDICTION].astype(float)
    data = [probability[alerts[RISK_TIER] == t].to_numpy() for t in stack]
    ax.hist(data, bins=[i / 40 for i in range(41)], stacked=True, color=[colours[t] for t in stack], label=stack)
    for name, floor in tiers.items():
        if 0 < floor < 1:
            ax.axvline(floor, color="black", ls="--", lw=1)
            ax.text(
                floor, 0.97, f" {name} \u2265 {floor:.2f}", transform=ax.get_xaxis_transform(), va="top", fontsize=9
            )
    ax.set_xlim(0, 1)
    ax.set_xlabel("churn probability")
    ax.set_ylabel("customers")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 2.5, 5, 10]))
    ax.set_title("Churn probability of the scored customers, by risk tier")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], title="risk tier", loc="upper right", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return fig


def segment_figure(segments: pd.DataFrame) -> Figure:
    """Two panels: customers per segment and revenue at risk per segment (same order)."""
    fig = Figure(figsize=(9, 0.34 * len(segments) + 1.6), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(segments))
    left.barh(y, segments["customers"], color="#4c72b0")
    left.set_yticks(y, labels=list(segments.index))
    left.invert_yaxis()
    left.set_xlabel("customers")
    left.set_ylabel("segment")
    left.set_title("Customers per segment")
    right.barh(y, segments["revenue_at_risk"], color="#c44e52")
    right.set_xlabel("revenue at risk (expected yearly loss)")
    right.set_title("Revenue at risk per segment")
    right.xaxis.set_major_formatter(lambda v, _pos: f"{v:,.0f}")
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    return fig


def volume_figure(alerts: pd.DataFrame, tiers: Mapping[str, float]) -> Figure:
    """Two panels: customers per risk tier, and customers per recommended action stacked by tier."""
    order = tier_order(tiers, alerts[RISK_TIER].dropna())
    colours = tier_colours(order)
    by_action = pd.crosstab(alerts[ACTION], alerts[RISK_TIER]).reindex(columns=order, fill_value=0)
    by_action = by_action.loc[by_action.sum(axis=1).sort_values(ascending=False).index]
    fig = Figure(figsize=(9, max(3.2, 0.34 * len(by_action) + 1.6)), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1, 2])
    counts = alerts[RISK_TIER].value_counts().reindex(order, fill_value=0)
    left.bar(range(len(order)), counts.to_numpy(), color=[colours[t] for t in order])
    left.set_xticks(range(len(order)), labels=order)
    left.set_xlabel("risk tier")
    left.set_ylabel("customers")
    left.set_title("Customers per risk tier")
    left.yaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 2.5, 5, 10]))
    y = np.arange(len(by_action))
    start = np.zeros(len(by_action))
    for tier in order:
        width = by_action[tier].to_numpy(dtype=float)
        right.barh(y, width, left=start, color=colours[tier], label=tier)
        start += width
    right.set_yticks(y, labels=[str(a) for a in by_action.index])
    right.invert_yaxis()
    right.set_xlabel("customers")
    right.set_ylabel("recommended action")
    right.set_title("Customers per action, by risk tier")
    right.legend(title="risk tier", frameon=False, loc="lower right")
    for ax in (left, right):
        ax.grid(axis="x" if ax is right else "y", alpha=0.3)
    return fig


def figure_png(fig: Figure) -> bytes:
    """A figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()
