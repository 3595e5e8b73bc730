"""What every command shares: the console, the `--config` option, loading a job's settings, failing.

Every command loads its settings through `load_context`, which also logs the resolved config to
the job's log file, and ends a failure with `raise fail(message, hint)`: a red error line, a
yellow line saying what to do next, exit code 1.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from churn.workspace import moved_from
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


def fail(message: str, hint: str | None = None) -> typer.Exit:
    """Print an error and, if given, what to do next; the exit (code 1) for the caller to raise.

    Args:
        message: What went wrong.
        hint: What to do about it.
    """
    # One logical line each (the terminal wraps them): the last line of a failure says what to do.
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    if hint:
        console.print(f"[yellow]next:[/] {hint}", soft_wrap=True)
    return typer.Exit(code=1)


def report_unexpected(exc: Exception) -> int:
    """Write an unhandled error's traceback to the job's log file and say on the console where it is.

    Args:
        exc: The error.

    Returns:
        The exit code (1).

    Raises:
        Exception: `exc` itself when no job has a log file yet: its traceback then has nowhere else to go.
    """
    logfile = next((h.baseFilename for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)), None)
    if logfile is None:
        raise exc
    with open(logfile, "a") as out:
        traceback.print_exception(exc, file=out)
    first = (str(exc).splitlines() or [""])[0]
    return fail(f"{type(exc).__name__}: {first}", f"this is a bug: report it with the traceback in {logfile}").exit_code


def sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (MLflow's or Optuna's); None for any other store."""
    prefix = "sqlite:///"
    return Path(uri.removeprefix(prefix)) if uri.startswith(prefix) else None


def require_registry(settings: Settings) -> None:
    """End the command when the tracking store is a SQLite file that does not exist: nothing was trained.

    Opening it would create an empty store, so a command that only reads the registry checks first
    and leaves nothing behind.

    Args:
        settings: The profile (`training.tracking_uri`, or the workspace's SQLite file).
    """
    db = sqlite_file(settings.mlflow_uri)
    if db is not None and not db.exists():
        raise fail(f"no MLflow registry at {settings.mlflow_uri}: run `churn train` (or `churn quickstart`) first")


def require_champion(settings: Settings) -> str:
    """The champion's version, or the end of the command with what to run when there is none.

    Args:
        settings: The profile (tracking store and `training.model_name`).
    """
    require_registry(settings)
    from model.champion import NoChampionError, champion_version

    try:
        version, _ = champion_version(settings.mlflow_uri, settings.training.model_name)
    except NoChampionError as exc:
        raise fail(str(exc)) from None
    return version


def load_context(config: Path | None, job: str, **overrides: Any) -> Context:
    """Load settings (with CLI overrides), check the workspace, and log the resolved config for this job.

    A workspace moved since its MLflow store was written ends the command, saying to run
    `churn workspace relocate`.

    Args:
        config: The `--config` file; None reads `$CHURN_CONFIG` or else the embedded default.
        job: The job's name, which names its log file.
        **overrides: Dotted settings key -> value from a command-line option; None values are skipped.
    """
    path, settings = load_profile(config, **overrides)
    if old := moved_from(settings):
        raise fail(
            f"this workspace was moved or copied: its MLflow store keeps artifacts under {', '.join(old)}, "
            f"not {settings.mlflow_artifacts}",
            "run `churn workspace relocate` to point the store (and Feast) at this workspace",
        )
    return start_job(path, settings, job)


def start_job(path: Path, settings: Settings, job: str) -> Context:
    """Log the job's resolved config to its own log file in the workspace, and say where on the console.

    Args:
        path: The config file.
        settings: Its settings.
        job: The job's name, which names its log file.
    """
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


def load_profile(config: Path | None, **overrides: Any) -> tuple[Path, Settings]:
    """The config file and its settings (with CLI overrides); a config error ends the command.

    Args:
        config: The `--config` file; None reads `$CHURN_CONFIG` or else the embedded default.
        **overrides: Dotted settings key -> value from a command-line option; None values are skipped.
    """
    path = (config or Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)).resolve()
    try:
        settings = load_settings(path)
        if overrides:
            settings = _override(settings, overrides, str(path))
    except ConfigError as exc:
        raise fail(str(exc), "fix the key named above in the config file") from None
    return path, settings


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


def progress() -> Progress:
    """A progress bar on the console: spinner, description, bar, done/total and elapsed time."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
