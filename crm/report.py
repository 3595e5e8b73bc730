"""The ops report: one self-contained HTML page on churn, risk and the CRM alert list.

Sections: headline figures, the churn-rate trend, cohort retention, the risk distribution, the
segment mix, alert volume per tier, segment and action, and the top alerts. Plots are PNGs made
with `matplotlib.figure.Figure` (no pyplot state) and embedded as base64; CSS is inline, there is
no JavaScript and nothing is fetched, so the file can be mailed or archived as it is.

The numbers and tables (`load_history`, `churn_trend`, `headline`, `volume_table`, `top_alerts`,
...) are pure functions over frames; the `*_figure` functions turn them into figures and the
`_render_*` helpers into HTML. `build_report` ties them together.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.dates import ConciseDateFormatter, DateFormatter, MonthLocator
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from core import names
from core.settings import Settings
from crm.early_warning import ACTION, EXPECTED_LOSS, RISK_TIER, RULE_HITS, SEGMENT
from crm.kpi import alert_volume, annualise, churn_by_observation, cohort_retention, monthly_churn, revenue_at_risk
from features.pipeline import FeaturePaths
from features.snapshots.inputs import event_day_range

SECTIONS: dict[str, str] = {
    "headline": "Headline figures",
    "churn-trend": "Churn-rate trend",
    "cohort-retention": "Cohort retention",
    "risk-distribution": "Risk distribution",
    "segment-mix": "Segment mix",
    "alert-volume": "Alert volume",
    "top-alerts": "Top alerts",
}
"""Section id (of its <h2>) -> title, in page order."""

TOP_ALERTS = 25
"""Rows of the top-alerts table."""

TREND_TABLE_ROWS = 12
"""The trend table shows the newest this many periods (the plot shows them all)."""

MAX_COHORTS = 24
"""The retention heatmap shows the newest this many signup cohorts."""

REASONS = "reasons"
AS_OF = "as_of"
MODEL_VERSION = "model_version"
REQUIRED_COLUMNS = (names.CUSTOMER_ID, names.PREDICTION, RISK_TIER, SEGMENT, ACTION, EXPECTED_LOSS)

NO_ALERTS = "No customers were scored: the alert list is empty."
_DPI = 110


# ---------------------------------------------------------------- numbers and tables (pure)


@dataclass(frozen=True)
class History:
    """What the workspace's clean data says about the past: customers, labels and the data's end."""

    customers: pd.DataFrame | None
    """The clean customers table (None when it is missing)."""
    labels: pd.DataFrame | None
    """Labels (event_timestamp, churned); None when not built yet."""
    activity: pd.DataFrame | None
    """One row per (customer, month with an event), event_timestamp = the month's first day; read only
    for activity retention (no churn dates)."""
    first_day: pd.Timestamp | None
    """First day with an event: the data starts here (months before it are not shown)."""
    last_day: pd.Timestamp | None
    """Last day with an event."""
    notes: tuple[str, ...] = ()
    """What was missing, for the page."""

    @property
    def contractual(self) -> bool:
        """Whether customers have churn dates (contractual churn)."""
        return has_churn_dates(self.customers)


def has_churn_dates(customers: pd.DataFrame | None) -> bool:
    """Whether a customers table has at least one churn date."""
    return (
        customers is not None
        and names.CHURN_DATE in customers.columns
        and bool(customers[names.CHURN_DATE].notna().any())
    )


def load_history(settings: Settings) -> History:
    """Read what the trend and retention sections need from the workspace's clean data and labels.

    Events are reduced (in DuckDB) to one row per customer and active month, and read only when
    customers have no churn dates. Missing files become notes, not errors.
    """
    paths = FeaturePaths.of(settings)
    notes: list[str] = []
    customers = pd.read_parquet(paths.clean_customers) if paths.clean_customers.exists() else None
    if customers is None:
        notes.append(f"{paths.clean_customers} does not exist: run `churn data ingest` first.")
    first_day = last_day = None
    if paths.clean_events.exists():
        try:
            first, last = event_day_range(paths.clean_events)
            first_day, last_day = pd.Timestamp(first), pd.Timestamp(last)
        except ValueError:
            notes.append("The event log is empty.")
    else:
        notes.append(f"{paths.clean_events} does not exist: run `churn data ingest` first.")
    labels = activity = None
    if paths.labels.exists():  # the trend without churn dates, or with too short a history for a month
        labels = pd.read_parquet(paths.labels, columns=[names.EVENT_TIMESTAMP, names.LABEL])
    elif not has_churn_dates(customers):
        notes.append(f"{paths.labels} does not exist: run `churn features build` first.")
    if not has_churn_dates(customers) and last_day is not None:
        activity = active_months(paths.clean_events)
    return History(customers, labels, activity, first_day, last_day, tuple(notes))


def active_months(events_path: Path) -> pd.DataFrame:
    """One row per customer and calendar month (UTC) with any event: customer_id, event_timestamp (month start)."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(
            f"""
            SELECT DISTINCT CAST({names.CUSTOMER_ID} AS VARCHAR) AS {names.CUSTOMER_ID},
                   CAST(date_trunc('month', {names.EVENT_TIMESTAMP}) AS TIMESTAMP) AS {names.EVENT_TIMESTAMP}
            FROM read_parquet(?)
            """,
            [str(events_path)],
        ).df()
    finally:
        con.close()


