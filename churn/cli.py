"""The `churn` command line: the only module that wires the stages together.

Stage modules are imported inside the commands that use them: Feast, MLflow and BentoML take
seconds to import, and `churn --help` should not wait for them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from core import names
from core.settings import (
    CONFIG_ENV,
    DEFAULT_CONFIG,
    ConfigError,
    Settings,
    load_settings,
    parse_settings,
    resolved_yaml,
)

console = Console()
log = logging.getLogger("churn")

app = typer.Typer(
    help="Churn prediction platform: data -> Feast features -> Optuna/XGBoost in MLflow -> BentoML -> Evidently.\n\n"
    "Example: churn quickstart",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
data_app = typer.Typer(help="Generate or ingest CRM data.\n\nExample: churn data generate --customers 1000 --days 180")
features_app = typer.Typer(help="Build behaviour features and load them into Feast.\n\nExample: churn features build")
config_app = typer.Typer(
    help="Inspect the typed configuration.\n\nExample: churn config show --config configs/default.yaml"
)
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")
app.add_typer(config_app, name="config")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help=f"Config file (default: ${CONFIG_ENV} or configs/default.yaml).", exists=False),
]


@dataclass
class Context:
    """What every command receives: the settings and the config file they came from."""

    settings: Settings
    config_path: Path
    extra: dict[str, Any] = field(default_factory=dict)


def _fail(message: str, hint: str | None = None) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    if hint:
        console.print(f"[yellow]next:[/] {hint}")
    return typer.Exit(code=1)


def _load(config: Path | None, job: str, **overrides: Any) -> Context:
    """Load settings (with CLI overrides) and log the resolved config for this job."""
    path = (config or Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)).resolve()
    try:
        settings = load_settings(path)
        if overrides:
            settings = _override(settings, overrides, str(path))
    except ConfigError as exc:
        raise _fail(str(exc), "fix the key named above in the config file") from None
    logs = settings.path("logs")
    logs.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    logfile = logs / f"{job}-{stamp}.log"
    handler = logging.FileHandler(logfile)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler, RichHandler(console=console, level=logging.ERROR, show_path=False)]
    root.setLevel(logging.INFO)
    # Library chatter (MLflow's INFO lines, deprecation warnings of dependencies) goes to the log
    # file only; the console shows our progress and results.
    logging.captureWarnings(True)
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    log.info("job %s with config %s resolved to:\n%s", job, path, resolved_yaml(settings))
    console.print(f"[dim]{job}: config {path}; resolved config logged to {logfile}[/]")
    return Context(settings, path)


def _override(settings: Settings, overrides: dict[str, Any], source: str) -> Settings:
    tree = settings.model_dump(mode="json")
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = tree
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return parse_settings(tree, f"{source} (with command-line options)", env={})


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


# ---------------------------------------------------------------- data


@data_app.command("generate")
def data_generate(
    customers: Annotated[int | None, typer.Option(help="Number of customers.")] = None,
    days: Annotated[int | None, typer.Option(help="Days of history.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed: the same seed gives the same files.")] = None,
    drift_at: Annotated[int | None, typer.Option("--drift-at", help="Day from which behaviour drifts.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <workspace>/raw).")] = None,
    config: ConfigOption = None,
) -> None:
    """Generate a synthetic CRM export (customers.parquet, events.parquet).

    Example: churn data generate --customers 100000 --days 365 --seed 7 --drift-at 200
    """
    ctx = _load(
        config,
        "data-generate",
        **{
            "generator.customers": customers,
            "generator.days": days,
            "generator.seed": seed,
            "generator.drift_at": drift_at,
        },
    )
    result = _generate(ctx.settings, out)
    console.print(f"wrote {result['customers_path']} and {result['events_path']} ({result['events']:,} events)")


def _generate(settings: Settings, out: Path | None = None) -> dict[str, Any]:
    from features.generator.dataset import generate, write_generated

    g = settings.generator
    target = out or settings.path("raw")
    with _progress() as progress:
        task = progress.add_task("generating customers", total=g.customers)
        data = generate(
            g.customers,
            g.days,
            g.seed,
            start_date=g.start_date,
            drift_at=g.drift_at,
            progress=lambda n: progress.advance(task, n),
        )
    customers_path, events_path = write_generated(data, target)
    return {"customers_path": customers_path, "events_path": events_path, "events": data.events.num_rows}


@data_app.command("ingest")
def data_ingest(
    customers: Annotated[Path | None, typer.Option(help="Customers CSV/Parquet (default: from the config).")] = None,
    events: Annotated[Path | None, typer.Option(help="Events CSV/Parquet (default: from the config).")] = None,
    config: ConfigOption = None,
) -> None:
    """Validate a CRM export against the data contract; bad rows go to quarantine with a reason.

    Example: churn data ingest --events exports/transactions.csv --config configs/my-shop.yaml
    """
    ctx = _load(config, "data-ingest")
    report = _ingest(ctx.settings, customers, events)
    console.print(report.summary_table())


def _ingest(settings: Settings, customers: Path | None = None, events: Path | None = None) -> Any:
    from features.contract.fields import ContractError
    from features.ingest import ingest

    try:
        return ingest(settings, customers_path=customers, events_path=events)
    except ContractError as exc:
        raise _fail(str(exc), "fix the column mapping under data: in the config and run again") from None
    except FileNotFoundError as exc:
        raise _fail(
            str(exc), "generate data with `churn data generate` or point --events/--customers at your export"
        ) from None


# ---------------------------------------------------------------- features


@features_app.command("build")
def features_build(
    full: Annotated[
        bool, typer.Option("--full", help="Recompute every observation date, not only those new data touches.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Compute behaviour snapshots and churn labels from the ingested data (DuckDB over Parquet).

    By default the build is incremental: only observation dates after the earliest changed day
    of data are recomputed; the result equals a full rebuild.

    Example: churn features build --config configs/default.yaml
    """
    ctx = _load(config, "features-build")
    result = _build(ctx.settings, incremental=not full)
    console.print(
        f"{result.rows:,} snapshot rows x {len(result.features)} features over {len(result.observation_dates)} "
        f"observation dates ({len(result.recomputed_dates)} computed, the rest unchanged); "
        f"{result.labelled_rows:,} labelled (churn rate {result.churn_rate:.1%}) -> {result.snapshots}"
    )


