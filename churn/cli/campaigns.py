"""`churn campaigns ...`: what the CRM did in a campaign, what it achieved, and whom to target next.

`churn score` plans a campaign (control groups, record, MLflow run); these commands take it on:
`import-actions` reads what the CRM did, `evaluate` measures the effects once the label horizon
has passed, `uplift` trains the uplift model on evaluated campaigns, `list` shows them, and
`simulate` plays whole campaign cycles on generated data with a known truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from churn.cli.common import ConfigOption, console, fail, load_context
from core.settings import Settings

app = typer.Typer(help="Retention campaigns: actions taken, measured effects, uplift targeting.", no_args_is_help=True)

MIN_ARM = 30
"""`churn campaigns simulate` counts the recovered effects of cells with this many customers an arm."""

CampaignOption = Annotated[str, typer.Option("--campaign", help="The campaign's id (see `churn campaigns list`).")]


@app.command("list")
def list_campaigns(config: ConfigOption = None) -> None:
    """List the workspace's campaigns: as-of date, model, groups, expected cost, what is known of them.

    Example: churn campaigns list
    """
    ctx = load_context(config, "campaigns-list")
    from crm.campaigns.store import campaign_folder, campaign_ids, read_record

    ids = campaign_ids(ctx.settings)
    if not ids:
        raise fail("no campaigns in this workspace yet", "run `churn score --out workspace/alerts.csv` to plan one")
    table = Table(title="campaigns")
    for column in ("campaign", "as of", "model", "treatment", "control", "expected cost", "actions", "evaluated"):
        table.add_column(column)
    for campaign in ids:
        record = read_record(ctx.settings, campaign)
        folder = campaign_folder(ctx.settings, campaign)
        table.add_row(
            campaign,
            record["as_of"],
            f"v{record['model_version']}",
            f"{record['treatment']:,}",
            f"{record['control']:,}",
            f"{record['expected_cost']:,.0f}",
            "imported" if (folder / "actions.parquet").exists() else "-",
            "yes" if (folder / "evaluation.json").exists() else f"after {record['outcome_known']}",
        )
    console.print(table)


@app.command("import-actions")
def import_actions(
    campaign: CampaignOption,
    file: Annotated[Path | None, typer.Option(help="The CRM's actions export (default: data.actions.path).")] = None,
    config: ConfigOption = None,
) -> None:
    """Import what the CRM did in a campaign (CSV or Parquet: customer id, action, timestamp, optional cost).

    Columns are mapped by `data.actions.columns`. Rows of unknown customers, unknown actions, outside
    the campaign window, with a missing or unparseable value go to the quarantine with their reason.

    Example: churn campaigns import-actions --campaign 2025-06-30-v3 --file exports/actions.csv
    """
    ctx = load_context(config, "campaigns-import-actions")
    from crm.campaigns.actions import import_actions as run
    from crm.campaigns.store import CampaignNotFoundError
    from features.contract.fields import ContractError

    try:
        done = run(ctx.settings, campaign, file)
    except CampaignNotFoundError as exc:
        raise fail(str(exc), "run `churn campaigns list` to see the campaigns' ids") from None
    except FileNotFoundError as exc:
        raise fail(str(exc), "pass the CRM's export with --file, or set data.actions.path") from None
    except ContractError as exc:
        raise fail(str(exc), "fix data.actions.columns in the config (contract field -> column in your file)") from None
    table = Table(title=f"actions of campaign {campaign}: contract check")
    for column in ("rows in", "valid", "quarantined", "reasons"):
        table.add_column(column, justify="left" if column == "reasons" else "right")
    reasons = "\n".join(f"{kind}: {count:,}" for kind, count in done.reasons.items()) or "-"
    table.add_row(f"{done.rows_in:,}", f"{done.valid_rows:,}", f"{done.quarantined_rows:,}", reasons)
    table.caption = f"clean: {done.clean_path}  quarantine: {done.quarantine_path}"
    console.print(table)


@app.command()
def evaluate(
    campaign: Annotated[
        str | None, typer.Option(help="The campaign (default: every campaign whose outcomes are known).")
    ] = None,
    level: Annotated[float, typer.Option(help="Confidence level of the intervals.")] = 0.95,
    config: ConfigOption = None,
) -> None:
    """Measure what a campaign's actions did, once its label horizon has passed (effects, value, NNT).

    Per action and per segment: churn in treatment and control, the churn reduction (intent to
    treat) with its interval, relative to the control's churn, the effect on the customers the CRM
    reached (when its actions were imported), cost, saved value, net value and the number needed to
    treat. Written to the campaign's folder and its MLflow run; `churn report` shows it.

    Example: churn campaigns evaluate --campaign 2025-06-30-v3
    """
    if not 0 < level < 1:
        raise fail(f"--level must lie between 0 and 1, got {level}", "pass e.g. --level 0.95")
    ctx = load_context(config, "campaigns-evaluate")
    from crm.campaigns.evaluation import OutcomeNotKnownError
    from crm.campaigns.store import CampaignNotFoundError, campaign_ids

    ids = [campaign] if campaign else campaign_ids(ctx.settings)
    if not ids:
        raise fail("no campaigns in this workspace yet", "run `churn score --out workspace/alerts.csv` to plan one")
    done = 0
    for one in ids:
        try:
            evaluation = evaluate_and_log(ctx.settings, one, level)
        except CampaignNotFoundError as exc:
            raise fail(str(exc), "run `churn campaigns list` to see the campaigns' ids") from None
        except FileNotFoundError as exc:
            raise fail(str(exc)) from None
        except OutcomeNotKnownError as exc:
            if campaign:
                raise fail(
                    str(exc),
                    "once the horizon has passed, run `churn data ingest && churn features build`, then evaluate again",
                ) from None
            console.print(f"[yellow]skipped[/] {one}: {exc}")
            continue
        done += 1
        print_evaluation(evaluation)
    if not done:
        raise fail(
            "no campaign's outcomes are known yet",
            "once a label horizon has passed, run `churn data ingest && churn features build`, then evaluate again",
        )


def evaluate_and_log(settings: Settings, campaign: str, level: float) -> dict[str, Any]:
    """Evaluate a campaign, draw its figure, and add both to its MLflow run.

    Raises:
        CampaignNotFoundError: No such campaign.
        FileNotFoundError: No feature build yet.
        OutcomeNotKnownError: Its label horizon has not passed.
    """
    import pandas as pd

    from core.io import write_atomic_bytes
    from crm.campaigns.evaluation import evaluate
    from crm.campaigns.store import EVALUATION, campaign_folder, read_record
    from crm.campaigns.tracking import log_evaluation
    from crm.report.campaigns import effects_figure
    from crm.report.figures import figure_png

    evaluation = evaluate(settings, campaign, level=level)
    folder = campaign_folder(settings, campaign)
    actions = (
        pd.DataFrame(evaluation["by_action"])
        .apply(pd.to_numeric, errors="coerce")
        .assign(action=[r["action"] for r in evaluation["by_action"]])
    )
    segments = pd.DataFrame(evaluation["by_segment"])
    for column in segments.columns.difference(["action", "segment"]):
        segments[column] = pd.to_numeric(segments[column], errors="coerce")
    png = write_atomic_bytes(
        figure_png(effects_figure(actions, segments, level, f"campaign {campaign}")), folder / "effects.png"
    )
    record = read_record(settings, campaign)
    run_id = record.get("mlflow_run_id")
    if not run_id:  # a real-time campaign gets its MLflow run when first evaluated
        from crm.campaigns.store import RECORD, write_json
        from crm.campaigns.tracking import log_campaign

        run_id = log_campaign(settings, record, [folder / RECORD])
        write_json({**record, "mlflow_run_id": run_id}, folder / RECORD)
    if run_id:
        metrics: dict[str, float] = {}
        for row in [{**evaluation["overall"], "action": "all"}, *evaluation["by_action"]]:
            for key in ("itt", "itt_low", "itt_high", "relative", "cace", "cost", "saved_value", "net_value", "nnt"):
                if row.get(key) is not None:
                    metrics[f"effect.{row['action']}.{key}"] = float(row[key])
        flagged = [r["action"] for r in evaluation["by_action"] if r["zero_in_ci"]]
        tags = {"churn.campaign.evaluated": evaluation["evaluated"], "churn.campaign.zero_in_ci": ", ".join(flagged)}
        log_evaluation(settings, run_id, metrics, [folder / EVALUATION, png], tags)
    return evaluation


def print_evaluation(evaluation: dict[str, Any]) -> None:
    """The per-action effects of one evaluation as a table."""

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:+.1%}"

    table = Table(title=f"campaign {evaluation['campaign_id']} (as of {evaluation['as_of']}): effects per action")
    for column in ("action", "treat / control", "churn T / C", "churn reduction", "on the reached", "net value", "NNT"):
        table.add_column(column, justify="left" if column == "action" else "right")
    for row in [*evaluation["by_action"], {**evaluation["overall"], "action": "all"}]:
        flag = " [red](zero in CI)[/]" if row["zero_in_ci"] else ""
        table.add_row(
            row["action"],
            f"{row['treatment_n']:,.0f} / {row['control_n']:,.0f}",
            f"{(row['treatment_churn'] or 0):.1%} / {(row['control_churn'] or 0):.1%}",
            f"{pct(row['itt'])} [{pct(row['itt_low'])}, {pct(row['itt_high'])}]{flag}",
            "-" if row["cace"] is None else f"{pct(row['cace'])} [{pct(row['cace_low'])}, {pct(row['cace_high'])}]",
            "-" if row["net_value"] is None else f"{row['net_value']:,.0f}",
            "-" if row["nnt"] is None else f"{row['nnt']:,.0f}",
        )
    console.print(table)


@app.command()
def simulate(
    campaigns: Annotated[int, typer.Option(help="Campaign cycles to play, one per past snapshot date.")] = 2,
    every: Annotated[int, typer.Option(help="Days between two campaigns, at least.")] = 28,
    control_share: Annotated[float, typer.Option(help="Control share of every action in the simulation.")] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of the simulated CRM and outcomes.")] = 7,
    profitable_only: Annotated[
        bool,
        typer.Option(
            "--profitable-only/--every-alert",
            help="Only customers above crm.campaigns.min_expected_profit take part, as in `churn score` "
            "(default: every customer with a non-default action, for larger arms).",
        ),
    ] = False,
    catch_all: Annotated[
        str | None,
        typer.Option(
            help="Give every customer no playbook entry matches this action, so the whole scored list takes part "
            "(larger arms; e.g. time_limited_coupon).",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Play whole campaign cycles on generated data with a known truth, then evaluate them.

    On a generated workspace with a champion (run `churn quickstart` first): score past snapshots
    with control groups, simulate what the CRM did and which customers it kept (effects differ by
    segment and action), rebuild the labels, import the actions, evaluate, and write the ops report
    with its campaign section. Changes the workspace's raw customers (the churn the actions averted).

    Example: churn campaigns simulate --campaigns 2 --every 28 --control-share 0.5 --catch-all time_limited_coupon
    """
    if campaigns < 1:
        raise fail(f"--campaigns must be 1 or more, got {campaigns}", "pass e.g. --campaigns 2")
    overrides: dict[str, Any] = {"crm.campaigns.control_share": control_share}
    ctx = load_context(config, "campaigns-simulate", **overrides)
    if not profitable_only or catch_all:
        from core.settings import parse_settings

        tree = ctx.settings.model_dump(mode="json")
        if not profitable_only:
            tree["crm"]["campaigns"]["min_expected_profit"] = None
        if catch_all:
            if catch_all not in ctx.settings.crm.actions() or catch_all == ctx.settings.crm.default_action:
                known = ", ".join(sorted(set(ctx.settings.crm.actions()) - {ctx.settings.crm.default_action}))
                raise fail(f"--catch-all must name a playbook action, got '{catch_all}'", f"pass one of: {known}")
            last = max((entry["priority"] for entry in tree["crm"]["playbook"]), default=0)
            tree["crm"]["playbook"].append({"action": catch_all, "priority": last + 1, "when": {}})
        ctx.settings = parse_settings(tree, f"{ctx.config_path} (with the simulation's options)", env={})
    from churn.cli.common import require_champion
    from churn.cli.simulation import simulate_cycles

    require_champion(ctx.settings)
    done = simulate_cycles(
        ctx.settings, campaigns, every, seed, on_step=lambda line: console.print(f"[green]✓[/] {line}")
    )
    import pandas as pd

    table = Table(title="recovered effects beside the injected ones (fall in churn probability, points)")
    for column in ("campaign", "action", "injected ITT", "measured ITT [95%]", "injected CACE", "measured CACE [95%]"):
        table.add_column(column, justify="left" if column in ("campaign", "action") else "right")
    recovered = pd.read_csv(done.recovered)
    for row in recovered[recovered["segment"] == "all"].itertuples():
        table.add_row(
            row.campaign_id,
            row.action,
            points(row.injected_itt),
            points(row.itt, row.itt_low, row.itt_high) + ("" if row.itt_within else " [red](missed)[/]"),
            points(row.injected_cace),
            points(row.cace, row.cace_low, row.cace_high) + ("" if row.cace_within else " [red](missed)[/]"),
        )
    console.print(table)
    cells = recovered[(recovered["treatment_n"] >= MIN_ARM) & (recovered["control_n"] >= MIN_ARM)]
    console.print(
        f"injected effects within their 95% intervals, cells (action; action x segment) with {MIN_ARM}+ customers "
        f"an arm: ITT {int(cells['itt_within'].sum())} of {len(cells)}, CACE {int(cells['cace_within'].sum())} "
        f"of {len(cells)}; table -> {done.recovered}"
    )
    if done.uplift is not None:
        qini = done.uplift.meta["qini"]
        console.print(
            f"Qini on {done.uplift.meta['held_out']}: uplift {qini['uplift']:.4f}, churn probability "
            f"{qini['churn_probability']:.4f}, random {qini['random']:.4f}"
        )
    console.print(f"ops report with the campaign section -> {done.report}")