@dataclass(frozen=True)
class Trend:
    """Churn rate per period, with how it was measured."""

    table: pd.DataFrame
    """Columns period (Timestamp), customers, churned, churn_rate, annualised; oldest first."""
    basis: Literal["monthly", "observation", "none"]
    """monthly: contractual churn per calendar month; observation: labels per observation date."""
    horizon_days: int
    """For `observation`: the label horizon the rates are over."""

    def period_label(self, period: pd.Timestamp) -> str:
        """A period as the table shows it: 'Jun 2025' per month, the date per observation."""
        return f"{period:%b %Y}" if self.basis == "monthly" else f"{period:%Y-%m-%d}"

    @property
    def rate_label(self) -> str:
        """What churn_rate measures."""
        if self.basis == "monthly":
            return "churn rate in the month"
        return f"churned within {self.horizon_days} days"


def first_month(history: History) -> pd.Timestamp | None:
    """The first calendar month the event data reaches into (its first day)."""
    return history.first_day.to_period("M").to_timestamp() if history.first_day is not None else None


def churn_trend(history: History, horizon_days: int) -> Trend:
    """Contractual churn per month when customers have churn dates, else churn per observation date from labels.

    Months before the first month with events are left out: an export holds the customers of the
    data's period, so those who churned before it are missing and the rate would read 0.
    """
    columns = ["period", "customers", "churned", "churn_rate", "annualised"]
    if history.contractual and history.customers is not None:
        monthly = monthly_churn(history.customers, history.last_day)
        start = first_month(history)
        if start is not None:
            monthly = monthly[monthly["month"] >= start].reset_index(drop=True)
        if not monthly.empty:
            return Trend(monthly.rename(columns={"month": "period"})[columns], "monthly", horizon_days)
    if history.labels is not None and not history.labels.empty:
        observed = churn_by_observation(history.labels, horizon_days)
        table = observed.rename(columns={names.OBSERVATION_DATE: "period"})[columns]
        return Trend(table.sort_values("period").reset_index(drop=True), "observation", horizon_days)
    return Trend(pd.DataFrame(columns=columns), "none", horizon_days)


def retention(history: History, max_months: int = 12, max_cohorts: int = MAX_COHORTS) -> pd.DataFrame | None:
    """Cohort retention (see `crm.kpi.cohort_retention`) of the newest `max_cohorts` cohorts; None without data.

    Cells of months before the first month with events are blanked (see `churn_trend`), and
    cohorts left without a cell dropped.
    """
    if history.customers is None or history.customers.empty or history.last_day is None:
        return None
    if not history.contractual and history.activity is None:
        return None
    table = cohort_retention(history.customers, history.activity, history.last_day, max_months=max_months)
    if table.empty:
        return None
    table = table.reindex(columns=sorted(table.columns))
    start = first_month(history)
    if start is not None:
        cohorts = pd.PeriodIndex(table.index, freq="M")
        for k in table.columns:
            table.loc[(cohorts + int(k)).to_timestamp() < start, k] = np.nan
        table = table.dropna(how="all")
    return None if table.empty else table.tail(max_cohorts)


