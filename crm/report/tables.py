"""The ops report's numbers and tables: pure functions over the history and the alert list.

The churn-rate trend, cohort retention, the headline figures, alert volumes per tier, segment or
action, and the top alerts with their reasons and rule hits as short texts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from core import names
from crm.early_warning import ACTION, EXPECTED_LOSS, RISK_TIER, RULE_HITS, SEGMENT
from crm.kpi import alert_volume, annualise, churn_by_observation, cohort_retention, monthly_churn, revenue_at_risk
from crm.report.history import History, first_month

TOP_ALERTS = 25
"""Rows of the top-alerts table."""

MAX_COHORTS = 24
"""The retention heatmap shows the newest this many signup cohorts."""

REASONS = "reasons"
AS_OF = "as_of"
MODEL_VERSION = "model_version"


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