def _build(settings: Settings, incremental: bool = True) -> Any:
    from features.pipeline import build_features

    try:
        with console.status("computing behaviour features"):
            return build_features(settings, incremental=incremental)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None


@features_app.command("apply")
def features_apply(config: ConfigOption = None) -> None:
    """Register the entity, feature views and feature service in the Feast registry.

    Example: churn features apply
    """
    ctx = _load(config, "features-apply")
    from features.pipeline import apply_features

    with console.status("feast apply"):
        applied = apply_features(ctx.settings)
    console.print(f"applied {', '.join(applied)}")


@features_app.command("training-set")
def features_training_set(
    out: Annotated[Path, typer.Option(help="Parquet file to write.")],
    service: Annotated[str, typer.Option(help="Feast feature service naming the features.")] = names.FEATURE_SERVICE,
    config: ConfigOption = None,
) -> None:
    """Write the labelled training set, joined point-in-time through Feast, to a Parquet file.

    Example: churn features training-set --out workspace/training_set.parquet --service churn_behaviour_v1
    """
    ctx = _load(config, "features-training-set")
    from core.io import write_atomic_parquet
    from features.pipeline import training_set

    try:
        with console.status("get_historical_features"):
            frame = training_set(ctx.settings, service)
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None
    except Exception as exc:  # Feast's errors for an unknown service or unapplied repo
        if "FeatureService" in type(exc).__name__ or "not found" in str(exc).lower():
            raise _fail(f"feature service '{service}': {exc}", "run `churn features apply` first") from None
        raise
    write_atomic_parquet(frame, out)
    features = [c for c in frame.columns if c not in (names.CUSTOMER_ID, names.EVENT_TIMESTAMP, names.LABEL)]
    console.print(
        f"{len(frame):,} rows x {len(features)} features, churn rate {frame[names.LABEL].mean():.1%} -> {out}"
    )


