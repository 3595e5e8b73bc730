"""The ops report page: the tables and figures of one alert list and workspace, rendered from
`crm/templates/ops_report.html` (which extends core's `base.html`).

The page is one self-contained file: the shared stylesheet is inlined, the figures are embedded
PNGs, there is no JavaScript and nothing is fetched, so it can be mailed or archived as it is.
Every text on it is escaped by the template engine.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from core import names
from core.html import png_data_uri, render
from core.settings import Settings
from crm.early_warning import ACTION, EXPECTED_LOSS, RISK_TIER, SEGMENT
from crm.freshness import Freshness, freshness_of
from crm.report.campaigns import campaign_context
from crm.report.figures import (
    figure_png,
    retention_figure,
    risk_figure,
    segment_figure,
    tier_colours,
    trend_figure,
    volume_figure,
)
from crm.report.history import load_history
from crm.report.tables import Headline, Trend, churn_trend, headline, retention, tier_order, top_alerts, volume_table

SECTIONS: dict[str, str] = {
    "headline": "Headline figures",
    "churn-trend": "Churn-rate trend",
    "cohort-retention": "Cohort retention",
    "risk-distribution": "Risk distribution",
    "segment-mix": "Segment mix",
    "alert-volume": "Alert volume",
    "event-lag": "Event-to-feature lag",
    "top-alerts": "Top alerts",
    "campaign-effects": "Campaign effects",
}
"""Section id (of its <h2>) -> title, in page order."""

TREND_TABLE_ROWS = 12
"""The trend table shows the newest this many periods (the plot shows them all)."""

REQUIRED_COLUMNS = (names.CUSTOMER_ID, names.PREDICTION, RISK_TIER, SEGMENT, ACTION, EXPECTED_LOSS)

NO_ALERTS = "No customers were scored: the alert list is empty."

TEMPLATE = "ops_report.html"


def _image(fig: Figure) -> str:
    """A figure as a `data:` URI for an `<img>`."""
    return png_data_uri(figure_png(fig))


def _rows(frame: pd.DataFrame) -> list[Any]:
    """A table's rows for the template: named tuples, the index as `Index`."""
    return list(frame.itertuples(name="Row"))


def _tier_chips(head: Headline) -> list[dict[str, Any]]:
    """Per tier (highest first): name, cut-off (None when not finite), share, customers and chip colour."""
    colours = tier_colours(list(head.tiers.index))
    chips = []
    for tier, row in head.tiers.iterrows():
        r, g, b, _ = colours[str(tier)]
        chips.append(
            {
                "tier": tier,
                "cut_off": row["cut_off"] if math.isfinite(row["cut_off"]) else None,
                "share": row["share"],
                "customers": row["customers"],
                "style": f"background:rgba({r * 255:.0f},{g * 255:.0f},{b * 255:.0f},0.35)",
            }
        )
    return chips


def _history_context(trend: Trend, table: pd.DataFrame | None, contractual: bool) -> dict[str, Any]:
    """The trend and retention sections: the newest trend rows and the two figures (None without data)."""
    return {
        "trend": trend,
        "trend_rows": _rows(trend.table.tail(TREND_TABLE_ROWS).iloc[::-1]),
        "trend_table_rows": TREND_TABLE_ROWS,
        "trend_image": _image(trend_figure(trend)) if trend.basis != "none" else None,
        "contractual": contractual,
        "retention_image": _image(retention_figure(table, contractual)) if table is not None else None,
    }


def _alerts_context(alerts: pd.DataFrame, tiers: Mapping[str, float], layers: Sequence[str]) -> dict[str, Any]:
    """The risk, segment, volume and top-alerts sections; nothing to show (empty tables) without alerts."""
    if alerts.empty:
        return {"cuts": [], "segment_rows": [], "layer_tables": [], "volume_tables": [], "top_rows": [], "images": {}}
    segments = volume_table(alerts, SEGMENT)
    order = tier_order(tiers, alerts[RISK_TIER].dropna())
    return {
        "cuts": sorted(tiers.items(), key=lambda kv: -kv[1]),
        "segment_rows": _rows(segments),
        "layer_tables": [(layer, _rows(volume_table(alerts, layer))) for layer in layers],
        "volume_tables": [
            (by, title, _rows(volume_table(alerts, by, by_order)))
            for by, title, by_order in (
                (RISK_TIER, "risk tier", order),
                (SEGMENT, "segment", None),
                (ACTION, "action", None),
            )
        ],
        "top_rows": _rows(top_alerts(alerts)),
        "images": {
            "risk": _image(risk_figure(alerts, tiers)),
            "segments": _image(segment_figure(segments)),
            "volume": _image(volume_figure(alerts, tiers)),
        },
    }


def _utc(now: dt.datetime | None) -> dt.datetime:
    """`now` (the current time when None) in UTC; a naive time is taken as UTC."""
    moment = now or dt.datetime.now(dt.UTC)
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def build_report(
    settings: Settings, alerts: pd.DataFrame, *, now: dt.datetime | None = None, freshness: Freshness | None = None
) -> str:
    """The ops report as one self-contained HTML page.

    Args:
        settings: The profile: risk tiers, label horizon, CRM layers and where the clean data lives
            (the churn trend and cohort retention come from the workspace, not the alerts).
        alerts: The alert list of `crm.alerts.score_alerts` (may be empty).
        now: When the report is generated, shown on the page; the current time when None.
        freshness: The real-time path's event-to-feature lag; None reads `stream.freshness_log`
            over the `monitoring.window_days` before `now`.

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
    days = settings.monitoring.window_days
    if freshness is None:
        end = _utc(now)
        path = settings.path(settings.stream.freshness_log)
        freshness = freshness_of(path, end - dt.timedelta(days=days), end + dt.timedelta(seconds=1))
    return render(
        "crm",
        TEMPLATE,
        title=f"Churn ops report \u2013 as of {head.as_of}",
        wide=False,
        sections=SECTIONS,
        no_alerts=NO_ALERTS,
        generated=f"{_utc(now):%Y-%m-%d %H:%M} UTC",
        workspace=str(settings.path(".")),
        horizon_days=horizon,
        notes=history.notes,
        head=head,
        chips=_tier_chips(head) if head.customers else [],
        scored=len(alerts),
        freshness=freshness,
        freshness_days=days,
        **_history_context(trend, retention(history), history.contractual),
        **_alerts_context(alerts, tiers, layers),
        **campaign_context(settings, _image),
    )
