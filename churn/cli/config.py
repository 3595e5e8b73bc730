"""`churn config`: inspect the typed configuration."""

from __future__ import annotations

import typer

from churn.cli.common import ConfigOption, console, load_profile, start_job
from core.settings import resolved_yaml

app = typer.Typer(help="Inspect the typed configuration.\n\nExample: churn config show --config configs/default.yaml")


@app.command("show")
def config_show(config: ConfigOption = None) -> None:
    """Print the resolved configuration (file + CHURN_* overrides), secrets masked.

    Example: CHURN_MLFLOW_TRACKING_URI=postgresql://... churn config show
    """
    ctx = start_job(*load_profile(config), "config-show")
    console.print(resolved_yaml(ctx.settings), markup=False, highlight=False)


@app.command("tracking-uri")
def config_tracking_uri(config: ConfigOption = None) -> None:
    """Print the MLflow tracking URI of the config, and nothing else: for MLFLOW_TRACKING_URI.

    `mlflow run` creates its run in the store MLFLOW_TRACKING_URI names (unset: ./mlflow.db);
    this makes it the store the entry point's `churn` command writes to.

    Example: MLFLOW_TRACKING_URI=$(churn config tracking-uri) mlflow run . -e train --env-manager local
    """
    _, settings = load_profile(config)
    print(settings.mlflow_uri)
