"""Feast declarations of the churn platform: entity `customer`, theme views, the model's feature service.

The feature list follows from the snapshots `churn features build` wrote (a dataset without
complaints has no complaint features), so the objects come from `features.feast_repo.build_definitions`,
the same function the CLI applies. Set CHURN_SNAPSHOTS to point at another snapshots file.
"""

import os
from pathlib import Path

from features.feast_repo import build_definitions
from features.pipeline import snapshot_schema

SNAPSHOTS = Path(
    os.environ.get("CHURN_SNAPSHOTS", Path(__file__).resolve().parent.parent / "workspace/features/snapshots.parquet")
)
TTL_DAYS = int(os.environ.get("CHURN_FEAST_TTL_DAYS", "14"))
if not SNAPSHOTS.exists():  # `feast plan` or `feast apply` before a build: one line, not pyarrow's traceback
    raise SystemExit(f"error: {SNAPSHOTS} does not exist: run `churn features build` first (or set CHURN_SNAPSHOTS)")

# `feast apply` collects Feast objects from module attributes, so each object gets a module-level name.
globals().update({obj.name: obj for obj in build_definitions(SNAPSHOTS, snapshot_schema(SNAPSHOTS), TTL_DAYS)})
