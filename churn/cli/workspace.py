"""`churn workspace`: look after the workspace itself (data, stores, reports in one folder)."""

from __future__ import annotations

import typer

from churn.cli.common import ConfigOption, console, fail, load_profile, start_job

app = typer.Typer(
    help="Look after the workspace folder.\n\nExample: CHURN_WORKSPACE=/data/churn churn workspace relocate"
)


@app.command("relocate")
def workspace_relocate(config: ConfigOption = None) -> None:
    """Point the workspace's MLflow store and Feast registry at the workspace's new place after a move or copy.

    MLflow keeps absolute artifact paths, and Feast absolute source paths: after `mv workspace
    /data/churn` they still name the old place, and the commands say to run this. It rewrites the
    MLflow store's artifact locations under the old workspace to the same paths under the new one
    and applies the Feast definitions again.

    Example: CHURN_WORKSPACE=/data/churn churn workspace relocate
    """
    ctx = start_job(*load_profile(config), "workspace-relocate")
    settings = ctx.settings
    from churn.workspace import relocate

    try:
        done = relocate(settings)
    except FileNotFoundError as exc:
        hint = "run it on the moved workspace: `CHURN_WORKSPACE=/new/place churn workspace relocate`"
        raise fail(str(exc), hint) from None
    if done.old_roots:
        old = ", ".join(done.old_roots)
        console.print(f"MLflow: {done.rows} artifact locations moved from {old} to {done.new_root}")
    else:
        console.print(f"MLflow: the store's artifact locations are already under {done.new_root}")
    if not settings.path(settings.feast.registry).exists():
        return
    from features.pipeline import apply_features

    try:
        with console.status("feast apply"):
            applied = apply_features(settings)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None
    console.print(f"Feast: applied {', '.join(applied)} with this workspace's paths")
