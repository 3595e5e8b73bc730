"""Training commands: `train`, `tune-worker`, and the registry's `promote` and `champions`."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.table import Table

from churn.cli.common import ConfigOption, console, fail, load_context, progress, require_registry, sqlite_file
from core.settings import Settings

app = typer.Typer()


@app.command()
def train(
    trials: Annotated[int | None, typer.Option(help="Optuna trials in all (default: from the config).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes working on the study, this one included.")] = 1,
    as_of: Annotated[
        dt.datetime | None,
        typer.Option("--as-of", formats=["%Y-%m-%d"], help="Train as if today were this date (backtests)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Tune XGBoost with Optuna, track every trial in MLflow, evaluate, register and gate the best model.

    With --workers N, N - 1 `churn tune-worker` processes join the study beside this one (the
    study lives in training.optuna_storage: PostgreSQL in configs/services.yaml). --as-of uses
    only the labels known on that date (training.as_of). With training.engine: dask the training
    set is read in partitions and every booster trains on a Dask cluster (training.dask).

    Example: churn train --trials 30 --workers 2
    """
    if as_of is not None and workers > 1:
        raise fail("--as-of applies to this process only", "set training.as_of in the config to use --workers")
    day = as_of.date().isoformat() if as_of else None
    ctx = load_context(config, "train", **{"training.n_trials": trials, "training.as_of": day})
    require_shared_stores(ctx.settings)
    result = train_model(ctx.settings, workers=workers, config=ctx.config_path, trials=trials)
    console.print(
        f"model {result.model_name} v{result.version}: "
        + ", ".join(f"{k}={v:.4f}" for k, v in result.metrics.items() if k.startswith("test_") and "profit" not in k)
        + _cross_validation(result.metrics)
        + f"\nbaselines: the model {result.verdict.line()}"
        + f"\ngate: {'promoted to champion' if result.decision.promote else 'kept champion'} ({result.decision.reason})"
    )


def require_shared_stores(settings: Settings) -> None:
    """End the command when the MLflow tracking server or the Optuna database of the profile does not answer.

    Without this, MLflow retries an absent server for minutes and SQLAlchemy ends in a traceback.

    Args:
        settings: The profile (`training.tracking_uri`, `training.optuna_storage`).
    """
    cfg = settings.training
    server = (
        "run `mlflow server --backend-store-uri <PostgreSQL URI> --artifacts-destination <directory> "
        "--host 0.0.0.0 --port <port>` (README, Training: the scale-out profile)"
    )
    stores = (
        ("training.tracking_uri", cfg.tracking_uri, server),
        ("training.optuna_storage", cfg.optuna_storage, "start PostgreSQL"),
    )
    for key, uri, start in stores:
        parts = urlsplit(uri or "")
        if parts.scheme in ("http", "https"):
            port = parts.port or (443 if parts.scheme == "https" else 80)
        elif parts.scheme.startswith("postgresql"):
            port = parts.port or 5432
        else:
            continue
        try:
            with socket.create_connection((parts.hostname or "localhost", port), timeout=5):
                pass
        except OSError as exc:
            raise fail(
                f"{key}: nothing answers at {parts.hostname}:{port} ({exc.strerror or exc})",
                f"{start}, or point {key} (or its CHURN_* variable) at a running one",
            ) from None


def _cross_validation(metrics: dict[str, float]) -> str:
    """The cross-validation line of a run on one observation date, with the regression on the same folds."""
    if "cv_roc_auc" not in metrics:
        return ""
    return (
        f"\ncross-validated ROC AUC {metrics['cv_roc_auc']:.4f} (std {metrics['cv_roc_auc_std']:.4f}); "
        f"logistic regression on the same folds {metrics['baseline_logistic_regression_cv_roc_auc']:.4f}"
    )


