"""The job behind `churn campaigns simulate`: whole campaign cycles on generated data with a known truth.

On a workspace whose data the generator made (a champion trained on it, e.g. after `churn
quickstart`), for each of a few past snapshot dates whose label horizon has passed, oldest first:

1. score the snapshot with the champion and plan the campaign (control groups, record, MLflow run),
   as `churn score --as-of` does;
2. play it (`features.generator.campaigns`): the CRM reaches most of the treatment group, the action
   keeps a segment-dependent share of those who would have churned; their churn dates go from the
   raw customers file, the CRM's log (with three dirty rows) is written as a CSV export, and the
   injected effects go into the campaign's folder (`truth.json`).

Then the data is ingested and the features and labels rebuilt, so the labels carry the outcomes;
each campaign's actions are imported through the contract and the campaign evaluated, and the
ops report is written with its campaign section.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from churn.cli.common import fail
from core import names
from core.settings import Settings

TRUTH = "truth.json"


@dataclass
class SimulationResult:
    """What a simulation did: per campaign its evaluation, beside the injected effects."""

    campaigns: list[str] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    truths: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None
    uplift: Any = None
    """The uplift model's `crm.campaigns.targeting.UpliftResult`, when two campaigns or more were played."""


def campaign_dates(labels: pd.Series, count: int, every_days: int) -> list[dt.date]:
    """`count` labelled observation dates, `every_days` apart at least, ending at the newest; oldest first.

    Args:
        labels: The labelled observation dates (UTC timestamps).
        count: How many campaigns.
        every_days: Days between two campaigns at least.

    Raises:
        ValueError: The labelled dates do not reach back far enough.
    """
    dates = sorted({d.date() for d in pd.to_datetime(labels)}, reverse=True)
    if not dates:
        raise ValueError("no labelled observation date yet: the data is shorter than the label horizon")
    chosen = [dates[0]]
    for date in dates[1:]:
        if len(chosen) == count:
            break
        if (chosen[-1] - date).days >= every_days:
            chosen.append(date)
    if len(chosen) < count:
        raise ValueError(
            f"the labelled dates {dates[-1]}..{dates[0]} hold only {len(chosen)} campaign(s) {every_days} days apart, "
            f"not {count}: generate more days (churn data generate --days) or pass fewer --campaigns"
        )
    return chosen[::-1]


def injected_by_action(outcomes: pd.DataFrame, compliance: float, contamination: float) -> pd.DataFrame:
    """Per action, the injected relative effects given who would have churned.

    The intent-to-treat effect of an action over its segments is the would-be churners' mean
    effect times the reached share difference; on the reached (CACE) it is their mean effect.

    Args:
        outcomes: `SimulatedCampaign.outcomes`.
        compliance: Share of the treatment group reached.
        contamination: Share of the control group reached.
    """
    churners = outcomes[outcomes["would_churn"]]
    effect = churners.groupby(names.ACTION)["effect"].mean()
    return pd.DataFrame(
        {
            names.ACTION: effect.index,
            "effect": effect.to_numpy(),
            "itt_relative": effect.to_numpy() * (compliance - contamination),
        }
    )


