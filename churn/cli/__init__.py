"""The `churn` command line: the only package that wires the stages together.

One module per command group (`data`, `features`, `config`) or set of top-level commands
(`training`, `scoring`, `monitoring`, `quickstart`); `common` holds what they share and
`churn.server` runs the BentoML service. This module puts them into one app whose help ends
with every command's example.

Stage packages are imported inside the commands that use them: Feast, MLflow and BentoML take
seconds to import, and `churn --help` should not wait for them.
"""

from __future__ import annotations

import typer

from churn.cli import config, data, features, monitoring, quickstart, scoring, training

app = typer.Typer(
    help="Churn prediction platform: data -> Feast features -> Optuna/XGBoost in MLflow -> BentoML -> Evidently.\n\n"
    "Example: churn quickstart",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
# Added without a name, a module's commands are top-level commands, listed in this order.
for commands in (training.app, scoring.app, monitoring.app, quickstart.app):
    app.add_typer(commands)
app.add_typer(data.app, name="data")
app.add_typer(features.app, name="features")
app.add_typer(config.app, name="config")


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
    """Entry point for `python -m churn`."""
    app()
