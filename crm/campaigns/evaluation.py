"""Evaluating a campaign once its label horizon has passed, and what the evaluations teach the playbook.

`campaign_rows` and `evaluate_campaign` are pure: the campaign's alerted customers, their churn
labels at the campaign's as-of date (churned within the horizon after it) and the CRM's actions
in; the effects per action, per action and segment, and overall out (`crm.campaigns.effects`).
`evaluate` is the job around them: it reads the labels the feature build wrote, writes
`evaluation.json` into the campaign's folder. `measured_success` pools every evaluation per action
into the success that replaces `training.retention_success` in the expected profit.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core import names
from core.settings import Settings
from crm.campaigns.effects import CHURNED, COLUMNS, COST, TREATED, VALUE, effects_by, pooled
from crm.campaigns.plan import CONFIGURED, GROUP, MEASURED, TREATMENT, UNIT_COST
from crm.campaigns.store import (
    EVALUATION,
    campaign_folder,
    campaign_ids,
    read_assignments,
    read_json,
    read_record,
    write_json,
)
from crm.early_warning import ACTION, SEGMENT
from features.paths import FeaturePaths

ALL = "all"


class OutcomeNotKnownError(ValueError):
    """The label horizon after a campaign's as-of date has not passed in the data yet."""


def campaign_rows(assignments: pd.DataFrame, labels: pd.DataFrame, actions: pd.DataFrame | None) -> pd.DataFrame:
    """One row per alerted customer with a known outcome: group, action, segment, churned, treated, value, cost.

    Args:
        assignments: The campaign's alerted customers (`assignments.parquet`).
        labels: customer_id, churned: the labels at the campaign's as-of date.
        actions: The CRM's actions in the campaign (customer_id, action, cost), or None when
            none were imported (then `treated` is NaN and each treatment customer costs its
            action's cost per contact).

    Returns:
        The customers with a label; `treated` is 1 for a customer the log shows an action for.
    """
    outcome = labels[[names.CUSTOMER_ID, names.LABEL]].astype({names.CUSTOMER_ID: str})
    rows = assignments.astype({names.CUSTOMER_ID: str}).merge(outcome, on=names.CUSTOMER_ID, how="inner")
    rows = rows.rename(columns={names.LABEL: CHURNED})
    if SEGMENT not in rows:
        rows[SEGMENT] = ALL
    is_treatment = (rows[GROUP] == TREATMENT).to_numpy()
    if actions is None:
        rows[TREATED] = np.nan
        rows[COST] = np.where(is_treatment, rows[UNIT_COST], 0.0)
        return rows
    log = actions.astype({names.CUSTOMER_ID: str})
    unit = rows.set_index(names.CUSTOMER_ID)[UNIT_COST]
    log_cost = log[names.ACTION_COST].fillna(log[names.CUSTOMER_ID].map(unit)).fillna(0.0)
    spent = log_cost.groupby(log[names.CUSTOMER_ID]).sum()
    rows[TREATED] = rows[names.CUSTOMER_ID].isin(set(log[names.CUSTOMER_ID])).astype(float)
    rows[COST] = rows[names.CUSTOMER_ID].map(spent).fillna(0.0).to_numpy()
    return rows


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A table as JSON-ready records: NaN and infinities as null."""
    out: list[dict[str, Any]] = []
    for record in frame.to_dict("records"):
        out.append({k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()})
    return out


def evaluate_campaign(
    record: dict[str, Any], rows: pd.DataFrame, *, missing: int, level: float, seed: int
) -> dict[str, Any]:
    """The evaluation of one campaign from `campaign_rows`.

    Args:
        record: The campaign's record.
        rows: `campaign_rows` of the campaign.
        missing: Alerted customers without a label (left out).
        level: Confidence level of the intervals.
        seed: Seed of the CACE bootstrap.

    Returns:
        campaign_id, as_of, level, customers, missing_outcomes, actions_known, and the effect
        tables as records: overall, by_action, by_segment (action and segment).
    """
    overall = effects_by(rows.assign(**{ACTION: ALL}), [ACTION], level, seed)
    return {
        "campaign_id": record["campaign_id"],
        "as_of": record["as_of"],
        "model_version": record["model_version"],
        "level": level,
        "customers": len(rows),
        "missing_outcomes": int(missing),
        "actions_known": bool(rows[TREATED].notna().all()) if len(rows) else False,
        "overall": _records(overall)[0],
        "by_action": _records(effects_by(rows, [ACTION], level, seed)),
        "by_segment": _records(effects_by(rows, [ACTION, SEGMENT], level, seed)),
    }


def labels_at(settings: Settings, as_of: dt.date, customers: Sequence[str] | None = None) -> pd.DataFrame:
    """The labels at one date (customer_id, churned).

    The feature build's labels when `as_of` is on the observation grid (a batch campaign's as-of
    date); else, for `customers` (a real-time campaign's day), labels computed the same way from
    the ingested data, once the horizon after `as_of` lies within it.

    Raises:
        FileNotFoundError: No feature build yet.
        OutcomeNotKnownError: No label at `as_of`: its horizon has not passed in the data.
    """
    path = FeaturePaths.of(settings).labels
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `churn features build` first")
    stamp = pd.Timestamp(as_of, tz="UTC")
    labels = pd.read_parquet(path, filters=[(names.EVENT_TIMESTAMP, "==", stamp)])
    if labels.empty and customers is not None:
        labels = _labels_from_data(settings, stamp, customers)
    if labels.empty:
        newest = pd.read_parquet(path, columns=[names.EVENT_TIMESTAMP])[names.EVENT_TIMESTAMP].max()
        known = f"the newest labelled date is {newest:%Y-%m-%d}" if pd.notna(newest) else "no date is labelled yet"
        horizon = settings.labels.horizon_days
        raise OutcomeNotKnownError(
            f"the outcomes of a campaign as of {as_of} are not known yet: its {horizon}-day label horizon has "
            f"not passed in the data ({known})"
        )
    return labels


def _labels_from_data(settings: Settings, stamp: pd.Timestamp, customers: Sequence[str]) -> pd.DataFrame:
    """Labels of `customers` at `stamp` from the ingested customers and events (empty before the horizon passed)."""
    from features.labels import compute_labels
    from features.snapshots.inputs import event_day_range

    paths = FeaturePaths.of(settings)
    if not (paths.clean_events.exists() and paths.clean_customers.exists()):
        return pd.DataFrame(columns=[names.CUSTOMER_ID, names.EVENT_TIMESTAMP, names.LABEL])
    keys = pd.DataFrame({names.CUSTOMER_ID: [str(c) for c in customers]}).assign(**{names.EVENT_TIMESTAMP: stamp})
    clean = pd.read_parquet(paths.clean_customers).astype({names.CUSTOMER_ID: str})
    return compute_labels(
        keys[keys[names.CUSTOMER_ID].isin(set(clean[names.CUSTOMER_ID]))],
        clean,
        paths.clean_events,
        kind=settings.labels.kind,
        horizon_days=settings.labels.horizon_days,
        last_event_day=event_day_range(paths.clean_events)[1],
        activity_event_types=settings.labels.activity_event_types,
    )


def evaluate(settings: Settings, campaign_id: str, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Evaluate a campaign and write `evaluation.json` into its folder.

    Raises:
        CampaignNotFoundError: No such campaign.
        FileNotFoundError: No feature build yet.
        OutcomeNotKnownError: The label horizon after the campaign's as-of date has not passed.
    """
    from crm.campaigns.actions import read_actions

    record = read_record(settings, campaign_id)
    assignments = read_assignments(settings, campaign_id)
    labels = labels_at(settings, dt.date.fromisoformat(record["as_of"]), assignments[names.CUSTOMER_ID].astype(str))
    rows = campaign_rows(assignments, labels, read_actions(settings, campaign_id))
    evaluation = evaluate_campaign(record, rows, missing=len(assignments) - len(rows), level=level, seed=seed)
    evaluation["evaluated"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    write_json(evaluation, campaign_folder(settings, campaign_id) / EVALUATION)
    return evaluation


def read_evaluations(settings: Settings) -> list[dict[str, Any]]:
    """Every evaluated campaign's evaluation, oldest campaign first."""
    out = []
    for campaign in campaign_ids(settings):
        path = campaign_folder(settings, campaign) / EVALUATION
        if path.exists():
            out.append(read_json(path))
    return out


def action_table(evaluations: list[dict[str, Any]], level: float = 0.95) -> pd.DataFrame:
    """Per action, its effect pooled over the evaluated campaigns (`crm.campaigns.effects.pooled`), by net value."""
    cells = [pd.DataFrame(e["by_action"]).assign(campaign_id=e["campaign_id"]) for e in evaluations if e["by_action"]]
    if not cells:
        return pd.DataFrame()
    table = pd.concat(cells, ignore_index=True)
    for column in COLUMNS:
        table[column] = pd.to_numeric(table[column], errors="coerce")  # null (NaN, infinity) in the JSON
    out = pooled(table, ACTION, level)
    return out.sort_values("net_value", ascending=False, kind="stable").reset_index(drop=True)


def measured_success(settings: Settings) -> dict[str, float]:
    """Action -> measured success (its relative ITT effect: the share of would-be churners it keeps).

    Pooled over the evaluated campaigns; an action counts once its treatment and control arms each
    hold `crm.campaigns.min_arm_customers` customers. Nothing evaluated: an empty mapping (every
    action keeps `training.retention_success`).
    """
    table = action_table(read_evaluations(settings))
    if table.empty:
        return {}
    enough = settings.crm.campaigns.min_arm_customers
    ok = (table["treatment_n"] >= enough) & (table["control_n"] >= enough) & table["relative"].notna()
    return {str(a): float(min(r, 1.0)) for a, r in zip(table.loc[ok, ACTION], table.loc[ok, "relative"], strict=True)}


@dataclass(frozen=True)
class Success:
    """The success rate (share of contacted would-be churners kept) training's profit threshold uses."""

    value: float
    source: str
    """`measured` or `configured`."""
    note: str
    """One line for the training report: the value, where it comes from, what it replaced."""


def retention_success(settings: Settings) -> Success:
    """The measured success of the campaigns' actions once there is one, else `training.retention_success`.

    Measured: the relative intent-to-treat effect of every action together (each evaluated
    campaign's overall cell), pooled over the evaluated campaigns, once their treatment and control
    arms each hold `crm.campaigns.min_arm_customers` customers; kept within [0, 1]: a negative
    effect (the campaigns drove customers away) counts as 0, so no threshold earns anything (contact
    nobody), and the note gives the measured value.
    """
    configured = settings.training.retention_success
    evaluations = [e for e in read_evaluations(settings) if e.get("overall")]
    if evaluations:
        cells = pd.DataFrame([{**e["overall"], ACTION: ALL, "campaign_id": e["campaign_id"]} for e in evaluations])
        for column in COLUMNS:
            cells[column] = pd.to_numeric(cells[column], errors="coerce")
        row = pooled(cells, ACTION).iloc[0]
        enough = settings.crm.campaigns.min_arm_customers
        if row["treatment_n"] >= enough and row["control_n"] >= enough and pd.notna(row["relative"]):
            value = float(min(max(row["relative"], 0.0), 1.0))
            harmful = (
                f" (measured {row['relative']:.2f} < 0: the actions drove customers away)"
                if row["relative"] < 0
                else ""
            )
            return Success(
                value,
                MEASURED,
                f"measured {value:.2f}{harmful}: the pooled relative churn reduction (intent to treat) of "
                f"{len(evaluations)} evaluated campaign(s), {row['treatment_n']:,.0f} treatment / "
                f"{row['control_n']:,.0f} control customers, 95% interval [{row['relative_low']:.2f}, "
                f"{row['relative_high']:.2f}], in place of training.retention_success {configured:.2f}",
            )
    return Success(
        configured,
        CONFIGURED,
        f"configured {configured:.2f} (training.retention_success): no evaluated campaign has "
        f"{settings.crm.campaigns.min_arm_customers:,} customers in each arm yet",
    )


__all__ = ["VALUE", "OutcomeNotKnownError", "Success", "evaluate", "measured_success", "retention_success"]
