"""Settings of monitoring: which drift test each kind of column gets, the drift policy, the reports."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DriftTests(_Frozen):
    """Which test or distance each kind of column gets, and where it flags drift.

    Names are Evidently's (`wasserstein`, `jensenshannon`, `ks`, `chisquare`, `psi`, ...). p-value
    tests flag values below the threshold, distances values at or above it. The defaults are
    effect sizes: with thousands of rows a p-value test flags differences too small to matter.
    """

    numeric: str = "wasserstein"
    numeric_threshold: float = Field(0.15, gt=0)
    """Wasserstein distance in reference standard deviations. 0.15 flags a shift of 0.2 std and,
    on windows of ~500 rows, stays above sampling noise (see the drift scenario in tests/)."""
    categorical: str = "jensenshannon"
    categorical_threshold: float = Field(0.1, gt=0)
    prediction: str = "wasserstein"
    prediction_threshold: float = Field(0.2, gt=0)
    """Churn probabilities move with the season and the customer mix: a fifth of a std is a real shift."""
    cumulative: Literal["skip", "test"] = "skip"
    """Features that grow with the customers' age (lifetime counts, tenure, the BTYD summary;
    `core.names.is_cumulative`): `skip` leaves them out of the drift tests (their distribution moves
    between any two dates, drift or not; their rates, such as `purchases_rate_30d`, are tested),
    `test` tests them like the others."""


class DriftPolicy(_Frozen):
    """When a monitoring run says "retrain": any rule that fires, outside the cool-down."""

    drifted_share: float = Field(0.25, gt=0, le=1)
    """Share of drifted features at or above which the data counts as drifted."""
    prediction_drift: bool = True
    """Retrain when the churn-probability distribution drifted (see `DriftTests.prediction`)."""
    auc_drop: float | None = Field(0.03, gt=0)
    """Retrain when the champion's ROC AUC on matured labels fell this far below its test AUC."""
    auc_min_positives: int = Field(100, gt=0)
    """The AUC rule needs this many churners among the matured labels: with fewer, an AUC moves by
    several hundredths from sampling alone (its standard error is about 0.04 with 40 churners)."""
    cooldown_days: int = Field(14, ge=0)
    """No retraining within this many days after the window of the last retraining."""
    min_rows: int = Field(100, gt=0)
    """A window with fewer current rows is reported but decides nothing (too little to judge)."""


class MonitoringSettings(_Frozen):
    """Evidently drift reports, the drift policy and drift-triggered retraining."""

    reports_dir: str = "reports"
    """HTML reports, JSON summaries and index.html, one pair per run."""
    evidently_workspace: str = "evidently"
    """Evidently workspace (`evidently ui --workspace <workspace>/evidently`): every run's snapshot."""
    project: str = "churn-monitoring"
    """Evidently project and MLflow experiment of the monitoring runs."""
    reference_sample: int = Field(5_000, gt=0)
    """Rows of the newest labelled observation dates stored with each model as the monitoring reference."""
    window_days: int = Field(7, gt=0)
    """Default window: the last N days before now."""
    mode: Literal["auto", "serving", "batch"] = "auto"
    """serving: the prediction log; batch: feature snapshots; auto: the log when it has rows in the window."""
    tests: DriftTests = DriftTests()
    policy: DriftPolicy = DriftPolicy()