def points(mid: float, low: float | None = None, high: float | None = None) -> str:
    """A fall in churn probability in percentage points, with its interval when given, e.g. '+3.1 [+0.4, +5.8]'."""
    if mid != mid:
        return "-"
    ends = (
        "" if low is None or high is None or low != low or high != high else f" [{low * 100:+.1f}, {high * 100:+.1f}]"
    )
    return f"{mid * 100:+.1f}{ends}"


@app.command()
def uplift(
    seed: Annotated[
        int, typer.Option(help="Seed of the held-out split (one campaign only) and of random targeting.")
    ] = 0,
    config: ConfigOption = None,
) -> None:
    """Train the uplift model (a T-learner on XGBoost) on the evaluated campaigns and judge it (Qini).

    The newest evaluated campaign is held out and ranked by expected uplift, by churn probability and
    at random; the model kept for `crm.campaigns.rank_by: uplift` is fitted on every campaign.

    Example: churn campaigns uplift
    """
    ctx = load_context(config, "campaigns-uplift")
    done = train_and_log_uplift(ctx.settings, seed)
    table = Table(title=f"Qini on {done.meta['held_out']} ({done.meta['test_rows']:,} customers)")
    for column in ("ranking", "Qini coefficient", "churners avoided, top 30%"):
        table.add_column(column, justify="left" if column == "ranking" else "right")
    for name, value in done.meta["qini"].items():
        table.add_row(name, f"{value:.4f}", f"{done.meta['avoided_at_30pct'][name]:.1f}")
    console.print(table)
    console.print(f"uplift model -> {done.folder}; rank the alert list with it: crm.campaigns.rank_by: uplift")


