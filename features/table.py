"""Feature snapshots and labels of an entity-level table: its rows are the snapshots.

The ingested table (`clean/table.parquet`) already holds one row per customer per snapshot date
with attributes and the business's churn label, so the build only splits it into the snapshots
Feast serves (customer_id, event_timestamp, `profile_<column>`) and the labels training joins
them to (customer_id, event_timestamp, churned). The rest of the platform reads both files as it
reads those of an event log.
"""

from __future__ import annotations

import pandas as pd

from core import names
from core.io import write_atomic_parquet
from core.settings import Settings
from features.ingest import TABLE_FILE
from features.labels import time_ordered
from features.paths import BuildResult, FeaturePaths


def build_table_features(settings: Settings) -> BuildResult:
    """Write the snapshots and labels of the ingested customer table.

    Raises:
        FileNotFoundError: The table was not ingested yet; the message says what to run.
    """
    paths = FeaturePaths.of(settings)
    clean = settings.path(settings.data.clean_dir) / f"{TABLE_FILE}.parquet"
    if not clean.exists():
        raise FileNotFoundError(f"{clean} does not exist: run `churn data ingest` first")
    table = pd.read_parquet(clean)
    keys = [names.CUSTOMER_ID, names.EVENT_TIMESTAMP]
    snapshots = table.drop(columns=[names.LABEL]).sort_values(keys).reset_index(drop=True)
    labels = time_ordered(table[[*keys, names.LABEL]])
    write_atomic_parquet(snapshots, paths.snapshots)
    write_atomic_parquet(labels, paths.labels)
    dates = tuple(sorted(d.date() for d in snapshots[names.EVENT_TIMESTAMP].unique()))
    return BuildResult(
        snapshots=paths.snapshots,
        labels=paths.labels,
        rows=len(snapshots),
        labelled_rows=len(labels),
        churn_rate=float(labels[names.LABEL].mean()) if len(labels) else float("nan"),
        features=tuple(c for c in snapshots.columns if c not in keys),
        observation_dates=dates,
        recomputed_dates=dates,
        last_event_day=dates[-1] if dates else None,
    )
