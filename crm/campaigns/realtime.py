"""The real-time path's campaigns: every alert raised on arrival goes to treatment or control.

The real-time path (POST /events, `churn stream`) raises alerts one customer at a time, so its
campaign is a day: every alert raised on one UTC day by one champion version belongs to the
campaign `rt-<day>-v<model version>` (e.g. rt-2025-07-08-v3), whose as-of date is that day. The
group comes from the same seeded hash as `churn score` (`crm.campaigns.plan.assignment_draws` of
`crm.campaigns.seed`, the campaign id and the customer id, against the action's control share):
the same customer alerted on the same day by the same champion always lands in the same group,
whichever process or batch raises it. A control customer's alert carries `action: null` and its
`planned_action`: the CRM does nothing for it. Unlike `churn score`, every alert gets a group,
whatever its action and expected profit (the alert is the decision the path made).

`assign_alerts` is pure; `record_alerts` is the I/O edge: it keeps each real-time campaign in the
workspace's campaigns folder as `churn score` keeps a batch one (`campaign.json` with `path:
real-time`, `assignments.parquet`, a customer's first alert of the day kept), so `churn campaigns
import-actions`, `evaluate` and `list` take it like any other. Its outcomes are the contractual or
activity labels at its day, computed from the ingested data once the horizon has passed
(`crm.campaigns.evaluation.labels_at`), as the day is rarely on the weekly observation grid.
"""

from __future__ import annotations

import datetime as dt
import fcntl
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from core import names
from core.io import write_atomic_parquet
from core.settings import Settings
from crm.campaigns.plan import (
    ASSIGNMENT_COLUMNS,
    CAMPAIGN_ID,
    CONTROL,
    EXPECTED_PROFIT,
    GROUP,
    SUCCESS,
    SUCCESS_SOURCE,
    TREATMENT,
    UNIT_COST,
    action_costs,
    action_success,
    assignment_draws,
    campaign_record,
)
from crm.campaigns.store import ASSIGNMENTS, RECORD, campaign_folder, read_json, write_json
from crm.early_warning import ACTION, CUSTOMER_VALUE, RISK_TIER, SEGMENT

PREFIX = "rt"
PATH = "real-time"
PLANNED_ACTION = "planned_action"


def realtime_campaign_id(day: dt.date, model_version: Any) -> str:  # noqa: ANN401 - a version number or text
    """The real-time campaign of alerts raised on `day` (UTC) by champion `model_version`: rt-<day>-v<version>."""
    return f"{PREFIX}-{day:%Y-%m-%d}-v{model_version}"


def assign_alerts(alerts: Sequence[dict[str, Any]], settings: Settings, at: dt.datetime) -> list[dict[str, Any]]:
    """Give each alert its campaign, group and what the CRM is to do.

    Args:
        alerts: Alert bodies (`stream.alerts.warnings`): customer_id, action (the playbook's), model_version.
        settings: `crm.campaigns` (seed, control shares) and the default action.
        at: When the alerts are raised: its UTC day names the campaign.

    Returns:
        New alert bodies with campaign_id, group (treatment or control), planned_action (the
        playbook's action), action (the planned action for treatment, None for control) and
        contact (whether the CRM acts: treatment with an action other than the default).
    """
    cfg = settings.crm.campaigns
    day = at.astimezone(dt.UTC).date()
    out = []
    for alert in alerts:
        campaign = realtime_campaign_id(day, alert.get("model_version"))
        planned = alert.get(PLANNED_ACTION) or alert.get(ACTION) or settings.crm.default_action
        draw = float(assignment_draws(campaign, [alert[names.CUSTOMER_ID]], cfg.seed)[0])
        group = CONTROL if draw < cfg.share_of(str(planned)) else TREATMENT
        out.append(
            {
                **alert,
                CAMPAIGN_ID: campaign,
                GROUP: group,
                PLANNED_ACTION: planned,
                ACTION: planned if group == TREATMENT else None,
                "contact": group == TREATMENT and planned != settings.crm.default_action,
            }
        )
    return out


def assignment_rows(
    alerts: Sequence[Mapping[str, Any]], settings: Settings, measured: Mapping[str, float]
) -> pd.DataFrame:
    """The assignments of assigned alerts, as `churn score` keeps them (`ASSIGNMENT_COLUMNS`, campaign id, source).

    Args:
        alerts: `assign_alerts`' bodies (with churn_probability, risk_tier, segment, customer_value).
        settings: Costs and the configured success.
        measured: Action -> measured success (`crm.campaigns.evaluation.measured_success`).
    """
    frame = pd.DataFrame(
        {
            names.CUSTOMER_ID: [str(a[names.CUSTOMER_ID]) for a in alerts],
            ACTION: [str(a[PLANNED_ACTION]) for a in alerts],
            GROUP: [a[GROUP] for a in alerts],
            SEGMENT: [a.get(SEGMENT) for a in alerts],
            RISK_TIER: [a.get(RISK_TIER) for a in alerts],
            names.PREDICTION: [float(a[names.PREDICTION]) for a in alerts],
            CUSTOMER_VALUE: [float(a.get(CUSTOMER_VALUE) or 0.0) for a in alerts],
            CAMPAIGN_ID: [a[CAMPAIGN_ID] for a in alerts],
        }
    )
    frame[UNIT_COST] = action_costs(settings, frame[ACTION])
    frame[SUCCESS], frame[SUCCESS_SOURCE] = action_success(settings, frame[ACTION], measured)
    frame[EXPECTED_PROFIT] = frame[names.PREDICTION] * frame[SUCCESS] * frame[CUSTOMER_VALUE] - frame[UNIT_COST]
    return frame


def record_alerts(
    settings: Settings, alerts: Sequence[Mapping[str, Any]], at: dt.datetime, measured: Mapping[str, float]
) -> list[str]:
    """Keep assigned alerts in their real-time campaigns' folders; the campaigns touched.

    A customer already in the campaign keeps its first assignment. The folder is locked while it
    is updated, so the service's workers and `churn stream` can record into the same campaign.

    Args:
        settings: The profile (the campaigns folder, costs, control shares, window and horizon).
        alerts: `assign_alerts`' bodies.
        at: When they were raised.
        measured: Action -> measured success, for the expected profit in the assignments.
    """
    frame = assignment_rows(alerts, settings, measured)
    touched = []
    for campaign, rows in frame.groupby(CAMPAIGN_ID, sort=True):
        folder = campaign_folder(settings, str(campaign))
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            path = folder / ASSIGNMENTS
            kept = pd.read_parquet(path) if path.exists() else None
            if kept is not None:
                rows = rows[~rows[names.CUSTOMER_ID].isin(set(kept[names.CUSTOMER_ID].astype(str)))]
                rows = pd.concat([kept.assign(**{CAMPAIGN_ID: campaign}), rows], ignore_index=True)
            rows = rows.drop_duplicates(subset=[names.CUSTOMER_ID], keep="first").reset_index(drop=True)
            created = read_json(folder / RECORD)["created"] if (folder / RECORD).exists() else None
            version = str(campaign).rsplit("-v", 1)[1]
            day = dt.date.fromisoformat(str(campaign)[len(PREFIX) + 1 : len(PREFIX) + 11])
            record = campaign_record(rows, settings, day, version, at)
            record |= {
                "path": PATH,
                "created": created or record["created"],
                "updated": at.isoformat(timespec="seconds"),
            }
            write_atomic_parquet(rows[[c for c in (*ASSIGNMENT_COLUMNS, SUCCESS_SOURCE) if c in rows]], path)
            write_json(record, folder / RECORD)
        touched.append(str(campaign))
    return touched
