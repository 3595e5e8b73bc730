"""The `churn` command line: the only package that wires the stages together.

One module per command group (`data`, `features`, `campaigns`, `config`, `workspace`) or set of top-level commands
(`training`, `scoring`, `monitoring`, `quickstart`); `common` holds what they share and
`churn.server` runs the BentoML service. This module puts them into one app whose help ends
with every command's example.

Stage packages are imported inside the commands that use them: Feast, MLflow and BentoML take
seconds to import, and `churn --help` should not wait for them.
"""

from __future__ import annotations

import importlib.metadata
from typing import Annotated

import typer

from churn.cli import campaigns, config, data, features, monitoring, quickstart, scoring, stream, training, workspace
from churn.cli.common import console, report_unexpected

app = typer.Typer(
    help="Churn prediction platform: data -> Feast features -> Optuna/XGBoost in MLflow -> BentoML -> Evidently.\n\n"
    "Example: churn quickstart",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _print_version(value: bool) -> None:
    if value:
        console.print(f"churn-platform {importlib.metadata.version('churn-platform')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True)
    ] = False,
) -> None:
    pass


# Added without a name, a module's commands are top-level commands, listed in this order.
for commands in (training.app, scoring.app, monitoring.app, stream.app, quickstart.app):
    app.add_typer(commands)
app.add_typer(data.app, name="data")
app.add_typer(features.app, name="features")
app.add_typer(campaigns.app, name="campaigns")
app.add_typer(config.app, name="config")
app.add_typer(workspace.app, name="workspace")


def _examples(group: typer.Typer) -> list[str]:
    """Every command's example line in `group` and its subgroups, in the order help lists them."""
    lines = []
    for command in group.registered_commands:
        doc = command.callback.__doc__ if command.callback else None
        for line in (doc or "").splitlines():
            if line.strip().startswith("Example:"):
                lines.append(line.strip().removeprefix("Example:").strip())
    for subgroup in group.registered_groups:
        if subgroup.typer_instance:
            lines.extend(_examples(subgroup.typer_instance))
    return lines


app.info.epilog = "Examples, one per command:\n\n" + "\n\n".join(_examples(app))


def main() -> None:
    """Entry point of the `churn` command and of `python -m churn`.

    An error no command handles ends as every failure does, in one line saying what to do; its
    traceback goes to the job's log file.
    """
    try:
        app()
    except Exception as exc:
        raise SystemExit(report_unexpected(exc)) from None