def train_model(settings: Settings, workers: int = 1, config: Path | None = None, trials: int | None = None) -> Any:
    """Run the training job with a progress bar of this process's trials; missing features end the command.

    Args:
        settings: The profile.
        workers: Processes working on the study, this one included.
        config: The config file the tuning workers load.
        trials: The workers' `--trials` (None: the config's).

    Returns:
        The `training.pipeline` result: the registered version, its metrics and the gate's decision.
    """
    from training.distributed import start_workers
    from training.pipeline import EngineError
    from training.pipeline import train as train_job

    hook = start_workers(workers - 1, config, trials) if workers > 1 else None
    try:  # failing after the progress bar has stopped, so that the last line says what to run
        with progress() as bar:
            task = bar.add_task("optuna trials (this process)", total=settings.training.n_trials)
            return train_job(settings, on_trial=lambda _n: bar.advance(task), run_workers=hook)
    except EngineError as exc:
        raise fail(str(exc)) from None
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc), "run `churn features build` and `churn features apply` first") from None


@app.command("tune-worker")
def tune_worker(
    study: Annotated[str, typer.Option(help="The Optuna study to join (printed by `churn train`, tag optuna.study).")],
    trials: Annotated[int | None, typer.Option(help="Trials the study should reach in all.")] = None,
    config: ConfigOption = None,
) -> None:
    """Join a running tuning study and work on it until it has its trials; start one per machine or core.

    Example: churn tune-worker --study churn-xgb-20250101T120000 --config configs/services.yaml
    """
    ctx = load_context(config, "tune-worker", **{"training.n_trials": trials})
    require_shared_stores(ctx.settings)
    storage = sqlite_file(ctx.settings.optuna_uri)
    if storage is not None and not storage.exists():
        raise fail(f"no study '{study}' in {ctx.settings.optuna_uri}: start one with `churn train --workers 2`")
    from training.distributed import StudyMismatchError
    from training.distributed import tune_worker as run_worker
    from training.pipeline import EngineError

    try:
        result = run_worker(ctx.settings, study)
    except (KeyError, StudyMismatchError, FileNotFoundError, ValueError, EngineError) as exc:
        raise fail(str(exc).strip("'\"")) from None
    console.print(
        f"study {result.study_name}: this worker ran {result.trials_run} trials; {result.study_finished} finished"
    )


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="The model version to make champion.")],
    reason: Annotated[str, typer.Option(help="Why: recorded on the version.")],
    config: ConfigOption = None,
) -> None:
    """Make a model version the champion by hand (the override of the promotion gate).

    Example: churn promote 3 --reason "rollback: v4 mis-scores the spring campaign"
    """
    ctx = load_context(config, "promote")
    require_registry(ctx.settings)
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from training.registry import promote as promote_version

    name = ctx.settings.training.model_name
    try:
        previous = promote_version(MlflowClient(ctx.settings.mlflow_uri), name, version, by="manual", reason=reason)
    except MlflowException as exc:
        raise fail(f"model {name} version {version}: {exc.message}", "list versions with `churn champions`") from None
    console.print(f"{name} v{version} is champion (was {'v' + previous if previous else 'none'}): {reason}")


@app.command()
def champions(config: ConfigOption = None) -> None:
    """List every version that was champion: when, by whom (gate or manual) and why.

    Example: churn champions
    """
    ctx = load_context(config, "champions")
    require_registry(ctx.settings)
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from training.registry import champion_history

    name, uri = ctx.settings.training.model_name, ctx.settings.mlflow_uri
    try:
        history = champion_history(MlflowClient(uri), name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        message = f"no model '{name}' in the registry at {uri}: run `churn train` (or `churn quickstart`) first"
        raise fail(message) from None
    table = Table(title=f"champions of {name}")
    for column in ("version", "promoted at", "by", "previous", "reason"):
        table.add_column(column)
    for r in history:
        table.add_row(
            f"v{r.version}" + (" (current)" if r.current else ""),
            r.promoted_at,
            r.promoted_by,
            r.previous or "-",
            r.reason,
        )
    console.print(table)
