"""`churn features`: build behaviour snapshots and labels, and load them into Feast."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

from churn.cli.common import ConfigOption, console, fail, load_context
from core import names
from core.settings import Settings

app = typer.Typer(help="Build behaviour features and load them into Feast.\n\nExample: churn features build")


@app.command("build")
def features_build(
    full: Annotated[
        bool, typer.Option("--full", help="Recompute every observation date, not only those new data touches.")
    ] = False,
    engine: Annotated[
        str | None,
        typer.Option("--engine", help="duckdb or spark; default: features.engine of the config (duckdb)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Compute behaviour snapshots and churn labels from the ingested data (DuckDB over Parquet, or Spark).

    By default the build is incremental: only observation dates after the earliest changed day
    of data are recomputed; the result equals a full rebuild. `--engine spark` (or
    `features.engine: spark`) computes the same features on Spark (`features.spark.master`).

    Example: churn features build --config configs/default.yaml --engine spark
    """
    ctx = load_context(config, "features-build", **{"features.engine": engine})
    result = build_snapshots(ctx.settings, incremental=not full)
    console.print(
        f"{result.rows:,} snapshot rows x {len(result.features)} features over {len(result.observation_dates)} "
        f"observation dates ({len(result.recomputed_dates)} computed, the rest unchanged); "
        f"{result.labelled_rows:,} labelled (churn rate {result.churn_rate:.1%}) -> {result.snapshots}"
    )


def build_snapshots(settings: Settings, incremental: bool = True) -> Any:
    """Build the feature snapshots and labels; missing or unusable data ends the command.

    Args:
        settings: The profile.
        incremental: Recompute only the observation dates new data touches.

    Returns:
        The `features.pipeline` build result.
    """
    from features.pipeline import build_features

    engine = settings.features.engine
    where = f" on Spark ({settings.features.spark.master})" if engine == "spark" else ""
    try:
        with console.status(f"computing behaviour features{where}"):
            return build_features(settings, incremental=incremental)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    except RuntimeError as exc:  # the Spark engine without pyspark or Java
        if engine != "spark":
            raise
        raise fail(str(exc), "install the spark extra and Java 17, or use --engine duckdb") from None


@app.command("apply")
def features_apply(config: ConfigOption = None) -> None:
    """Register the entity, feature views and feature service in the Feast registry.

    Example: churn features apply
    """
    ctx = load_context(config, "features-apply")
    from features.pipeline import apply_features

    try:
        with console.status("feast apply"):
            applied = apply_features(ctx.settings)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None
    console.print(f"applied {', '.join(applied)}")


@app.command("training-set")
def features_training_set(
    out: Annotated[Path, typer.Option(help="Parquet file to write.")],
    service: Annotated[str, typer.Option(help="Feast feature service naming the features.")] = names.FEATURE_SERVICE,
    config: ConfigOption = None,
) -> None:
    """Write the labelled training set, joined point-in-time through Feast, to a Parquet file.

    Example: churn features training-set --out workspace/training_set.parquet --service churn_behaviour_v1
    """
    ctx = load_context(config, "features-training-set")
    from core.io import write_atomic_parquet
    from features.pipeline import training_set

    try:
        with console.status("get_historical_features"):
            frame = training_set(ctx.settings, service)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:  # Feast's errors for an unknown service or unapplied repo
        if "FeatureService" in type(exc).__name__ or "not found" in str(exc).lower():
            raise fail(f"feature service '{service}': {exc}", "run `churn features apply` first") from None
        raise
    write_atomic_parquet(frame, out)
    features = [c for c in frame.columns if c not in (names.CUSTOMER_ID, names.EVENT_TIMESTAMP, names.LABEL)]
    console.print(
        f"{len(frame):,} rows x {len(features)} features, churn rate {frame[names.LABEL].mean():.1%} -> {out}"
    )


@app.command("materialize")
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
    ctx = load_context(config, "features-materialize")
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
        raise fail(str(exc)) from None
    console.print(f"materialized snapshots from {s} to {e}")
