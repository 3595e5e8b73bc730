"""The sections of the settings: one frozen pydantic model per top-level key of a config file.

`data`, `generator`, `features`, `labels`, `feast`, `training`, `serving` and `monitoring`, with
the models nested in them (`crm` is in `core.crm_settings`). Every model forbids unknown keys, so
a typo in a config is an error that names the key; `core.settings` puts the sections together.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core import names
from core.feature_engine_settings import SparkSettings


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CustomersSource(_Frozen):
    """Where the customers table comes from and how its columns map onto the contract."""

    path: str | None = "raw/customers.parquet"
    """None: there is no customers table (a transactions export); customers are derived from the
    events, each signed up on the day of their first event, with no churn date or attributes."""
    columns: dict[str, str] = Field(
        default_factory=lambda: {
            names.CUSTOMER_ID: names.CUSTOMER_ID,
            names.SIGNUP_DATE: names.SIGNUP_DATE,
            names.CHURN_DATE: names.CHURN_DATE,
        },
        description="contract field -> column name in the file",
    )
    attributes: tuple[str, ...] = ("plan", "channel", "region", "value_tier")
    """Optional static attributes, kept when present in the file."""


EventFamily = Literal["purchase", "engagement", "service"]


class EventsSource(_Frozen):
    """Where the event log comes from, its column mapping and the accepted event types."""

    path: str = "raw/events.parquet"
    columns: dict[str, str] = Field(
        default_factory=lambda: {
            names.CUSTOMER_ID: names.CUSTOMER_ID,
            names.EVENT_TIMESTAMP: names.EVENT_TIMESTAMP,
            names.EVENT_TYPE: names.EVENT_TYPE,
            names.AMOUNT: names.AMOUNT,
            names.CATEGORY: names.CATEGORY,
        },
        description="contract field -> column name in the file",
    )
    event_types: tuple[str, ...] = names.STANDARD_EVENT_TYPES
    default_event_type: str | None = None
    """Event type given to every row when the file has no event type column (e.g. a transactions export)."""
    timestamp_format: str | None = None
    """strptime format of the timestamp column in a CSV; None lets pandas infer ISO 8601."""
    families: dict[str, EventFamily] = Field(default_factory=dict)
    """Event type -> family (purchase, engagement or service). Purchases drive spend, gaps, RFM,
    recency and the lifetime features; engagement the engagement trend. The six standard types have
    theirs already; any other type not listed is engagement. Every type gets counts per window,
    days since its last occurrence, its 30-vs-30-day change and, with amounts, sums per window."""

    @model_validator(mode="after")
    def _families_name_known_types(self) -> EventsSource:
        unknown = sorted(set(self.families) - set(self.event_types))
        if unknown:
            raise ValueError(
                f"families names event types that are not in event_types: {', '.join(unknown)} "
                f"(event_types: {', '.join(self.event_types)})"
            )
        return self


class TableSource(_Frozen):
    """An entity-level table: one row per customer (or per customer per snapshot date) with attributes,
    usage aggregates and the churn label the business already decided (telecom, banking, subscriptions).

    Its columns become features of the `profile` view (`profile_<column>`), its label the training label.
    """

    path: str
    """CSV or Parquet, relative to the workspace."""
    id: str
    """The customer id column."""
    label: str
    """The churn label column."""
    positive: tuple[str, ...] = ("1", "yes", "true")
    """Label values that mean churned (compared case-insensitively, after trimming)."""
    negative: tuple[str, ...] = ("0", "no", "false")
    """Label values that mean stayed; any other value is quarantined."""
    snapshot_date: str | None = None
    """The column holding each row's snapshot date; None: every row is one snapshot at `as_of`."""
    as_of: dt.date | None = None
    """The snapshot date when the table has no snapshot column."""
    date_format: str | None = None
    """strptime format of the snapshot column; None lets pandas infer ISO 8601."""
    numeric: tuple[str, ...] = ()
    """Number columns (a value that does not parse becomes null and is counted in the summary)."""
    categorical: tuple[str, ...] = ()
    """String columns (plan, contract, payment method, ...)."""

    @model_validator(mode="after")
    def _columns_are_consistent(self) -> TableSource:
        if self.snapshot_date is None and self.as_of is None:
            raise ValueError("set snapshot_date (a column) or as_of (the one snapshot's date)")
        both = {v.strip().lower() for v in self.positive} & {v.strip().lower() for v in self.negative}
        if both:
            raise ValueError(f"positive and negative share the label values {sorted(both)}")
        overlap = set(self.numeric) & set(self.categorical)
        if overlap:
            raise ValueError(f"columns both numeric and categorical: {sorted(overlap)}")
        reserved = {self.id, self.label, self.snapshot_date} & (set(self.numeric) | set(self.categorical))
        if reserved:
            raise ValueError(f"id, label or snapshot columns listed as attributes: {sorted(str(c) for c in reserved)}")
        if not self.numeric and not self.categorical:
            raise ValueError("list the attribute columns to use in numeric and/or categorical")
        return self