def train_and_log_uplift(settings: Settings, seed: int = 0) -> Any:  # noqa: ANN401 - an UpliftResult
    """Train the uplift model, draw its Qini figure, log both to MLflow; a failure says what to run."""
    from crm.campaigns.targeting import train_uplift
    from crm.campaigns.uplift import NotEnoughOutcomesError

    try:
        done = train_uplift(settings, seed)
    except NotEnoughOutcomesError as exc:
        raise fail(
            str(exc), "evaluate more campaigns (`churn campaigns evaluate`), or give them larger control shares"
        ) from None
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc), "run `churn campaigns evaluate` once a campaign's horizon has passed") from None
    record_uplift(settings, done)
    return done


def record_uplift(settings: Settings, done: Any) -> None:  # noqa: ANN401 - an UpliftResult
    """Draw the uplift model's Qini figure into its folder and log the model, its figures and plot to MLflow."""
    from mlflow import MlflowClient

    from core.io import write_atomic_bytes
    from crm.campaigns.tracking import experiment_id, log_metrics
    from crm.report.campaigns import qini_figure
    from crm.report.figures import figure_png

    png = write_atomic_bytes(figure_png(qini_figure(done.curves, done.meta["held_out"])), done.folder / "qini.png")
    client = MlflowClient(settings.mlflow_uri)
    run = client.create_run(
        experiment_id(settings, client), run_name="uplift-t-learner", tags={"churn.campaign.uplift": "t-learner"}
    )
    client.log_param(run.info.run_id, "campaigns", ", ".join(done.meta["campaigns"]))
    client.log_param(run.info.run_id, "held_out", done.meta["held_out"])
    log_metrics(client, run.info.run_id, {f"qini.{k}": v for k, v in done.meta["qini"].items()})
    for path in (done.folder / "meta.json", png, done.folder / "control.json", done.folder / "treatment.json"):
        client.log_artifact(run.info.run_id, str(path), artifact_path="uplift")
    client.set_terminated(run.info.run_id)
