"""Churn KPIs for ops: churn rate per month (annualised correctly), cohort retention, revenue at
risk and alert volumes. Pure functions over the clean tables and the alert list."""

from __future__ import annotations

import pandas as pd

from core import names


def annualise(rate: float | pd.Series, days: float) -> float | pd.Series:
    """A churn rate over `days` days as a yearly rate: 1 - (1 - c) ** (365 / days).

    Not 12 x the monthly rate: customers lost in one month are no longer there to be lost in the
    next, so 5% a month is 46% a year, not 60%.
    """
    if days <= 0:
        raise ValueError(f"days must be positive, got {days}")
    return 1 - (1 - rate) ** (365.0 / days)


def monthly_churn(customers: pd.DataFrame, last_day: pd.Timestamp | None = None) -> pd.DataFrame:
    """Contractual churn per calendar month from `churn_date`.

    The base of a month is every customer signed up before it starts and not churned before it
    starts; churned are those of the base whose churn date falls in the month. A month that the
    data does not cover to its end (after `last_day`) is left out.

    Returns:
        Columns month (first day), customers, churned, churn_rate, annualised (each month with its
        own number of days).
    """
    if names.CHURN_DATE not in customers or customers[names.CHURN_DATE].isna().all():
        return pd.DataFrame(columns=["month", "customers", "churned", "churn_rate", "annualised"])
    signup = pd.to_datetime(customers[names.SIGNUP_DATE])
    churn = pd.to_datetime(customers[names.CHURN_DATE])
    end = pd.Timestamp(last_day) if last_day is not None else churn.max()
    first = signup.min().to_period("M").to_timestamp()
    months = pd.date_range(first, end, freq="MS")
    rows = []
    for start in months:
        stop = start + pd.offsets.MonthBegin(1)
        if stop - pd.Timedelta(days=1) > end:
            break
        base = (signup < start) & (churn.isna() | (churn >= start))
        lost = base & (churn >= start) & (churn < stop)
        n = int(base.sum())
        if n == 0:
            continue
        rate = lost.sum() / n
        rows.append(
            {
                "month": start,
                "customers": n,
                "churned": int(lost.sum()),
                "churn_rate": float(rate),
                "annualised": float(annualise(rate, (stop - start).days)),
            }
        )
    return pd.DataFrame(rows, columns=["month", "customers", "churned", "churn_rate", "annualised"])


def churn_by_observation(labels: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """Churn rate per observation date from labels (any label kind), per horizon and annualised.

    Returns:
        Columns observation_date, customers, churned, churn_rate (within the horizon), annualised.
    """
    grouped = labels.groupby(labels[names.EVENT_TIMESTAMP].dt.tz_localize(None))[names.LABEL]
    out = pd.DataFrame({"customers": grouped.size(), "churned": grouped.sum()})
    out["churn_rate"] = out["churned"] / out["customers"]
    out["annualised"] = annualise(out["churn_rate"], horizon_days)
    return out.rename_axis(names.OBSERVATION_DATE).reset_index()


def cohort_retention(
    customers: pd.DataFrame, events: pd.DataFrame | None, last_day: pd.Timestamp, max_months: int = 12
) -> pd.DataFrame:
    """Share of each signup-month cohort still retained k months after signup.

    Retained means still a customer at the end of month k after the signup month when customers
    have churn dates (contractual), or active (any event) in that month otherwise. A (cohort, k)
    cell whose month is not fully in the data is left empty.

    Returns:
        Rows: cohort (signup month, 'YYYY-MM'); columns: months since signup 0..max_months; values
        in [0, 1].
    """
    signup = pd.to_datetime(customers[names.SIGNUP_DATE])
    cohort = signup.dt.to_period("M")
    contractual = names.CHURN_DATE in customers and customers[names.CHURN_DATE].notna().any()
    end = pd.Timestamp(last_day)
    active: pd.DataFrame | None = None
    if not contractual:
        if events is None:
            raise ValueError("activity retention needs the events")
        stamps = pd.to_datetime(events[names.EVENT_TIMESTAMP], utc=True).dt.tz_localize(None)
        ids_month = {names.CUSTOMER_ID: events[names.CUSTOMER_ID].astype(str), "month": stamps.dt.to_period("M")}
        active = pd.DataFrame(ids_month).drop_duplicates()
    table: dict[str, dict[int, float]] = {}
    ids = customers[names.CUSTOMER_ID].astype(str)
    for period in sorted(cohort.unique()):
        members = cohort == period
        row: dict[int, float] = {}
        for k in range(max_months + 1):
            month = period + k
            if month.to_timestamp(how="end").normalize() > end.normalize():
                break
            if contractual:
                # Still a customer at the end of month k: not churned before month k + 1 starts.
                churn = pd.to_datetime(customers.loc[members, names.CHURN_DATE])
                row[k] = float((churn.isna() | (churn >= (month + 1).to_timestamp())).mean())
            else:
                assert active is not None
                seen = set(active.loc[active["month"] == month, names.CUSTOMER_ID])
                row[k] = float(ids[members].isin(seen).mean())
        table[str(period)] = row
    frame = pd.DataFrame.from_dict(table, orient="index").sort_index()
    frame.index.name = "cohort"
    frame.columns.name = "months_since_signup"
    return frame


def revenue_at_risk(alerts: pd.DataFrame, by: str | None = None) -> pd.Series | float:
    """Sum of churn probability x yearly customer value (the alert list's expected_loss)."""
    if by is None:
        return float(alerts["expected_loss"].sum())
    return alerts.groupby(by)["expected_loss"].sum().sort_values(ascending=False)


def alert_volume(alerts: pd.DataFrame, by: str) -> pd.Series:
    """Number of customers per value of `by` (risk_tier, segment or action)."""
    return alerts[by].value_counts().sort_values(ascending=False)
