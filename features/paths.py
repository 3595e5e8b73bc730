"""Where the feature jobs read and write, and what a build wrote."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings


@dataclass(frozen=True)
class FeaturePaths:
    """Where the feature jobs read and write, resolved against the workspace."""

    clean_events: Path
    clean_customers: Path
    snapshots: Path
    labels: Path
    manifest: Path

    @classmethod
    def of(cls, settings: Settings) -> FeaturePaths:
        """The paths a settings profile uses."""
        clean = settings.path(settings.data.clean_dir)
        out = settings.path(settings.features.snapshots_dir)
        return cls(
            clean / "events.parquet",
            clean / "customers.parquet",
            out / "snapshots.parquet",
            out / "labels.parquet",
            out / "manifest.json",
        )


@dataclass(frozen=True)
class BuildResult:
    """What `build_features` wrote."""

    snapshots: Path
    labels: Path
    rows: int
    labelled_rows: int
    churn_rate: float
    features: tuple[str, ...]
    observation_dates: tuple[dt.date, ...]
    recomputed_dates: tuple[dt.date, ...]
    """The dates computed in this build; the others were copied from the previous build."""
    last_event_day: dt.date | None
    """The newest day of data (an event log's last event day; a table's last snapshot date)."""