def tier_order(tiers: Mapping[str, float], present: Iterable[str] = ()) -> list[str]:
    """Tier names from the highest cut-off down, then any tier the alerts have that the settings lack."""
    ordered = [name for name, _ in sorted(tiers.items(), key=lambda kv: kv[1], reverse=True)]
    return ordered + sorted({str(t) for t in present} - set(ordered))


@dataclass(frozen=True)
class Headline:
    """The figures at the top of the page."""

    customers: int
    as_of: str
    model_version: str
    revenue_at_risk: float
    tiers: pd.DataFrame
    """Per tier (highest first): cut_off, customers, share."""
    churn_period: str | None
    """What the current churn rate covers, e.g. 'Jun 2025'; None without history."""
    churn_rate: float | None
    annualised: float | None
    predicted_rate: float | None
    """Mean churn probability: the expected share churning within the label horizon."""
    predicted_annualised: float | None


def _distinct(values: pd.Series) -> str:
    seen = sorted({str(v) for v in values.dropna()})
    return ", ".join(seen) if seen else "unknown"


def headline(alerts: pd.DataFrame, trend: Trend, tiers: Mapping[str, float], horizon_days: int) -> Headline:
    """Customers scored, as-of date, model version, revenue at risk, tier shares and churn rates."""
    order = tier_order(tiers, alerts[RISK_TIER].dropna())
    counts = alerts[RISK_TIER].value_counts().reindex(order, fill_value=0)
    n = len(alerts)
    tier_table = pd.DataFrame(
        {
            "cut_off": [tiers.get(t, math.nan) for t in order],
            "customers": counts.to_numpy(),
            "share": counts.to_numpy() / n if n else np.zeros(len(order)),
        },
        index=pd.Index(order, name=RISK_TIER),
    )
    as_of = str(max(alerts[AS_OF].dropna())) if AS_OF in alerts and alerts[AS_OF].notna().any() else "unknown"
    version = _distinct(alerts[MODEL_VERSION]) if MODEL_VERSION in alerts else "unknown"
    period = rate = yearly = None
    if not trend.table.empty:
        last = trend.table.iloc[-1]
        period, rate, yearly = trend.period_label(last["period"]), float(last["churn_rate"]), float(last["annualised"])
    predicted = float(alerts[names.PREDICTION].mean()) if n else None
    predicted_yearly = float(annualise(predicted, horizon_days)) if predicted is not None else None
    return Headline(
        customers=n,
        as_of=as_of,
        model_version=version,
        revenue_at_risk=float(revenue_at_risk(alerts)) if n else 0.0,
        tiers=tier_table,
        churn_period=period,
        churn_rate=rate,
        annualised=yearly,
        predicted_rate=predicted,
        predicted_annualised=predicted_yearly,
    )


def volume_table(alerts: pd.DataFrame, by: str, order: Sequence[str] | None = None) -> pd.DataFrame:
    """Customers and revenue at risk per value of `by`.

    Args:
        alerts: The alert list.
        by: risk_tier, segment, action or a layer column.
        order: Row order (values missing from the alerts get zeros); by customers, most first, when None.

    Returns:
        Index: the values of `by`; columns customers, share, revenue_at_risk, risk_share, mean_probability.
    """
    counts = alert_volume(alerts, by)
    risk = revenue_at_risk(alerts, by)
    assert isinstance(risk, pd.Series)
    frame = pd.DataFrame({"customers": counts, "revenue_at_risk": risk}).fillna(0.0)
    frame["customers"] = frame["customers"].astype(int)
    frame["mean_probability"] = alerts.groupby(by)[names.PREDICTION].mean()
    frame = frame.reindex(order, fill_value=0) if order is not None else frame.sort_values("customers", ascending=False)
    total, total_risk = frame["customers"].sum(), frame["revenue_at_risk"].sum()
    frame["share"] = frame["customers"] / total if total else 0.0
    frame["risk_share"] = frame["revenue_at_risk"] / total_risk if total_risk else 0.0
    frame.index = frame.index.map(str)
    frame.index.name = by
    return frame[["customers", "share", "revenue_at_risk", "risk_share", "mean_probability"]]