class ActionsSource(_Frozen):
    """What the CRM did in a campaign: one row per action taken (`churn campaigns import-actions`)."""

    path: str = "raw/actions.csv"
    """CSV or Parquet, relative to the workspace; `--file` replaces it."""
    columns: dict[str, str] = Field(
        default_factory=lambda: {
            n: n for n in (names.CUSTOMER_ID, names.ACTION, names.ACTION_TIMESTAMP, names.ACTION_COST)
        }
    )
    """Contract field -> column name in the file (customer_id, action, action_timestamp; cost optional)."""
    timestamp_format: str | None = None
    """strptime format of the timestamp column in a CSV; None lets pandas infer ISO 8601."""


class DataSettings(_Frozen):
    """The CRM data contract: sources and where ingested data lands."""

    customers: CustomersSource = CustomersSource()
    events: EventsSource = EventsSource()
    table: TableSource | None = None
    """An entity-level table instead of customers and events (set it, and they are not read)."""
    actions: ActionsSource = ActionsSource()
    """The actions a campaign took, as the CRM exports them."""
    clean_dir: str = "clean"
    quarantine_dir: str = "quarantine"


class GeneratorSettings(_Frozen):
    """Defaults of the synthetic CRM generator."""

    customers: int = Field(2_000, gt=0)
    days: int = Field(180, gt=0)
    seed: int = 42
    start_date: dt.date = dt.date(2025, 1, 1)
    drift_at: int | None = Field(None, ge=0)
    taxonomy: Literal["retail", "saas"] = "retail"
    """retail: the six standard event types; saas: the same behaviour as 21 product event types
    (login, meeting, add_contact, invoice_paid, bug_report, ...; see configs/saas.yaml)."""


class FeatureSettings(_Frozen):
    """Behaviour feature computation."""

    windows_days: tuple[int, ...] = (7, 30, 90)
    observation_every_days: int = Field(7, gt=0)
    first_observation_after_days: int = Field(60, ge=0)
    """Observation dates start this many days after the first event, so windows have history."""
    grid_origin: dt.date = dt.date(2000, 1, 3)
    """Any date on the observation grid (a Monday: a weekly grid falls on Mondays). Fixed, so new
    data adds observation dates instead of moving them."""
    include_latest: bool = True
    """Also observe at the day after the last event: the freshest snapshot, for serving and scoring."""
    snapshots_dir: str = "features"
    duckdb_memory_limit: str = "6GB"
    """DuckDB's memory cap for the feature build; beyond it DuckDB spills to disk."""
    engine: Literal["duckdb", "spark"] = "duckdb"
    """Which engine computes snapshots and labels: DuckDB in this process (the embedded default), or
    Spark (`features.spark`; needs the `spark` extra and Java 17+). Same features, parity-tested."""
    spark: SparkSettings = SparkSettings()

    @model_validator(mode="after")
    def _windows_positive(self) -> FeatureSettings:
        if not self.windows_days or min(self.windows_days) <= 0:
            raise ValueError("windows_days must list at least one positive number of days")
        return self


class LabelSettings(_Frozen):
    """How the churn label is defined."""

    kind: Literal["contractual", "activity"] = "contractual"
    horizon_days: int = Field(30, gt=0)
    activity_event_types: tuple[str, ...] = ("purchase",)
    """Event types that count as 'still active' for the activity (non-contractual) label."""


class OnlineStoreSettings(_Frozen):
    """Feast online store: SQLite embedded by default, Redis in the services profile."""

    type: Literal["sqlite", "redis"] = "sqlite"
    path: str = "feast/online_store.db"
    connection_string: str | None = None


class FeastSettings(_Frozen):
    """Feast feature store settings."""

    project: str = "churn"
    registry: str = "feast/registry.db"
    """A file path (embedded) or a SQLAlchemy URI such as postgresql+psycopg://... (services)."""
    online_store: OnlineStoreSettings = OnlineStoreSettings()
    ttl_days: int = Field(14, gt=0)
    """How far back a point-in-time join may look for a snapshot: above the observation interval."""


