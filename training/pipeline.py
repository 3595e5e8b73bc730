"""The training job: Feast training set -> Optuna study -> MLflow run -> registry and gate."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import mlflow
import numpy as np
import pandas as pd
import xgboost as xgb
from mlflow import MlflowClient

from core import names
from core.settings import Settings, resolved_yaml
from crm.campaigns.evaluation import retention_success
from features.labels import known_at
from features.paths import FeaturePaths
from features.pipeline import open_store
from model.bundle import ModelBundle, reference_sample
from model.champion import NoChampionError, load_version
from model.mlflow_adapter import index_installed_packages
from model.pyfunc import log_bundle
from training.claims import reloaded
from training.dataset import Split, cross_validation_split, historical_frame, out_of_time_split, rows_to_retrieve
from training.evaluation import Judged, Verdict, customer_values, judge_on_test
from training.fitting import FinalModel, Regression, final_model, fit_regression
from training.importance import held_out_importance
from training.lineage import fingerprint, git_commit
from training.metrics import evaluate
from training.plots import warm_up as warm_up_plots
from training.registry import GateDecision, champion_version, gate, record_and_apply
from training.report import write_artifacts
from training.tune import PARENT_RUN, Fitter, best_of, negatives_per_positive, open_study, run_trials, score


class EngineError(RuntimeError):
    """The training engine (`training.engine`) cannot run on this profile or data; the message says what to change."""


@dataclass(frozen=True)
class TrainResult:
    """What the training job produced."""

    run_id: str
    model_name: str
    version: str
    metrics: dict[str, float]
    decision: GateDecision
    n_trials: int
    features: tuple[str, ...]
    verdict: Verdict
    """The model against the baselines on the test rows."""


def configure_mlflow(settings: Settings) -> str:
    """Point MLflow at the profile's tracking store and make sure the experiment exists.

    Returns:
        The experiment id.
    """
    if settings.training.tracking_uri is None:
        settings.path("mlflow").mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.mlflow_uri)
    experiment = mlflow.get_experiment_by_name(settings.training.experiment)
    if experiment is None:
        artifacts = settings.mlflow_artifacts if settings.training.tracking_uri is None else None
        experiment_id = mlflow.create_experiment(settings.training.experiment, artifact_location=artifacts)
    else:
        experiment_id = experiment.experiment_id
    # Nested runs (the Optuna trials) land in the active experiment, so make it ours.
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@dataclass(frozen=True)
class Prepared:
    """The training set and its split, as every tuning worker computes them."""

    frame: pd.DataFrame
    """The local engine: the training set, out of time the rows the split keeps and every row of the
    dates the monitoring reference is drawn from. The Dask engine: the rows of its newest
    observation dates; the rest stays on the cluster."""
    split: Split
    fingerprint: str
    fitter: Fitter | None = None
    """Trains the trees on the cluster (the Dask engine); None: in this process."""
    described: dict[str, str | int] | None = None
    """Sizes and dates of the parts, when `split.describe` does not tell them (the Dask engine)."""
    dates: tuple[pd.Timestamp, pd.Timestamp] | None = None
    """The first and last labelled observation dates, when `frame` does not hold them all."""

    def describe(self) -> dict[str, str | int]:
        """Sizes and date ranges of each part, for logging."""
        return self.described if self.described is not None else self.split.describe()

    @property
    def first_date(self) -> pd.Timestamp:
        """The first labelled observation date."""
        return self.dates[0] if self.dates else pd.Timestamp(self.frame[names.EVENT_TIMESTAMP].min())

    @property
    def last_date(self) -> pd.Timestamp:
        """The last labelled observation date."""
        return self.dates[1] if self.dates else pd.Timestamp(self.frame[names.EVENT_TIMESTAMP].max())


def labelled(settings: Settings) -> pd.DataFrame:
    """The labels to train on (`features/labels.parquet`, cut at `training.as_of`).

    Raises:
        FileNotFoundError: The features were not built.
        ValueError: No observation date has a label.
    """
    cfg = settings.training
    paths = FeaturePaths.of(settings)
    if not paths.labels.exists():
        raise FileNotFoundError(f"{paths.labels} does not exist: run `churn features build` and `apply` first")
    labels = pd.read_parquet(paths.labels)
    if cfg.as_of is not None:
        labels = known_at(labels, cfg.as_of, settings.labels.horizon_days)
    if labels.empty:
        when = f" known at training.as_of={cfg.as_of}" if cfg.as_of is not None else ""
        raise ValueError(
            f"no labelled observation dates{when}: generate or ingest a longer history than the label horizon"
        )
    return labels


def prepare(settings: Settings) -> Prepared:
    """The labelled training set through Feast and its split: out of time, or cross-validation when
    every label is at one observation date (a customer table without a time axis).

    Deterministic for the same data and config, so a tuning worker on another machine builds the
    same split (and checks the fingerprint).
    """
    cfg = settings.training
    labels = labelled(settings)  # first: without a feature build, fail before the Feast store is opened (and created)
    dates = labels[names.EVENT_TIMESTAMP].unique()
    embargo = cfg.split.embargo_days if cfg.split.embargo_days is not None else settings.labels.horizon_days
    test_dates, valid_dates, test_customers = cfg.split.test_dates, cfg.split.valid_dates, cfg.split.test_customers
    if len(dates) > 1:  # out of time: only the rows the split and the drift reference use
        labels = rows_to_retrieve(
            labels,
            test_dates=test_dates,
            valid_dates=valid_dates,
            embargo_days=embargo,
            test_customers=test_customers,
            seed=cfg.seed,
            reference_rows=settings.monitoring.reference_sample,
        )
    frame = historical_frame(open_store(settings), labels, cfg.feature_service)
    features = [c for c in frame.columns if c not in (names.CUSTOMER_ID, names.EVENT_TIMESTAMP, names.LABEL)]
    if len(dates) == 1:  # no time axis: cross-validation
        split = cross_validation_split(
            frame, features, folds=cfg.split.cv_folds, test_share=cfg.split.test_share, seed=cfg.seed
        )
        return Prepared(frame, split, fingerprint(frame))
    # The hash and the split read the same frame and both spend most of their time in NumPy and
    # pandas loops that let go of the GIL: side by side they take little longer than the split.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fingerprint") as background:
        digest = background.submit(fingerprint, frame)
        split = out_of_time_split(
            frame,
            features,
            test_dates=test_dates,
            valid_dates=valid_dates,
            embargo_days=embargo,
            test_customers=test_customers,
            seed=cfg.seed,
            dates=dates,
        )
        return Prepared(frame, split, digest.result())


@contextmanager
def prepared_on_engine(settings: Settings) -> Iterator[Prepared]:
    """The training set on the profile's engine (`training.engine`), for the duration of the block.

    local: `prepare`. dask: the training set in partitions on the cluster (`training.dask_engine`),
    with a fitter that trains there; the cluster is closed (a local one stopped) on exit.
    """
    if settings.training.engine == "local":
        yield prepare(settings)
        return
    from training.dask_engine import dask_training_set

    with dask_training_set(settings, labelled(settings)) as (data, fitter, digest):
        yield Prepared(data.newest, data.split, digest, fitter, data.describe(), (data.first_date, data.last_date))


def train(
    settings: Settings,
    on_trial: Callable[[int], None] | None = None,
    run_workers: Callable[[str], Callable[[], None]] | None = None,
    tags: Mapping[str, str] | None = None,
) -> TrainResult:
    """Tune, train, evaluate, log and register a churn model; promote it through the gate.

    Nothing touches the `champion` alias until the very end, after the gate: a failed or
    interrupted training leaves the champion as it was.

    Args:
        settings: The profile.
        on_trial: Called after each Optuna trial of this process with its number (progress bars).
        run_workers: Called with the study name once the study exists; starts other processes
            that join it (`churn train --workers N`) and returns a function that waits for them.
        tags: Extra tags for the training run and the registered version (e.g. the monitoring
            run that asked for this retraining).

    Returns:
        The registered version, its metrics and the gate decision.
    """
    experiment_id = configure_mlflow(settings)
    with prepared_on_engine(settings) as prepared:
        return _train(settings, experiment_id, prepared, on_trial, run_workers, tags)


def _train(
    settings: Settings,
    experiment_id: str,
    prepared: Prepared,
    on_trial: Callable[[int], None] | None,
    run_workers: Callable[[str], Callable[[], None]] | None,
    tags: Mapping[str, str] | None,
) -> TrainResult:
    """`train` on a prepared training set."""
    cfg = settings.training
    split, frame = prepared.split, prepared.frame
    features = list(split.features)
    success = retention_success(settings)  # the campaigns' measured effect once there is one
    client = MlflowClient(settings.mlflow_uri)
    if cfg.optuna_storage is None:
        settings.path("optuna").mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    # Under `mlflow run` the project's run id arrives in MLFLOW_RUN_ID; start_run would resume that
    # run (in another experiment) instead of starting ours, so take it out and keep it as a tag.
    launcher = os.environ.pop("MLFLOW_RUN_ID", None)
    run_tags = {"churn.launched_by_run": launcher} if launcher else {}
    study_name = f"{cfg.model_name}-{stamp}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{stamp}", tags=run_tags) as run:
        with TemporaryDirectory() as tmp:
            cfg_path = Path(tmp) / "config.yaml"
            cfg_path.write_text(resolved_yaml(settings))
            mlflow.log_artifact(str(cfg_path))
        lineage = {
            "feature_service": cfg.feature_service,
            "data.fingerprint": prepared.fingerprint,
            "data.first_date": str(prepared.first_date.date()),
            "data.last_date": str(prepared.last_date.date()),
            "training.engine": cfg.engine,
            "git.commit": git_commit(),
            "optuna.study": study_name,
            **(tags or {}),
        }
        mlflow.set_tags(lineage)
        mlflow.log_params({"n_features": len(features), "retention_success": success.value, **prepared.describe()})
        mlflow.set_tags({"retention_success.source": success.source, "retention_success.note": success.note})
        study = open_study(study_name, settings.optuna_uri, cfg.metric, cfg.seed, cfg.pruning)
        study.set_user_attr(PARENT_RUN, run.info.run_id)
        study.set_user_attr("data.fingerprint", prepared.fingerprint)
        wait = run_workers(study_name) if run_workers else None
        trained: dict[int, xgb.Booster] = {}  # the best trial of this process: the final trees, not trained twice
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="regression") as background:
            # The logistic regression needs no trees: it fits while the trials train (XGBoost lets
            # go of the GIL), instead of after them. At the lowest priority (nice 19) the trials
            # and the regression both took longer, so it runs at theirs.
            regression: Future[Regression] | None = None
            if not split.cross_validated:
                regression = background.submit(fit_regression, split, cfg)
            # The logging's one-time work, done ahead; should one fail, the logging does it again and says why.
            for warm_up in (warm_up_plots, index_installed_packages):
                background.submit(warm_up)
            run_trials(
                study,
                split,
                cfg,
                storage=settings.optuna_uri,
                total_trials=cfg.n_trials,
                timeout_s=cfg.timeout_s,
                on_trial=on_trial,
                fitter=prepared.fitter,
                best_booster=trained,
            )
            if wait:
                wait()
            fitted = regression.result() if regression is not None else None
        y_train = split.y("train")
        finished = reloaded(study, settings.optuna_uri)
        result = best_of(finished, cfg.search, negatives_per_positive(y_train), cfg.metric)
        mlflow.log_params({f"best_{k}": v for k, v in result.best_params.items()})
        mlflow.log_metrics({"n_trials": float(result.n_trials), "n_pruned": float(result.n_pruned)})

        best = trained.get(finished.best_trial.number)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="importance") as background:
            # The trial's trees are the final trees: explain them while the blend and calibration are chosen.
            explained = None
            if best is not None:
                explained = background.submit(held_out_importance, best, split.valid, split.train, cfg.seed)
            model = final_model(result.best_params, split, cfg, prepared.fitter, best, fitted)
            mlflow.log_params({"baseline_logistic_regression_rows": model.regression_rows})
            bundle = ModelBundle(model.booster, model.calibration, None, model.linear)
            judged = judge_on_test(settings, split, bundle.probabilities(split.test), model.regression, success.value)
            importance = explained.result() if explained else None
        metrics = _log_evaluation(settings, split, model, judged, success.note, importance)
        bundle.reference = reference_sample(bundle, frame, settings.monitoring.reference_sample, cfg.seed)
        calibration = str(model.calibration_decision.method) if model.calibration else "none"
        blend = f"trees {model.tree_weight:.2f} + logistic regression" if model.linear else "trees alone"
        tags = {**lineage, "features": ",".join(features), "calibration": calibration, "blend": blend}
        tags["baselines.verdict"] = judged.verdict.line()
        info = log_bundle(bundle, split.train, registered_model_name=cfg.model_name, version_tags=tags)
        version = str(info.registered_model_version)
    client.set_registered_model_alias(cfg.model_name, names.CHALLENGER_ALIAS, version)
    decision = _gate(settings, client, judged, split, success.value)
    record_and_apply(client, cfg.model_name, version, decision)
    return TrainResult(
        run.info.run_id, cfg.model_name, version, metrics, decision, result.n_trials, tuple(features), judged.verdict
    )


def _log_evaluation(
    settings: Settings, split: Split, model: FinalModel, judged: Judged, success_note: str, importance: pd.Series | None
) -> dict[str, float]:
    """Log the held-out and test metrics and the evaluation artifacts (the report says which offer success
    the profit used); return the valid/cv/test metrics. `importance`: the trees' SHAP importance; None:
    computed here."""
    cfg = settings.training
    holdout = model.metrics(cfg.metric)
    valid = {}
    if not split.cross_validated:
        y = split.valid[names.LABEL].to_numpy()
        valid = {f"valid_{m}": score(m, y, model.holdout_proba) for m in ("roc_auc", "pr_auc", "log_loss")}
    logged = {**holdout, **valid, **judged.metrics(), "n_trees": float(model.booster.num_boosted_rounds())}
    mlflow.log_metrics({k: v for k, v in logged.items() if np.isfinite(v)})
    mlflow.set_tag("baselines.verdict", judged.verdict.line())
    if importance is None:
        importance = held_out_importance(model.booster, split.valid, split.train, cfg.seed)
    with TemporaryDirectory() as tmp:
        write_artifacts(
            tmp,
            judged.model,
            judged.baselines,
            importance,
            title=f"{cfg.model_name}: evaluation on the test {'rows' if split.cross_validated else 'period'}",
            success_note=success_note,
        )
        mlflow.log_artifacts(tmp, artifact_path="evaluation")
    return {k: v for k, v in logged.items() if k.startswith(("valid_", "test_", "cv_", "baseline_"))}


def champion_test_metrics(
    settings: Settings, client: MlflowClient, split: Split, success_rate: float | None = None
) -> tuple[str | None, dict[str, float] | str]:
    """The champion's metrics on this split's test part (with its own calibration), or why there are none.

    `success_rate`: the offer success of the profit (default `training.retention_success`)."""
    cfg = settings.training
    current = champion_version(client, cfg.model_name)
    if current is None:
        return None, "no champion yet"
    try:
        champion = load_version(settings.mlflow_uri, cfg.model_name, current).bundle
    except NoChampionError as exc:
        return current, f"{exc}; or make the challenger champion with `churn promote`"
    missing = set(champion.features) - set(split.test.columns)
    if missing:
        return current, f"champion v{current} needs features {sorted(missing)} this data lacks: not comparable"
    proba = champion.probabilities(split.test)
    y = split.test[names.LABEL].to_numpy()
    value = customer_values(settings, split.test)
    success = cfg.retention_success if success_rate is None else success_rate
    ev = evaluate(y, proba, retention_cost=cfg.retention_cost, customer_value=value, success_rate=success)
    return current, ev.metrics()


def _gate(settings: Settings, client: MlflowClient, judged: Judged, split: Split, success: float) -> GateDecision:
    """The promotion gate: the challenger against the baselines and the champion on the same test rows."""
    cfg = settings.training
    challenger = judged.model.metrics()
    guards = {str(k): v for k, v in cfg.gate.guards.items()}
    baselines = judged.verdict if cfg.gate.must_beat_baselines else None
    current, champion = champion_test_metrics(settings, client, split, success)
    if isinstance(champion, str):
        if current is None:
            return gate(cfg.metric, challenger, None, None, cfg.gate.margin, guards, baselines)
        return GateDecision(
            False, f"{champion}: champion kept", cfg.metric, challenger, None, current, [], judged.verdict.baselines
        )
    return gate(cfg.metric, challenger, champion, current, cfg.gate.margin, guards, baselines)