def _records(value: Any) -> list[Any]:  # noqa: ANN401 - lists, arrays, JSON text or missing
    """A nested list column's cell as a list (Parquet gives arrays, CSV gives JSON text)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [value]
    return list(value) if isinstance(value, Iterable) and not isinstance(value, Mapping) else [value]


def format_value(value: Any) -> str:  # noqa: ANN401 - a feature value
    """A trigger value as short text: -0.6234 -> '-0.62', 45.0 -> '45', missing -> 'n/a'."""
    if value is None or value is pd.NA:
        return "n/a"
    if isinstance(value, int | float | np.number):
        number = float(value)
        return "n/a" if math.isnan(number) else f"{round(number, 2):g}"
    return str(value)


def format_rule_hit(hit: Any) -> str:  # noqa: ANN401 - a dict from the alert list
    """A rule hit as 'rule (feature=value, ...)'."""
    if not isinstance(hit, Mapping):
        return str(hit)
    values = hit.get("values") or {}
    shown = ", ".join(f"{k}={format_value(v)}" for k, v in values.items() if v is not None)
    return f"{hit.get('rule', '?')} ({shown})" if shown else str(hit.get("rule", "?"))


def reason_phrases(reasons: Any) -> list[str]:  # noqa: ANN401 - the alert list's reasons cell
    """The phrases of a customer's reasons, in order."""
    out = []
    for reason in _records(reasons):
        if isinstance(reason, Mapping):
            out.append(str(reason.get("phrase") or reason.get("feature") or ""))
        else:
            out.append(str(reason))
    return [p for p in out if p]


def top_alerts(alerts: pd.DataFrame, n: int = TOP_ALERTS) -> pd.DataFrame:
    """The `n` customers with the highest expected loss (ties: higher probability first).

    Returns:
        Columns customer_id, churn_probability, risk_tier, segment, action, expected_loss, reasons
        (list of phrases) and rule_hits (list of 'rule (feature=value)' texts).
    """
    top = alerts.sort_values([EXPECTED_LOSS, names.PREDICTION], ascending=False, kind="stable").head(n)
    out = top[[names.CUSTOMER_ID, names.PREDICTION, RISK_TIER, SEGMENT, ACTION, EXPECTED_LOSS]].copy()
    out[REASONS] = [reason_phrases(r) for r in top[REASONS]] if REASONS in top else [[] for _ in range(len(top))]
    hits = top[RULE_HITS] if RULE_HITS in top else pd.Series([[]] * len(top), index=top.index)
    out[RULE_HITS] = [[format_rule_hit(h) for h in _records(cell)] for cell in hits]
    return out.reset_index(drop=True)


# ---------------------------------------------------------------- figures


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


# ---------------------------------------------------------------- HTML