class SplitSettings(_Frozen):
    """How labelled rows split into training, validation and test.

    With two or more labelled observation dates: out of time (train on earlier dates, validate on
    later ones, test on the latest). With one (a customer table without a time axis): a stratified
    test share held out, and k-fold stratified cross-validation on the rest for tuning.
    """

    test_dates: int = Field(2, gt=0)
    """The latest labelled observation dates (complete horizon) held out for the final test."""
    valid_dates: int = Field(2, gt=0)
    """The labelled dates before the test dates, for early stopping and tuning."""
    embargo_days: int | None = Field(None, ge=0)
    """Gap between the last training date and the first test date, so no training label is still
    open when the test period starts; None means the label horizon."""
    test_customers: float = Field(0.3, gt=0, lt=1)
    """Share of customers (by a seeded hash of the id) reserved for the test: they never appear in
    train or validation, so no customer straddles train and test."""
    cv_folds: int = Field(5, ge=2)
    """One observation date: stratified folds of cross-validation; the Optuna objective is their mean."""
    test_share: float = Field(0.2, gt=0, lt=1)
    """One observation date: the stratified share of rows held out for the final test."""


class BlendSettings(_Frozen):
    """Blending the trees with the logistic regression fitted on the same rows (`training.blend`)."""

    tree_weights: tuple[float, ...] = (0.9, 0.8, 0.7, 0.6, 0.5)
    """Candidate weights of the trees in the blended margin, beside 1.0 (the trees alone). The one
    nearest 0.5 is the default; another (the trees alone included) replaces it only when it scores
    better on the held-out rows (validation, or cross-validation's out-of-fold rows) by more than
    their noise (a paired bootstrap). Empty: never blend."""

    @model_validator(mode="after")
    def _weights_are_shares(self) -> BlendSettings:
        if any(not 0.0 < w <= 1.0 for w in self.tree_weights):
            raise ValueError(f"tree_weights must lie in (0, 1], got {list(self.tree_weights)}")
        return self


class SearchSpace(_Frozen):
    """Optuna search space: [low, high] per XGBoost parameter (log scale for eta and lambda)."""

    max_depth: tuple[int, int] = (2, 8)
    eta: tuple[float, float] = (0.02, 0.3)
    min_child_weight: tuple[float, float] = (1.0, 20.0)
    subsample: tuple[float, float] = (0.6, 1.0)
    colsample_bytree: tuple[float, float] = (0.5, 1.0)
    reg_lambda: tuple[float, float] = (1e-3, 10.0)
    scale_pos_weight: Literal["search", "balanced", "none"] = "search"
    """search: tune it between 1 and negatives/positives; balanced: fix it at that ratio; none: 1."""


GuardMetric = Literal["roc_auc", "pr_auc", "log_loss", "brier", "lift_top10"]


def _default_guards() -> dict[GuardMetric, float]:
    return {"pr_auc": 0.02, "log_loss": 0.02}


class GateSettings(_Frozen):
    """The promotion gate: when a challenger replaces the champion."""

    margin: float = Field(0.0, ge=0)
    """The challenger must beat the champion's objective metric on the same test data by this much."""
    guards: dict[GuardMetric, float] = Field(default_factory=_default_guards)
    """Metric -> largest tolerated regression (absolute) against the champion."""
    must_beat_baselines: bool = True
    """Refuse a challenger that does not beat the best baseline (logistic regression, recency rule,
    BG/NBD for activity labels) on the test rows: on the objective metric, or on ROC AUC when the
    objective is log loss (the recency rule ranks, it gives no probabilities)."""


class DaskSettings(_Frozen):
    """The Dask engine of training (`training.engine: dask`); README, Training."""

    scheduler: str | None = Field(None, pattern=r"^([a-z]+://)?[^\s/:]+:\d+$")  # tcp://host:8786; None: local
    workers: int = Field(2, gt=0)  # processes of the local cluster
    threads_per_worker: int = Field(1, gt=0)
    data_dir: str = "training-sets"  # the training set's Parquet parts: a path every worker reaches
    chunk_rows: int = Field(500_000, gt=0)  # labelled rows joined through Feast at a time (one part each)
    local_rows: int = Field(200_000, gt=0)  # training rows sampled into this process (regression, BG/NBD)


