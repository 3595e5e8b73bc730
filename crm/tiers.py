"""Risk tiers: named probability bands (`serving.risk_tiers`, e.g. high >= 0.5 > medium >= 0.2 > low)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def risk_tier(probability: float, tiers: Mapping[str, float]) -> str:
    """The tier whose lower bound is the highest one not above `probability`."""
    for name, floor in sorted(tiers.items(), key=lambda kv: kv[1], reverse=True):
        if probability >= floor:
            return name
    return min(tiers.items(), key=lambda kv: kv[1])[0]


def risk_tiers(probabilities: np.ndarray, tiers: Mapping[str, float]) -> np.ndarray:
    """`risk_tier` of many probabilities at once (an object array of tier names)."""
    ordered = sorted(tiers.items(), key=lambda kv: kv[1])
    floors = np.array([floor for _, floor in ordered], dtype=float)
    proba = np.asarray(probabilities, dtype=float)
    index = np.searchsorted(floors, proba, side="right") - 1
    index[np.isnan(proba)] = 0  # as `risk_tier`: no floor holds for NaN, so the lowest tier
    return np.array([name for name, _ in ordered], dtype=object)[np.maximum(index, 0)]
