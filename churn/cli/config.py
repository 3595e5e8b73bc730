"""`churn config`: inspect the typed configuration."""

from __future__ import annotations

import typer

from churn.cli.common import ConfigOption, console, load_context
from core.settings import resolved_yaml

app = typer.Typer(help="Inspect the typed configuration.\n\nExample: churn config show --config configs/default.yaml")


@app.command("show")
def config_show(config: ConfigOption = None) -> None:
    """Print the resolved configuration (file + CHURN_* overrides), secrets masked.

    Example: CHURN_MLFLOW_TRACKING_URI=postgresql://... churn config show
    """
    ctx = load_context(config, "config-show")
    console.print(resolved_yaml(ctx.settings), markup=False, highlight=False)