class TrainingSettings(_Frozen):
    """Tuning, tracking and the model registry."""

    experiment: str = "churn"
    model_name: str = "churn-xgb"
    tracking_uri: str | None = None
    """MLflow tracking URI; None means a SQLite file in the workspace."""
    optuna_storage: str | None = None
    """Optuna storage URI; None means a SQLite file in the workspace."""
    feature_service: str = names.FEATURE_SERVICE
    """The Feast feature service the model trains on (serving reads the same one)."""
    n_trials: int = Field(20, gt=0)
    timeout_s: float | None = Field(None, gt=0)
    seed: int = 42
    metric: Literal["roc_auc", "pr_auc", "log_loss"] = "roc_auc"
    """The objective Optuna optimises and the gate compares."""
    pruning: bool = True
    """Stop unpromising trials early: a median pruner, asked every 10 rounds (`training.pruning.PruningCallback`)."""
    split: SplitSettings = SplitSettings()
    search: SearchSpace = SearchSpace()
    max_rounds: int = Field(300, gt=0)
    early_stopping_rounds: int = Field(30, gt=0)
    regression_rows: int = Field(200_000, gt=0)
    """Most training rows of an out-of-time split the logistic regression (the baseline and the blend's
    linear part) is fitted on: a seeded sample above it (the run's params log how many it saw). The
    Dask engine's local sample (`dask.local_rows`) caps it too."""
    gate: GateSettings = GateSettings()
    blend: BlendSettings = BlendSettings()
    retention_cost: float = Field(5.0, ge=0)
    """Cost of one retention contact, for the profit curve and threshold."""
    retention_success: float = Field(0.25, gt=0, le=1)
    """Share of contacted churners a retention action keeps."""
    as_of: dt.date | None = None
    """Train as if today were this date: only observation dates whose label horizon ended by then
    (backtests and drift scenarios); None uses every labelled date."""
    engine: Literal["local", "dask"] = "local"
    """local: XGBoost in this process; dask: every booster on a Dask cluster with `xgboost.dask` (`dask`)."""
    dask: DaskSettings = DaskSettings()


class ServingSettings(_Frozen):
    """BentoML scoring service."""

    host: str = "127.0.0.1"
    port: int = Field(3000, gt=0, lt=65536)
    api_key: str | None = None
    risk_tiers: dict[str, float] = Field(default_factory=lambda: {"high": 0.5, "medium": 0.2, "low": 0.0})
    """Tier -> lowest probability in that tier."""
    top_reasons: int = Field(3, ge=0)
    explainer: Literal["shap", "approx", "auto"] = "auto"
    """How reasons are computed: `shap`, exact TreeSHAP (by table lookup, `model.treeshap`;
    XGBoost's `pred_contribs` for a model too deep for the tables); `approx`, XGBoost's approximate
    per-path contributions (Saabas): the same top reasons in most rows, and much faster on many
    rows, though not on one (bench/serving.py measures both); `auto`, exact for a request (or a
    `churn score` run) explaining at most `exact_shap_rows` rows, approximate for bigger ones.
    Every answer names the method in `reasons_method`."""
    exact_shap_rows: int = Field(100, ge=0)
    """The most rows `auto` explains with exact TreeSHAP in one request or batch run."""
    batch_reasons_top: int | None = Field(20_000, ge=0)
    """`churn score` gives reasons to this many rows from the top of the alert list (the rows a CRM
    works; reasons cost far more than probabilities); the rest get none (null). None: every row."""
    startup_timeout_s: float = Field(120, gt=0)
    workers: int = Field(1, ge=1)
    """Processes of the scoring API (BentoML workers), each with its own event loop, model copy,
    online reader and prediction log writer. More use more cores for the per-request work."""
    max_concurrency: int | None = Field(64, gt=0)
    """Requests each worker works on at once; more are refused at once with 429 Too many requests
    (load shedding: an overload gets quick refusals, not a queue of timeouts). None: no limit."""
    max_ids: int = Field(1_000, gt=0)
    """Most customer ids (or feature rows) in one request."""
    max_request_bytes: int = Field(4_000_000, gt=0)
    """Larger request bodies are refused with 413 (1,000 rows of 40 features take about 1.4 MB)."""
    reload_interval_s: float = Field(30.0, gt=0)
    """How often the service checks whether the champion alias moved (hot reload)."""
    prediction_log_dir: str = "predictions"
    """Every scored row is appended here (Parquet parts), the monitoring input."""
