"""The job behind `churn campaigns simulate`: whole campaign cycles on generated data with a known truth.

On a workspace whose data the generator made (a champion trained on it, e.g. after `churn
quickstart`), for each of a few past snapshot dates whose label horizon has passed, oldest first:

1. score the snapshot with the champion and plan the campaign (control groups, record, MLflow run),
   as `churn score --as-of` does;
2. play it (`features.generator.campaigns`, the by-risk truth): the CRM reaches most of the
   treatment group; the action keeps most of the persuadable would-be churners, none of the lost
   causes, and drives some sleeping dogs away; the averted churn dates go from the raw customers
   file and the caused ones into it, the CRM's log (with three dirty rows) is written as a CSV export, and the
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
RECOVERED = "recovered.csv"
"""Every simulated campaign's measured effects beside the injected ones (`recovered`), in the campaigns folder."""


@dataclass
class SimulationResult:
    """What a simulation did: per campaign its evaluation, beside the injected effects."""

    campaigns: list[str] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    truths: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None
    recovered: Path | None = None
    """The measured effects beside the injected ones (`recovered.csv`)."""
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


def recovered(evaluation: dict[str, Any], truth: dict[str, Any]) -> pd.DataFrame:
    """The measured effects of one campaign beside the injected ones, per action and per action and segment.

    Args:
        evaluation: The campaign's evaluation (`crm.campaigns.evaluation.evaluate`).
        truth: Its `truth.json` (injected effects per action and per action and segment).

    Returns:
        One row per cell: campaign_id, action, segment ("all" for the action's row), treatment_n, control_n,
        injected_itt, itt, itt_low, itt_high, itt_within, injected_cace, cace, cace_low, cace_high,
        cace_within (absolute falls in churn probability; within: the injected value lies in the interval).
    """
    frames = []
    for key, cells in (("by_action", [names.ACTION]), ("by_segment", [names.ACTION, "segment"])):
        measured = pd.DataFrame(evaluation[key])
        injected = pd.DataFrame(truth[key])[[*cells, "itt", "cace"]].rename(
            columns={"itt": "injected_itt", "cace": "injected_cace"}
        )
        both = measured.merge(injected, on=cells, how="inner")
        if "segment" not in both:
            both["segment"] = "all"
        frames.append(both)
    table = pd.concat(frames, ignore_index=True)
    for name in ("itt", "cace"):
        for column in (name, f"{name}_low", f"{name}_high", f"injected_{name}"):
            table[column] = pd.to_numeric(table[column], errors="coerce")
        table[f"{name}_within"] = (table[f"{name}_low"] <= table[f"injected_{name}"]) & (
            table[f"injected_{name}"] <= table[f"{name}_high"]
        )
    columns = [
        "action",
        "segment",
        "treatment_n",
        "control_n",
        "injected_itt",
        "itt",
        "itt_low",
        "itt_high",
        "itt_within",
    ]
    columns += ["injected_cace", "cace", "cace_low", "cace_high", "cace_within"]
    return table[columns].assign(campaign_id=evaluation["campaign_id"])[["campaign_id", *columns]]


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
    from features.generator.campaigns import PERSONA, CampaignTruth, dirty_rows, injected_effects, simulate_campaign
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
    truth = CampaignTruth.by_risk()
    result = SimulationResult()
    root = campaigns_root(settings)
    for k, as_of in enumerate(dates):
        alerts, features = champion_scored(settings, as_of, 0)
        # The snapshot predates the earlier campaigns' outcomes: a customer one of them drove away
        # before this as-of date has left and is not in this campaign.
        customers = pd.read_parquet(customers_path)
        churn = pd.to_datetime(customers.set_index(customers[names.CUSTOMER_ID].astype(str))[names.CHURN_DATE])
        gone = set(churn[churn < pd.Timestamp(as_of)].index)
        alerts = alerts[~alerts[names.CUSTOMER_ID].astype(str).isin(gone)].reset_index(drop=True)
        planned, record = record_campaign(settings, alerts, features, root / f"alerts-{as_of}.csv", None)
        if record is None:
            raise fail(f"nobody was scored as of {as_of}")
        campaign = record["campaign_id"]
        alerted = planned[planned[GROUP].notna()]
        costs = dict(zip(alerted[names.ACTION], alerted[UNIT_COST], strict=False))
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
            "harmed": int(sim.outcomes["harmed"].sum()),
            "personas": [vars(p) for p in truth.personas],
        }
        for key, by in (
            ("by_action", [names.ACTION]),
            ("by_segment", [names.ACTION, "segment"]),
            ("by_persona", [PERSONA]),
        ):
            table = injected_effects(sim.outcomes, by, truth.compliance, truth.contamination)
            injected[key] = table.astype(object).where(table.notna(), None).to_dict("records")
        write_json(injected, campaign_folder(settings, campaign) / TRUTH)
        result.campaigns.append(campaign)
        result.truths.append(injected)
        on_step(
            f"campaign {campaign}: {record['treatment']:,} treatment / {record['control']:,} control; the CRM "
            f"reached {len(sim.actions):,}; the actions kept {injected['saved']:,} of {injected['would_churn']:,} "
            f"would-be churners and drove {injected['harmed']:,} sleeping dogs away"
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
    table = pd.concat([recovered(e, t) for e, t in zip(result.evaluations, result.truths, strict=True)])
    result.recovered = write_atomic_csv(table, root / RECOVERED)
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