@features_app.command("materialize")
def features_materialize(
    start: Annotated[dt.datetime | None, typer.Option(help="Start (UTC); default: the first snapshot.")] = None,
    end: Annotated[dt.datetime | None, typer.Option(help="End (UTC); default: the last snapshot.")] = None,
    incremental: Annotated[
        bool, typer.Option("--incremental", help="Only what is new since the last materialization (up to --end).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Load feature snapshots into the Feast online store.

    Example: churn features materialize --start 2025-01-01 --end 2025-07-01

    After new data: churn features build && churn features materialize --incremental
    """
    ctx = _load(config, "features-materialize")
    from features.pipeline import materialize, materialize_incremental

    utc = [d.replace(tzinfo=dt.UTC) if d and d.tzinfo is None else d for d in (start, end)]
    try:
        with console.status("materializing to the online store"):
            if incremental:
                e = materialize_incremental(ctx.settings, utc[1])
                console.print(f"materialized new snapshots up to {e}")
                return
            s, e = materialize(ctx.settings, utc[0], utc[1])
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None
    console.print(f"materialized snapshots from {s} to {e}")


# ---------------------------------------------------------------- training


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
    only the labels known on that date (training.as_of).

    Example: churn train --trials 30 --workers 2
    """
    if as_of is not None and workers > 1:
        raise _fail("--as-of applies to this process only", "set training.as_of in the config to use --workers")
    day = as_of.date().isoformat() if as_of else None
    ctx = _load(config, "train", **{"training.n_trials": trials, "training.as_of": day})
    result = _train(ctx.settings, workers=workers, config=ctx.config_path, trials=trials)
    console.print(
        f"model {result.model_name} v{result.version}: "
        + ", ".join(f"{k}={v:.4f}" for k, v in result.metrics.items() if k.startswith("test_") and "profit" not in k)
        + f"\ngate: {'promoted to champion' if result.decision.promote else 'kept champion'} ({result.decision.reason})"
    )


def _train(settings: Settings, workers: int = 1, config: Path | None = None, trials: int | None = None) -> Any:
    from training.distributed import start_workers
    from training.pipeline import train as train_job

    hook = start_workers(workers - 1, config, trials) if workers > 1 else None
    with _progress() as progress:
        task = progress.add_task("optuna trials (this process)", total=settings.training.n_trials)
        try:
            return train_job(settings, on_trial=lambda _n: progress.advance(task), run_workers=hook)
        except (FileNotFoundError, ValueError) as exc:
            raise _fail(str(exc), "run `churn features build` and `churn features apply` first") from None


@app.command("tune-worker")
def tune_worker(
    study: Annotated[str, typer.Option(help="The Optuna study to join (printed by `churn train`, tag optuna.study).")],
    trials: Annotated[int | None, typer.Option(help="Trials the study should reach in all.")] = None,
    config: ConfigOption = None,
) -> None:
    """Join a running tuning study and work on it until it has its trials; start one per machine or core.

    Example: churn tune-worker --study churn-xgb-20250101T120000 --config configs/services.yaml
    """
    ctx = _load(config, "tune-worker", **{"training.n_trials": trials})
    from training.distributed import StudyMismatchError
    from training.distributed import tune_worker as run_worker

    try:
        result = run_worker(ctx.settings, study)
    except (KeyError, StudyMismatchError, FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc).strip("'\"")) from None
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
    ctx = _load(config, "promote")
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from training.registry import promote as promote_version

    name = ctx.settings.training.model_name
    try:
        previous = promote_version(MlflowClient(ctx.settings.mlflow_uri), name, version, by="manual", reason=reason)
    except MlflowException as exc:
        raise _fail(f"model {name} version {version}: {exc.message}", "list versions with `churn champions`") from None
    console.print(f"{name} v{version} is champion (was {'v' + previous if previous else 'none'}): {reason}")


@app.command()
def champions(config: ConfigOption = None) -> None:
    """List every version that was champion: when, by whom (gate or manual) and why.

    Example: churn champions
    """
    ctx = _load(config, "champions")
    from mlflow import MlflowClient

    from training.registry import champion_history

    history = champion_history(MlflowClient(ctx.settings.mlflow_uri), ctx.settings.training.model_name)
    table = Table(title=f"champions of {ctx.settings.training.model_name}")
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


# ---------------------------------------------------------------- serving


@app.command()
def serve(
    port: Annotated[int | None, typer.Option(help="Port (default: from the config).")] = None,
    config: ConfigOption = None,
) -> None:
    """Serve the champion model over HTTP with BentoML (POST /score, /score_features, /model).

    Example: churn serve --port 3000

    Then: curl -X POST localhost:3000/score -H 'content-type: application/json' -d '{"customer_ids": ["C0000001"]}'
    """
    ctx = _load(config, "serve", **{"serving.port": port})
    s = ctx.settings.serving
    raise typer.Exit(subprocess.call(_serve_command(s.host, s.port), env=_service_env(ctx), cwd=_repo_root()))


def _serve_command(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "serving.service:ChurnService",
        "--host",
        host,
        "--port",
        str(port),
    ]


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def _service_env(ctx: Context) -> dict[str, str]:
    env = dict(os.environ)
    env[CONFIG_ENV] = str(ctx.config_path)
    env["CHURN_WORKSPACE"] = str(Path(ctx.settings.workspace).resolve())
    env.setdefault("BENTOML_HOME", str(ctx.settings.path("bentoml")))
    env.setdefault("BENTOML_DO_NOT_TRACK", "true")
    return env


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_service(ctx: Context, timeout_s: float) -> Iterator[str]:
    """Start the BentoML service in a subprocess on a free port; yield its URL; stop it."""
    host = ctx.settings.serving.host
    port = _free_port(host)
    logfile = ctx.settings.path("logs") / f"service-{port}.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "w") as out:
        proc = subprocess.Popen(
            _serve_command(host, port),
            env=_service_env(ctx),
            cwd=_repo_root(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the service exited with code {proc.returncode}; see {logfile}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service was not ready after {timeout_s:.0f} s; see {logfile}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


@app.command()
def score(
    out: Annotated[Path, typer.Option(help="Alert list to write: .csv or .parquet.")],
    as_of: Annotated[
        dt.datetime | None, typer.Option("--as-of", help="Score the newest snapshot on or before this date.")
    ] = None,
    reasons_top: Annotated[
        str | None,
        typer.Option(
            "--reasons-top",
            help="How many rows from the top of the list get reasons, or 'all' (default: serving.batch_reasons_top).",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Score every active customer with the champion and write the CRM alert list, sorted by expected loss.

    Each row: churn probability, risk tier, top reasons (for the top of the list), warning rules
    hit, segment and layers, recommended action, customer value and expected loss (probability x value).

    Example: churn score --as-of 2025-06-30 --out workspace/alerts.csv
    """
    top_rows = _reasons_top(reasons_top)  # a bad value fails before anything loads
    ctx = _load(config, "score")
    alerts = _alerts(ctx.settings, as_of.date() if as_of else None, top_rows)
    from crm.alerts import write_alerts

    try:
        write_alerts(alerts, out)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    top = alerts.head(10)
    table = Table(title=f"top alerts as of {alerts['as_of'].iloc[0] if len(alerts) else '-'}")
    for column in ("customer_id", "churn_probability", "risk_tier", "segment", "action", "expected_loss"):
        table.add_column(column, justify="right" if column in ("churn_probability", "expected_loss") else "left")
    for row in top.itertuples(index=False):
        table.add_row(
            row.customer_id,
            f"{row.churn_probability:.2f}",
            row.risk_tier,
            row.segment,
            row.action,
            f"{row.expected_loss:,.0f}",
        )
    console.print(table)
    console.print(f"{len(alerts):,} customers scored -> {out}")


def _reasons_top(text: str | None) -> Any:  # noqa: ANN401 - an int, None (all) or crm.alerts.DEFAULT
    """`--reasons-top`: a count, 'all' (None) or, when not given, the settings' value."""
    from crm.alerts import DEFAULT

    if text is None:
        return DEFAULT
    if text.strip().lower() == "all":
        return None
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise _fail(f"--reasons-top: expected a count of rows (0 or more) or 'all', got '{text}'")
    return count


def _alerts(settings: Settings, as_of: dt.date | None, reasons_top: Any) -> Any:  # noqa: ANN401
    """The champion's alert list as of `as_of`, with a progress bar; `reasons_top` as `_reasons_top` gives it."""
    from crm.alerts import score_alerts
    from crm.early_warning import CrmConfigError
    from model.champion import NoChampionError, load_champion
    from model.predictor import predictor_of

    try:
        predictor = predictor_of(load_champion(settings.mlflow_uri, settings.training.model_name), settings.serving)
        with _progress() as progress:
            task = progress.add_task("scoring customers", total=None)
            return score_alerts(
                settings,
                predictor,
                as_of,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
                reasons_top=reasons_top,
            )
    except (NoChampionError, FileNotFoundError, ValueError, CrmConfigError) as exc:
        raise _fail(str(exc)) from None


@app.command()
def report(
    out: Annotated[Path | None, typer.Option(help="HTML file (default: <workspace>/reports/ops-<time>.html).")] = None,
    as_of: Annotated[
        dt.datetime | None, typer.Option("--as-of", help="Alerts of the newest snapshot on or before this date.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Write the ops report: churn trend, cohort retention, risk mix, segments, actions and top alerts (HTML).

    Example: churn report --out workspace/reports/ops.html
    """
    ctx = _load(config, "report")
    alerts = _alerts(ctx.settings, as_of.date() if as_of else None, _reasons_top(None))
    from core.io import write_atomic_text
    from crm.report import build_report

    with console.status("building the ops report"):
        html = build_report(ctx.settings, alerts)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = out or ctx.settings.path(ctx.settings.monitoring.reports_dir) / f"ops-{stamp}.html"
    write_atomic_text(html, target)
    console.print(f"ops report for {len(alerts):,} customers -> {target}")


# ---------------------------------------------------------------- monitoring


@app.command()
def monitor(
    window: Annotated[
        str | None,
        typer.Option(help="Window length before --end (or now): 7d, 36h, 2w. Default: monitoring.window_days."),
    ] = None,
    start: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Window start (UTC midnight); default: end - window."),
    ] = None,
    end: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Window end (UTC midnight): the run acts as of this date (backtest)."),
    ] = None,
    mode: Annotated[
        str | None, typer.Option(help="serving (prediction log), batch (feature snapshots) or auto.")
    ] = None,
    retrain_on_drift: Annotated[
        bool, typer.Option("--retrain-on-drift", help="On a retrain decision: fresh features, a challenger, the gate.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Drift of a window's data and scores vs the champion's training sample (Evidently), and the policy's verdict.

    Writes an HTML report and a JSON summary per run to the reports folder, refreshes its
    index.html, adds the run to the Evidently workspace and records it in MLflow. With
    --retrain-on-drift, a "retrain" decision trains a challenger and runs the promotion gate.

    Example: churn monitor --window 7d --retrain-on-drift
    """
    ctx = _load(config, "monitor")
    settings = ctx.settings
    from churn.loop import retrainer_for
    from model.champion import NoChampionError
    from monitoring.jobs import Window, run_monitor
    from monitoring.policy import parse_window

    if mode is not None and mode not in ("auto", "serving", "batch"):
        raise _fail(f"--mode {mode!r}: expected serving, batch or auto")
    try:
        length = parse_window(window) if window else dt.timedelta(days=settings.monitoring.window_days)
    except ValueError as exc:
        raise _fail(f"--window: {exc}") from None
    backtest = end is not None
    stop = end.replace(tzinfo=dt.UTC) if end else dt.datetime.now(dt.UTC)
    begin = start.replace(tzinfo=dt.UTC) if start else stop - length
    if begin >= stop:
        raise _fail(f"--start {begin:%Y-%m-%d} is not before the window's end {stop:%Y-%m-%d %H:%M}")
    with console.status("monitoring") as status:
        try:
            result = run_monitor(
                settings,
                Window(begin, stop),
                mode=mode,  # type: ignore[arg-type]
                retrainer=retrainer_for(settings) if retrain_on_drift else None,
                backtest=backtest,
                on_step=lambda text: status.update(text),
            )
        except NoChampionError as exc:
            raise _fail(str(exc)) from None
        except (FileNotFoundError, ValueError) as exc:
            raise _fail(str(exc)) from None
    _print_monitor(result)


def _print_monitor(result: Any) -> None:  # noqa: ANN401
    s = result.summary
    colour = {"ok": "green", "warning": "yellow", "drift": "red"}[s.status]
    console.print(
        f"[bold {colour}]{s.status}[/] {s.mode} mode, "
        f"{s.window_start:%Y-%m-%d %H:%M} .. {s.window_end:%Y-%m-%d %H:%M}, "
        f"champion v{s.model_version}: {s.current_rows:,} rows; {s.features.drifted_columns}/{s.features.n_columns} "
        "features drifted"
        + (f"; prediction drift {s.prediction.value:.3f}" if s.prediction else "")
        + (
            f"; AUC on matured labels {s.performance.roc_auc:.3f}"
            if s.performance and s.performance.roc_auc is not None
            else ""
        )
    )
    d = s.decision
    verdict = (
        "retrain"
        if d.retrain
        else (f"cool-down until {d.cooldown_until:%Y-%m-%d}" if d.cooldown_until else "no action")
    )
    console.print(f"decision: {verdict}" + (f" ({'; '.join(d.reasons)})" if d.reasons else ""))
    if s.retraining is not None:
        r = s.retraining
        if r.error:
            console.print(f"[red]retraining failed:[/] {r.error}; champion stays v{r.champion_after}")
        else:
            console.print(
                f"retrained: run {r.training_run_id} -> v{r.challenger_version}: "
                f"{'promoted to champion' if r.promoted else 'champion kept'} ({r.gate_reason}); "
                f"champion v{r.champion_before} -> v{r.champion_after}"
            )
    console.print(f"report {result.html}\nsummary {result.summary_json}\nindex {result.index}")


# ---------------------------------------------------------------- config


@config_app.command("show")
def config_show(config: ConfigOption = None) -> None:
    """Print the resolved configuration (file + CHURN_* overrides), secrets masked.

    Example: CHURN_MLFLOW_TRACKING_URI=postgresql://... churn config show
    """
    ctx = _load(config, "config-show")
    console.print(resolved_yaml(ctx.settings), markup=False, highlight=False)


# ---------------------------------------------------------------- quickstart


@app.command()
def quickstart(
    customers: Annotated[int, typer.Option(help="Customers to generate.")] = 2000,
    days: Annotated[int, typer.Option(help="Days of history to generate.")] = 180,
    trials: Annotated[int, typer.Option(help="Optuna trials.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed for data and tuning.")] = 42,
    config: ConfigOption = None,
) -> None:
    """Run the whole loop on embedded defaults: data, features, Feast, Optuna+MLflow, BentoML, Evidently.

    Example: churn quickstart --customers 2000 --days 180 --trials 10
    """
    ctx = _load(
        config,
        "quickstart",
        **{
            "generator.customers": customers,
            "generator.days": days,
            "generator.seed": seed,
            "training.n_trials": trials,
            "training.seed": seed,
        },
    )
    settings = ctx.settings
    started = time.perf_counter()
    steps: list[tuple[str, str]] = []

    def step(name: str, detail: str) -> None:
        steps.append((name, detail))
        console.print(f"[green]✓[/] {name}: {detail}")

    generated = _generate(settings)
    step("generate", f"{customers:,} customers, {generated['events']:,} events -> {generated['events_path'].parent}")
    report = _ingest(settings)
    step("ingest", f"{report.events.valid_rows:,} valid events, {report.events.quarantined_rows:,} quarantined")
    built = _build(settings)
    step("features", f"{built.rows:,} snapshots x {len(built.features)} features, churn rate {built.churn_rate:.1%}")

    from features.pipeline import apply_features, latest_snapshot, materialize

    with console.status("feast apply + materialize"):
        apply_features(settings)
        start, end = materialize(settings)
    step(
        "feast",
        f"applied and materialized {start:%Y-%m-%d}..{end:%Y-%m-%d} "
        f"into the {settings.feast.online_store.type} online store",
    )
    trained = _train(settings)
    step(
        "train",
        f"{trained.n_trials} trials; v{trained.version} valid AUC {trained.metrics['valid_roc_auc']:.3f}; "
        f"{'champion' if trained.decision.promote else 'challenger'} ({trained.decision.reason})",
    )

    ids = latest_snapshot(settings, columns=[names.CUSTOMER_ID])[names.CUSTOMER_ID].head(5).tolist()
    with (
        console.status("starting the BentoML service"),
        running_service(ctx, settings.serving.startup_timeout_s) as url,
    ):
        response = httpx.post(f"{url}/score", json={"customer_ids": ids}, timeout=60)
        response.raise_for_status()
        scores = response.json()
    step("serve", f"POST {url}/score answered {len(scores)} scores")

    from monitoring.jobs import Window, run_monitor

    newest = latest_snapshot(settings, columns=[names.CUSTOMER_ID])[names.EVENT_TIMESTAMP].max().to_pydatetime()
    with console.status("Evidently drift report") as status:
        monitored = run_monitor(
            settings,
            Window(newest, newest + dt.timedelta(days=1)),
            mode="batch",
            on_step=lambda text: status.update(text),
        )
    step(
        "monitor",
        f"drift status {monitored.summary.status} ({monitored.summary.features.drifted_columns}/"
        f"{monitored.summary.features.n_columns} features drifted)",
    )

    alerts = _alerts(settings, None, _reasons_top(None))
    from core.io import write_atomic_text
    from crm.alerts import write_alerts
    from crm.report import build_report

    alerts_path = write_alerts(alerts, settings.path("alerts.csv"))
    with console.status("ops report"):
        ops_path = write_atomic_text(
            build_report(settings, alerts), settings.path(settings.monitoring.reports_dir) / "ops-quickstart.html"
        )
    step("alerts", f"{len(alerts):,} customers scored, sorted by expected loss -> {alerts_path}; ops report {ops_path}")

    summary = {
        "workspace": str(Path(settings.workspace).resolve()),
        "mlflow_tracking_uri": settings.mlflow_uri,
        "model": f"models:/{trained.model_name}@champion",
        "model_version": trained.version,
        "metrics": trained.metrics,
        "service_url": url,
        "drift_report": str(monitored.html),
        "drift_summary": str(monitored.summary_json),
        "drift_status": monitored.summary.status,
        "monitoring_index": str(monitored.index),
        "scores": scores,
        "alerts": str(alerts_path),
        "ops_report": str(ops_path),
        "top_actions": alerts["action"].value_counts().head(5).to_dict(),
    }
    summary_path = write_atomic_text(json.dumps(summary, indent=2), settings.path("quickstart-summary.json"))
    table = Table(title="churn quickstart: where everything is", show_lines=False)
    table.add_column("what")
    table.add_column("where / value", overflow="fold")
    table.add_row("workspace", str(Path(settings.workspace).resolve()))
    table.add_row("MLflow tracking URI", settings.mlflow_uri)
    table.add_row("MLflow UI", f"mlflow ui --backend-store-uri {settings.mlflow_uri}")
    table.add_row("registered model", f"models:/{trained.model_name}@champion (v{trained.version})")
    table.add_row("Feast registry", str(settings.path(settings.feast.registry)))
    table.add_row("Feast online store", str(settings.path(settings.feast.online_store.path)))
    table.add_row("quarantine", str(settings.path(settings.data.quarantine_dir)))
    table.add_row("service URL used", f"{url}/score (stopped after the check; `churn serve` runs it)")
    table.add_row("drift report", str(monitored.html))
    table.add_row("drift summary", str(monitored.summary_json))
    table.add_row("CRM alert list", str(alerts_path))
    table.add_row("ops report", str(ops_path))
    table.add_row("this summary as JSON", str(summary_path))
    table.add_row("elapsed", f"{time.perf_counter() - started:.0f} s")
    console.print(table)
    scores_table = Table(title="scores returned over HTTP")
    for col in ("customer_id", "churn_probability", "risk_tier", "top reason"):
        scores_table.add_column(col)
    for s in scores:
        if "error" in s:
            scores_table.add_row(s["customer_id"], "-", "-", s["error"])
            continue
        reason = s["reasons"][0]["phrase"] if s["reasons"] else "-"
        scores_table.add_row(s["customer_id"], f"{s['churn_probability']:.3f}", s["risk_tier"], reason)
    console.print(scores_table)


def _examples() -> str:
    """Every command's example line, for the top-level help."""
    groups = [app] + [g.typer_instance for g in app.registered_groups if g.typer_instance]
    lines = []
    for group in groups:
        for command in group.registered_commands:
            doc = command.callback.__doc__ if command.callback else None
            for line in (doc or "").splitlines():
                if line.strip().startswith("Example:"):
                    lines.append(line.strip().removeprefix("Example:").strip())
    return "Examples, one per command:\n\n" + "\n\n".join(lines)


app.info.epilog = _examples()


def main() -> None:
    """Entry point for `python -m churn`."""
    app()
