"""The JSON summary of one monitoring run: what the index page, the notebook and the loop read.

One file per run, `<reports_dir>/monitor-<run_id>.json` beside `monitor-<run_id>.html`, where
`run_id` is the run's UTC start time `YYYYmmddTHHMMSSZ` (sortable). The models validate what is
read back, so a hand-edited or half-written summary is an error naming the field, not a KeyError.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from crm.freshness import Freshness

Status = Literal["ok", "warning", "drift"]
"""ok: nothing drifted; warning: some columns drifted, below the policy; drift: the policy says retrain."""

SUMMARY_PREFIX = "monitor-"
"""File name prefix of a run's summary (`.json`) and report (`.html`)."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ColumnResult(_Model):
    """One column's drift test."""

    column: str
    kind: Literal["numeric", "categorical"]
    method: str
    """The test or distance, as Evidently names it (e.g. `wasserstein`, `jensenshannon`, `ks`)."""
    threshold: float
    value: float
    """The test's figure: a p-value (drift when below the threshold) or a distance (drift at or above)."""
    drifted: bool


class FeatureDrift(_Model):
    """Drift of the model's input features."""

    n_columns: int
    drifted_columns: int
    drifted_share: float
    columns: list[ColumnResult]
    untested: list[str] = []
    """Features left out of the tests: cumulative ones (`monitoring.tests.cumulative: skip`)."""


class PredictionDrift(_Model):
    """Drift of the champion's churn probabilities."""

    method: str
    threshold: float
    value: float
    drifted: bool
    reference_mean: float
    current_mean: float


class Performance(_Model):
    """The champion's classification performance on the newest window whose labels have matured.

    That window is the run's window moved back by the label horizon: a customer's label is known
    only once the horizon after the prediction has passed.
    """

    window_start: dt.datetime | None = None
    window_end: dt.datetime | None = None
    labelled_rows: int
    positives: int
    roc_auc: float | None
    """None when the labelled rows hold a single class."""
    pr_auc: float | None
    log_loss: float
    reference_roc_auc: float | None
    """The champion's test ROC AUC at training time, the baseline of `auc_drop`."""
    auc_drop: float | None
    """reference_roc_auc - roc_auc: positive when the model got worse."""


class Decision(_Model):
    """What the drift policy made of the run."""

    retrain: bool
    """The policy fired and no cool-down held it back."""
    reasons: list[str]
    """Each policy rule that fired, in words (empty when none did)."""
    cooldown_until: dt.datetime | None = None
    """Set when a rule fired during the cool-down after an earlier retraining: no retraining then."""


class Retraining(_Model):
    """The retraining a drift decision started, and what the promotion gate did with it."""

    training_run_id: str | None
    challenger_version: str | None
    promoted: bool
    gate_reason: str
    champion_before: str | None
    champion_after: str | None
    metric: str | None = None
    """The gate's metric; both scores below are on the same held-out test rows."""
    challenger_score: float | None = None
    champion_score: float | None = None
    """None when there was no champion to compare with."""
    error: str | None = None
    """Set when retraining failed; the champion is then unchanged."""


class MonitorSummary(_Model):
    """One monitoring run."""

    run_id: str
    created: dt.datetime
    mode: Literal["serving", "batch"]
    """serving: current = the prediction log of the window; batch: fresh feature snapshots in it."""
    window_start: dt.datetime
    window_end: dt.datetime
    model_version: str
    reference_rows: int
    current_rows: int
    status: Status
    features: FeatureDrift
    prediction: PredictionDrift | None
    performance: Performance | None
    """None until the window's labels have matured (the label horizon after the window)."""
    decision: Decision
    retraining: Retraining | None = None
    mlflow_run_id: str | None = None
    """The MLflow run that records this monitoring run (tags link it to the training run)."""
    html: str
    """File name of the Evidently HTML report, in the same folder."""
    freshness: Freshness | None = None
    """Event-to-feature lag of the events streamed in the window (`crm.freshness`); None in summaries
    written before it was recorded."""


def summary_path(reports_dir: Path, run_id: str) -> Path:
    """Where the summary of `run_id` goes."""
    return reports_dir / f"{SUMMARY_PREFIX}{run_id}.json"


def read_summaries(reports_dir: Path) -> list[MonitorSummary]:
    """Every run's summary in `reports_dir`, oldest first.

    Raises:
        ValueError: A summary file does not match the schema (the message names the file and field).
    """
    out = []
    for path in sorted(reports_dir.glob(f"{SUMMARY_PREFIX}*.json")):
        try:
            out.append(MonitorSummary.model_validate_json(path.read_text()))
        except ValueError as exc:
            raise ValueError(f"{path}: not a monitoring summary: {exc}") from exc
    return sorted(out, key=lambda s: s.run_id)
