"""Reasons: a feature's contribution to a churn score, with a phrase a CRM user reads."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


def phrase(feature: str, value: float | str | None) -> str:
    """A readable phrase for a feature value, e.g. 'purchases down 60% vs previous 30 days'."""
    return phraser(feature)(value)


def phraser(feature: str) -> Callable[[float | str | None], str]:
    """`phrase` of one feature as a function of the value, its wording worked out once."""
    unknown = f"{feature.replace('_', ' ')} unknown"
    attribute = feature.removeprefix("profile_").replace("_", " ")
    number: Callable[[float], str]
    if feature.endswith("_change"):
        theme = feature.removesuffix("_change").replace("purchases_", "purchase ").replace("_", " ")

        def number(value: float) -> str:
            return f"{theme} {'down' if value < 0 else 'up'} {abs(value):.0%} vs previous 30 days"

    elif feature.endswith("days_since_last") or feature.endswith("days_since_last_activity"):
        what = "purchase" if feature.startswith("purchases") else "activity"

        def number(value: float) -> str:
            return f"{value:.0f} days since last {what}"

    else:
        name = feature.replace("_", " ")

        def number(value: float) -> str:
            return f"{name} = {value:g}"

    def of(value: float | str | None) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return unknown
        if isinstance(value, str):
            return f"{attribute} is {value}"
        return number(value)

    return of


def reason(feature: str, value: float | str | None, contribution: float, text: str) -> dict[str, Any]:
    """One feature's contribution to a customer's churn score, as answers carry it: the feature, its value,
    the contribution and a readable phrase."""
    return {"feature": feature, "value": value, "contribution": contribution, "phrase": text}
