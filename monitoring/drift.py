"""Data and prediction drift with Evidently 0.7: run a report and summarise it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from evidently import Report
from evidently.core.report import Snapshot
from evidently.presets import DataDriftPreset


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift test."""

    column: str
    method: str
    threshold: float
    value: float
    drifted: bool


@dataclass(frozen=True)
class DriftSummary:
    """The figures ops look at first."""

    n_columns: int
    drifted_columns: int
    drifted_share: float
    dataset_drift: bool
    columns: list[ColumnDrift] = field(default_factory=list)

    @property
    def status(self) -> str:
        """'drift' when the dataset drifted, 'warning' when some column did, else 'ok'."""
        if self.dataset_drift:
            return "drift"
        return "warning" if self.drifted_columns else "ok"


def _column_drift(metric: dict[str, Any]) -> ColumnDrift:
    config = metric["config"]
    method = str(config.get("method", ""))
    threshold = float(config.get("threshold", 0.05))
    value = float(metric["value"])
    # p-value tests flag small values; distance measures (Wasserstein, Jensen-Shannon) flag large ones.
    drifted = value < threshold if "p_value" in method else value >= threshold
    return ColumnDrift(str(config["column"]), method, threshold, value, drifted)


def summarize(report: dict[str, Any], drift_share: float) -> DriftSummary:
    """Summarise an Evidently `DataDriftPreset` snapshot dict.

    Args:
        report: `Snapshot.dict()` of a report with `DataDriftPreset`.
        drift_share: Share of drifted columns at which the dataset counts as drifted.

    Returns:
        The per-column tests and the dataset verdict.
    """
    columns = [_column_drift(m) for m in report["metrics"] if m["config"].get("type", "").endswith(":ValueDrift")]
    drifted = sum(c.drifted for c in columns)
    share = drifted / len(columns) if columns else 0.0
    return DriftSummary(len(columns), drifted, share, share >= drift_share, columns)


def drift_report(reference: pd.DataFrame, current: pd.DataFrame, drift_share: float) -> tuple[Snapshot, DriftSummary]:
    """Compare `current` with `reference` column by column (tests chosen per column by Evidently).

    Args:
        reference: The training-time sample (features and prediction).
        current: The data to check, with the same columns.
        drift_share: Share of drifted columns at which the dataset counts as drifted.

    Returns:
        The Evidently snapshot (for HTML) and its summary.
    """
    shared = [c for c in reference.columns if c in current.columns]
    if not shared:
        raise ValueError("reference and current data share no column")
    snapshot = Report([DataDriftPreset(drift_share=drift_share)]).run(
        current_data=current[shared], reference_data=reference[shared]
    )
    return snapshot, summarize(snapshot.dict(), drift_share)