_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#222;margin:0;background:#f6f7f9}
main,header{max-width:1040px;margin:0 auto;padding:0 24px}
header{padding-top:20px}
h1{margin:0 0 4px;font-size:26px}
h2{margin:0 0 12px;font-size:20px;border-bottom:2px solid #dde1e6;padding-bottom:6px}
h3{font-size:15px;margin:14px 0 6px}
section{background:#fff;border:1px solid #e3e6ea;border-radius:8px;padding:18px 22px;margin:18px 0}
.meta{color:#555;margin:0 0 8px}
nav a{margin-right:14px;color:#1f5fa8;text-decoration:none;font-size:14px}
.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:12px}
.kpi{border:1px solid #e3e6ea;border-radius:6px;padding:10px 14px;background:#fafbfc}
.kpi .label{font-size:12px;color:#666;text-transform:uppercase;letter-spacing:.04em}
.kpi .value{font-size:24px;font-weight:600;margin-top:2px}
.kpi .sub{font-size:12px;color:#666}
.chip{display:inline-block;padding:2px 8px;border-radius:10px;margin:2px 6px 2px 0;font-size:13px;color:#111}
table{border-collapse:collapse;font-size:13px;margin:6px 0 10px}
th,td{padding:4px 10px;border-bottom:1px solid #e8eaed;text-align:left;vertical-align:top}
th{background:#f0f2f5;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#fafbfc}
.tables{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
img{max-width:100%;height:auto;display:block;margin:6px 0}
.note{color:#555;font-size:13px}
.empty{font-size:16px;color:#8a4b00;background:#fff4e0;border:1px solid #f0d9a8;border-radius:6px;padding:10px 14px}
small{color:#666}
"""


@dataclass(frozen=True)
class Column:
    """A table column: source key, header, how to format a cell, and whether it is a number."""

    key: str
    header: str
    format: Callable[[Any], str | list[str]] = str
    numeric: bool = False


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _pct(value: float | None, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "\u2013"
    return f"{value:.{digits}%}"


def _money(value: float) -> str:
    return f"{value:,.0f}"


def _prob(value: float) -> str:
    return f"{value:.2f}"


def _count(value: float) -> str:
    return f"{int(value):,}"


def _render_table(frame: pd.DataFrame, columns: Sequence[Column], table_id: str | None = None) -> str:
    """An HTML table of `frame`'s rows (index available as key '__index__'); every cell escaped."""
    num = ' class="num"'
    head = "".join(f'<th{num if c.numeric else ""} scope="col">{_e(c.header)}</th>' for c in columns)
    rows = []
    for index, record in zip(frame.index, frame.to_dict("records"), strict=True):
        cells = []
        for c in columns:
            raw = index if c.key == "__index__" else record[c.key]
            shown = c.format(raw)
            text = "<br>".join(_e(s) for s in shown) if isinstance(shown, list) else _e(shown)
            cells.append(f"<td{num if c.numeric else ''}>{text}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    ident = f' id="{_e(table_id)}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _render_image(fig: Figure, alt: str) -> str:
    data = base64.b64encode(figure_png(fig)).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _section(section_id: str, body: str) -> str:
    heading = f'<h2 id="{section_id}">{_e(SECTIONS[section_id])}</h2>'
    return f'<section aria-labelledby="{section_id}">{heading}{body}</section>'


def _note(text: str, css: str = "note") -> str:
    return f'<p class="{css}">{_e(text)}</p>'


def _kpi(kpi_id: str, label: str, value: str, sub: str = "") -> str:
    extra = f'<div class="sub">{_e(sub)}</div>' if sub else ""
    return (
        f'<div class="kpi" id="kpi-{kpi_id}"><div class="label">{_e(label)}</div>'
        f'<div class="value">{_e(value)}</div>{extra}</div>'
    )


def _render_headline(head: Headline, trend: Trend, horizon_days: int) -> str:
    body = _note(NO_ALERTS, "empty") if head.customers == 0 else ""
    cards = [
        _kpi("customers", "Customers scored", f"{head.customers:,}"),
        _kpi("as-of", "As of", head.as_of, "newest feature snapshot scored"),
        _kpi("model", "Model version", head.model_version),
        _kpi("revenue-at-risk", "Revenue at risk", _money(head.revenue_at_risk), "sum of expected yearly loss"),
    ]
    if head.churn_rate is not None:
        label = "Churn rate" if trend.basis == "monthly" else f"Churned within {horizon_days} days"
        cards.append(
            _kpi(
                "churn-rate",
                f"{label} ({head.churn_period})",
                _pct(head.churn_rate, 2),
                f"annualised {_pct(head.annualised)}",
            )
        )
    else:
        cards.append(_kpi("churn-rate", "Churn rate", "\u2013", "no churn history in the workspace"))
    if head.predicted_rate is not None:
        cards.append(
            _kpi(
                "predicted",
                f"Predicted churn, next {horizon_days} days",
                _pct(head.predicted_rate),
                f"mean churn probability; annualised {_pct(head.predicted_annualised)}",
            )
        )
    body += f'<div class="kpis">{"".join(cards)}</div>'
    if head.customers:
        colours = tier_colours(list(head.tiers.index))
        chips = []
        for tier, row in head.tiers.iterrows():
            r, g, b, _ = colours[str(tier)]
            style = f"background:rgba({r * 255:.0f},{g * 255:.0f},{b * 255:.0f},0.35)"
            cut = f" (p \u2265 {row['cut_off']:.2f})" if math.isfinite(row["cut_off"]) else ""
            chips.append(
                f'<span class="chip" style="{style}">{_e(tier)}{_e(cut)}: '
                f"<b>{_e(_pct(row['share']))}</b> ({_e(_count(row['customers']))})</span>"
            )
        body += f'<h3>Share of customers per risk tier</h3><p id="tier-shares">{"".join(chips)}</p>'
    return _section("headline", body)


def _render_trend(trend: Trend, notes: Sequence[str]) -> str:
    if trend.basis == "none":
        return _section("churn-trend", _note("No churn history yet. " + " ".join(notes)))
    if trend.basis == "monthly":
        intro = (
            "Contractual churn per calendar month: customers whose churn date falls in the month, out of those "
            "signed up before it and not yet churned. Annualised as 1 \u2212 (1 \u2212 monthly)^(365/days). "
            "Months from the first month with events on."
        )
    else:
        intro = (
            f"No churn dates in this workspace: the share of customers at each observation date who churned "
            f"within {trend.horizon_days} days (the labels), annualised as 1 \u2212 (1 \u2212 rate)^(365/"
            f"{trend.horizon_days})."
        )
    shown = trend.table.tail(TREND_TABLE_ROWS).iloc[::-1]
    columns = [
        Column("period", "month" if trend.basis == "monthly" else "observation date", trend.period_label),
        Column("customers", "customers", _count, True),
        Column("churned", "churned", _count, True),
        Column("churn_rate", trend.rate_label, lambda v: _pct(v, 2), True),
        Column("annualised", "annualised", lambda v: _pct(v, 1), True),
    ]
    caption = "" if len(trend.table) <= TREND_TABLE_ROWS else _note(f"Newest {TREND_TABLE_ROWS} of {len(trend.table)}.")
    body = (
        _note(intro)
        + _render_image(trend_figure(trend), "churn rate trend")
        + _render_table(shown, columns, "trend-table")
        + caption
    )
    return _section("churn-trend", body)


def _render_retention(table: pd.DataFrame | None, contractual: bool, notes: Sequence[str]) -> str:
    if table is None:
        return _section("cohort-retention", _note("No retention data yet. " + " ".join(notes)))
    if contractual:
        intro = "Share of each signup-month cohort not yet churned k months after signup."
    else:
        intro = (
            "No churn dates in this workspace: the share of each signup-month cohort active (any event) in "
            "month k after signup."
        )
    intro += " Blank cells: months the data does not cover (before the first or after the last day with events)."
    body = _note(intro) + _render_image(retention_figure(table, contractual), "cohort retention heatmap")
    return _section("cohort-retention", body)


_VOLUME_COLUMNS = (
    Column("customers", "customers", _count, True),
    Column("share", "share", _pct, True),
    Column("revenue_at_risk", "revenue at risk", _money, True),
    Column("risk_share", "share of risk", _pct, True),
)


def _render_risk(alerts: pd.DataFrame, tiers: Mapping[str, float]) -> str:
    if alerts.empty:
        return _section("risk-distribution", _note(NO_ALERTS))
    cuts = ", ".join(f"{name} \u2265 {floor:.2f}" for name, floor in sorted(tiers.items(), key=lambda kv: -kv[1]))
    body = _note(f"Tier cut-offs (serving.risk_tiers): {cuts}.") + _render_image(
        risk_figure(alerts, tiers), "histogram of churn probabilities with tier cut-offs"
    )
    return _section("risk-distribution", body)


def _render_segments(alerts: pd.DataFrame, layers: Sequence[str]) -> str:
    if alerts.empty:
        return _section("segment-mix", _note(NO_ALERTS))
    segments = volume_table(alerts, SEGMENT)
    columns = [
        Column("__index__", "segment"),
        *_VOLUME_COLUMNS,
        Column("mean_probability", "mean probability", _prob, True),
    ]
    body = _render_image(segment_figure(segments), "customers and revenue at risk per segment")
    body += _render_table(segments, columns, "segment-table")
    layer_tables = []
    for layer in layers:
        frame = volume_table(alerts, layer)
        layer_tables.append(
            f"<div><h3>{_e(layer)}</h3>{_render_table(frame, [Column('__index__', layer), *_VOLUME_COLUMNS])}</div>"
        )
    if layer_tables:
        body += "<h3>Behaviour layers</h3>" + f'<div class="tables">{"".join(layer_tables)}</div>'
    return _section("segment-mix", body)


def _render_volume(alerts: pd.DataFrame, tiers: Mapping[str, float]) -> str:
    if alerts.empty:
        return _section("alert-volume", _note(NO_ALERTS))
    body = _render_image(volume_figure(alerts, tiers), "customers per risk tier and per recommended action")
    parts = []
    for by, title, order in (
        (RISK_TIER, "risk tier", tier_order(tiers, alerts[RISK_TIER].dropna())),
        (SEGMENT, "segment", None),
        (ACTION, "action", None),
    ):
        frame = volume_table(alerts, by, order)
        parts.append(
            f"<div><h3>Per {_e(title)}</h3>"
            f"{_render_table(frame, [Column('__index__', title), *_VOLUME_COLUMNS], f'volume-{by}')}</div>"
        )
    return _section("alert-volume", body + f'<div class="tables">{"".join(parts)}</div>')


def _render_top(alerts: pd.DataFrame) -> str:
    if alerts.empty:
        return _section("top-alerts", _note(NO_ALERTS))
    top = top_alerts(alerts)
    columns = [
        Column(names.CUSTOMER_ID, "customer"),
        Column(names.PREDICTION, "probability", _prob, True),
        Column(RISK_TIER, "tier"),
        Column(SEGMENT, "segment"),
        Column(ACTION, "action"),
        Column(EXPECTED_LOSS, "expected loss", _money, True),
        Column(REASONS, "reasons", lambda v: list(v)),
        Column(RULE_HITS, "rule hits", lambda v: list(v)),
    ]
    intro = _note(
        f"The {len(top)} customers with the highest expected loss (churn probability \u00d7 yearly value) of "
        f"{len(alerts):,} scored."
    )
    return _section("top-alerts", intro + _render_table(top, columns, "top-alerts-table"))


def _utc(now: dt.datetime | None) -> dt.datetime:
    moment = now or dt.datetime.now(dt.UTC)
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def build_report(settings: Settings, alerts: pd.DataFrame, *, now: dt.datetime | None = None) -> str:
    """The ops report as one self-contained HTML page.

    Args:
        settings: The profile: risk tiers, label horizon, CRM layers and where the clean data lives
            (the churn trend and cohort retention come from the workspace, not the alerts).
        alerts: The alert list of `crm.alerts.score_alerts` (may be empty).
        now: When the report is generated, shown on the page; the current time when None.

    Returns:
        The HTML document.

    Raises:
        ValueError: The alerts lack a column the report needs.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in alerts.columns]
    if missing and not alerts.empty:
        raise ValueError(f"the alert list lacks column(s) {', '.join(missing)}")
    if alerts.empty:
        alerts = alerts.reindex(columns=list(dict.fromkeys([*alerts.columns, *REQUIRED_COLUMNS])))
    tiers = dict(settings.serving.risk_tiers)
    horizon = settings.labels.horizon_days
    history = load_history(settings)
    trend = churn_trend(history, horizon)
    head = headline(alerts, trend, tiers, horizon)
    layers = [name for name in settings.crm.layers if name in alerts.columns]
    sections = [
        _render_headline(head, trend, horizon),
        _render_trend(trend, history.notes),
        _render_retention(retention(history), history.contractual, history.notes),
        _render_risk(alerts, tiers),
        _render_segments(alerts, layers),
        _render_volume(alerts, tiers),
        _render_top(alerts),
    ]
    generated = f"{_utc(now):%Y-%m-%d %H:%M} UTC"
    nav = "".join(f'<a href="#{k}">{_e(v)}</a>' for k, v in SECTIONS.items())
    title = f"Churn ops report \u2013 as of {head.as_of}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_e(title)}</h1>"
        f'<p class="meta">Model version {_e(head.model_version)} \u00b7 {head.customers:,} customers scored'
        f" \u00b7 workspace {_e(settings.path('.'))} \u00b7 generated {_e(generated)}</p>"
        f"<nav>{nav}</nav></header><main>{''.join(sections)}</main></body></html>\n"
    )