def simulate_cycles(
    settings: Settings, count: int, every_days: int, seed: int, on_step: Callable[[str], None]
) -> SimulationResult:
    """Play `count` campaign cycles on the workspace's generated data and evaluate them.

    Args:
        settings: The profile (its control shares decide the groups).
        count: How many campaigns.
        every_days: Days between two campaigns at least.
        seed: Seed of the simulated CRM and outcomes.
        on_step: Called with a line on each step done.
    """
    from churn.cli.campaigns import evaluate_and_log
    from churn.cli.data import ingest_data
    from churn.cli.features import build_snapshots
    from churn.cli.scoring import champion_alerts, champion_scored, record_campaign
    from core.io import write_atomic_csv, write_atomic_parquet, write_atomic_text
    from crm.campaigns.actions import import_actions
    from crm.campaigns.plan import GROUP, UNIT_COST
    from crm.campaigns.store import campaign_folder, campaigns_root, write_json
    from crm.report.page import build_report
    from features.generator.campaigns import CampaignTruth, dirty_rows, simulate_campaign
    from features.paths import FeaturePaths

    customers_path = settings.path(settings.data.customers.path) if settings.data.customers.path else None
    if customers_path is None or customers_path.suffix != ".parquet" or settings.labels.kind != "contractual":
        raise fail(
            "campaign simulation needs the generator's data: a customers Parquet file with churn dates and "
            "contractual labels",
            "run it on a generated workspace: `churn quickstart` (or `churn data generate`, ingest, build, train)",
        )
    labels = FeaturePaths.of(settings).labels
    if not labels.exists():
        raise fail(f"{labels} does not exist", "run `churn quickstart` first")
    try:
        dates = campaign_dates(
            pd.read_parquet(labels, columns=[names.EVENT_TIMESTAMP])[names.EVENT_TIMESTAMP], count, every_days
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    truth = CampaignTruth()
    result = SimulationResult()
    root = campaigns_root(settings)
    for k, as_of in enumerate(dates):
        alerts, features = champion_scored(settings, as_of, 0)
        planned, record = record_campaign(settings, alerts, features, root / f"alerts-{as_of}.csv", None)
        if record is None:
            raise fail(f"nobody was scored as of {as_of}")
        campaign = record["campaign_id"]
        alerted = planned[planned[GROUP].notna()]
        costs = dict(zip(alerted[names.ACTION], alerted[UNIT_COST], strict=False))
        customers = pd.read_parquet(customers_path)
        sim = simulate_campaign(
            alerted,
            customers,
            as_of,
            horizon_days=settings.labels.horizon_days,
            window_days=settings.crm.campaigns.window_days,
            costs=costs,
            seed=seed + k,
            truth=truth,
        )
        write_atomic_parquet(sim.customers, customers_path)
        export = settings.path("raw") / f"actions-{campaign}.csv"
        log = pd.concat([sim.actions, dirty_rows(sim.actions, as_of, settings.crm.campaigns.window_days)])
        log[names.ACTION_TIMESTAMP] = log[names.ACTION_TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        write_atomic_csv(log, export)
        injected = {
            "campaign_id": campaign,
            "compliance": truth.compliance,
            "contamination": truth.contamination,
            "would_churn": int(sim.outcomes["would_churn"].sum()),
            "saved": int(sim.outcomes["saved"].sum()),
            "by_action": injected_by_action(sim.outcomes, truth.compliance, truth.contamination).to_dict("records"),
            "by_segment": truth.table(alerted).to_dict("records"),
        }
        write_json(injected, campaign_folder(settings, campaign) / TRUTH)
        result.campaigns.append(campaign)
        result.truths.append(injected)
        on_step(
            f"campaign {campaign}: {record['treatment']:,} treatment / {record['control']:,} control; the CRM "
            f"reached {len(sim.actions):,}; the actions kept {injected['saved']:,} of {injected['would_churn']:,} "
            "would-be churners"
        )
    ingest_data(settings)
    built = build_snapshots(settings)
    on_step(f"outcomes: ingested and rebuilt {built.rows:,} snapshots and {built.labelled_rows:,} labels")
    for campaign in result.campaigns:
        done = import_actions(settings, campaign, settings.path("raw") / f"actions-{campaign}.csv")
        evaluation = evaluate_and_log(settings, campaign, 0.95)
        result.evaluations.append(evaluation)
        on_step(
            f"evaluated {campaign}: {done.valid_rows:,} actions imported, {done.quarantined_rows} quarantined "
            f"({', '.join(done.reasons)}); churn reduction {evaluation['overall']['itt']:+.1%}"
        )
    if len(result.campaigns) >= 2:
        from churn.cli.campaigns import record_uplift
        from crm.campaigns.targeting import train_uplift
        from crm.campaigns.uplift import NotEnoughOutcomesError

        try:
            result.uplift = train_uplift(settings, seed)
        except NotEnoughOutcomesError as exc:
            on_step(f"uplift model skipped: {exc}")
        else:
            record_uplift(settings, result.uplift)
            qini = result.uplift.meta["qini"]
            on_step(
                f"uplift model: Qini on {result.uplift.meta['held_out']}: {qini['uplift']:.4f} by uplift, "
                f"{qini['churn_probability']:.4f} by churn probability, {qini['random']:.4f} at random"
            )
    alerts = champion_alerts(settings, None, settings.serving.batch_reasons_top)
    report = settings.path(settings.monitoring.reports_dir) / "ops-campaigns.html"
    result.report = write_atomic_text(build_report(settings, alerts), report)
    return result
