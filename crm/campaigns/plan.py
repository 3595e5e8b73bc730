"""A scored alert list as a campaign: expected profit per customer, who is alerted, and their group.

Pure: the alert list in, the same rows with the campaign's columns out. Each action has a cost per
contact (`crm.campaigns.costs`, else `training.retention_cost`) and a success, the share of would-be
churners it keeps: the action's measured effect once campaigns measured one
(`crm.campaigns.effects.measured_success`), else `training.retention_success`. Then

    expected_profit = churn_probability x success x customer_value - cost

ranks the list (or, with an uplift model and `rank_by: uplift`, expected uplift x value - cost) and
decides who is alerted: an action other than the default with an expected profit above
`crm.campaigns.min_expected_profit`. Every alerted customer goes to the control group when a
uniform draw from a keyed hash of (seed, campaign id, customer id) falls below the action's control
share, and to the treatment group otherwise: the same campaign always draws the same groups,
whatever order or batch the customers come in.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from core import names
from core.settings import Settings
from crm.early_warning import ACTION, CUSTOMER_VALUE, RISK_TIER, SEGMENT

CAMPAIGN_ID = "campaign_id"
GROUP = "group"
TREATMENT = "treatment"
CONTROL = "control"
CONTACT = "contact"
UNIT_COST = "unit_cost"
SUCCESS = "retention_success"
SUCCESS_SOURCE = "success_source"
EXPECTED_PROFIT = "expected_profit"
EXPECTED_UPLIFT = "expected_uplift"
UPLIFT_PROFIT = "uplift_profit"
MEASURED = "measured"
CONFIGURED = "configured"

ASSIGNMENT_COLUMNS = (
    names.CUSTOMER_ID,
    ACTION,
    GROUP,
    SEGMENT,
    RISK_TIER,
    names.PREDICTION,
    CUSTOMER_VALUE,
    UNIT_COST,
    SUCCESS,
    EXPECTED_PROFIT,
)
"""What a campaign keeps of each alerted customer (`assignments.parquet`)."""


def campaign_id_for(as_of: dt.date, model_version: str) -> str:
    """The default id of the campaign of an alert list: its as-of date and the model version, e.g. 2025-06-30-v3."""
    return f"{as_of:%Y-%m-%d}-v{model_version}"


def assignment_draws(campaign_id: str, customer_ids: Iterable[Any], seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per customer from a hash of (seed, campaign id, customer id).

    BLAKE2b of the three as text: the same on every machine, Python and library version, and
    independent of the other customers scored with it.
    """
    prefix = f"{seed}\x1f{campaign_id}\x1f".encode()
    out = np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(prefix + str(c).encode(), digest_size=8).digest(), "big")
            for c in customer_ids
        ),
        dtype=np.uint64,
    )
    return (out >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def action_costs(settings: Settings, actions: pd.Series) -> np.ndarray:
    """Cost of one contact of each row's action (`crm.campaigns.costs`, else `training.retention_cost`)."""
    costs = settings.crm.campaigns.costs
    default = settings.training.retention_cost
    return actions.map(lambda a: costs.get(a, default)).to_numpy(dtype=float)


def action_success(
    settings: Settings, actions: pd.Series, measured: Mapping[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's success (share of would-be churners the action keeps) and where it comes from.

    Args:
        settings: `training.retention_success` is the success of an action nothing measured.
        actions: The rows' actions.
        measured: Action -> measured success (`crm.campaigns.effects.measured_success`).

    Returns:
        The successes, and `measured` or `configured` per row.
    """
    default = settings.training.retention_success
    success = actions.map(lambda a: measured.get(a, default)).to_numpy(dtype=float)
    source = np.where(actions.isin(list(measured)).to_numpy(), MEASURED, CONFIGURED).astype(object)
    return success, source


def plan_campaign(
    alerts: pd.DataFrame,
    settings: Settings,
    campaign_id: str,
    measured: Mapping[str, float] | None = None,
    uplift: np.ndarray | None = None,
) -> pd.DataFrame:
    """The alert list as a campaign: costs, successes, expected profit, alerted customers' groups; re-ranked.

    Args:
        alerts: The alert list (`crm.alerts.alert_list`): needs customer_id, churn_probability,
            customer_value and action.
        settings: The profile (`crm.campaigns`, the default action, `training.retention_*`).
        campaign_id: The campaign's id: with `crm.campaigns.seed` it decides the groups.
        measured: Action -> measured success, replacing `training.retention_success` for it.
        uplift: Per row of `alerts`, the uplift model's expected fall in churn probability if
            treated; with `crm.campaigns.rank_by: uplift` it ranks the list and decides who is alerted.

    Returns:
        The rows with campaign_id, unit_cost, retention_success, success_source, expected_profit,
        (with `uplift`: expected_uplift and uplift_profit), group (treatment, control, or null for
        a customer not alerted) and contact (whether the CRM acts: the treatment group), sorted by
        the ranking profit, then churn probability, highest first.

    Raises:
        ValueError: `alerts` lacks a column, or `uplift` has another length.
    """
    missing = [c for c in (names.CUSTOMER_ID, names.PREDICTION, CUSTOMER_VALUE, ACTION) if c not in alerts]
    if missing:
        raise ValueError(f"the alert list lacks column(s) {', '.join(missing)}")
    cfg = settings.crm.campaigns
    actions = alerts[ACTION].astype(object)
    probability = alerts[names.PREDICTION].to_numpy(dtype=float)
    value = pd.to_numeric(alerts[CUSTOMER_VALUE], errors="coerce").fillna(0.0).to_numpy(dtype=float)
    cost = action_costs(settings, actions)
    success, source = action_success(settings, actions, measured or {})
    out = alerts.copy()
    out[CAMPAIGN_ID] = campaign_id
    out[UNIT_COST] = cost
    out[SUCCESS] = success
    out[SUCCESS_SOURCE] = source
    out[EXPECTED_PROFIT] = probability * success * value - cost
    rank = out[EXPECTED_PROFIT].to_numpy()
    if uplift is not None:
        uplift = np.asarray(uplift, dtype=float)
        if len(uplift) != len(out):
            raise ValueError(f"uplift has {len(uplift)} values for {len(out)} alerts")
        out[EXPECTED_UPLIFT] = uplift
        out[UPLIFT_PROFIT] = uplift * value - cost
        if cfg.rank_by == "uplift":
            rank = out[UPLIFT_PROFIT].to_numpy()
    alerted = (actions != settings.crm.default_action).to_numpy()
    if cfg.min_expected_profit is not None:
        alerted &= rank > cfg.min_expected_profit
    group = np.full(len(out), None, dtype=object)
    if alerted.any():
        draws = assignment_draws(campaign_id, out.loc[alerted, names.CUSTOMER_ID], cfg.seed)
        shares = actions[alerted].map(cfg.share_of).to_numpy(dtype=float)
        group[alerted] = np.where(draws < shares, CONTROL, TREATMENT)
    out[GROUP] = group
    out[CONTACT] = group == TREATMENT
    order = np.lexsort((-probability, -np.nan_to_num(rank, nan=-np.inf)))
    return out.iloc[order].reset_index(drop=True)


def campaign_record(
    planned: pd.DataFrame, settings: Settings, as_of: dt.date, model_version: str, created: dt.datetime
) -> dict[str, Any]:
    """The campaign record: id, dates, model version, and per action its customers, groups and expected cost.

    Args:
        planned: `plan_campaign`'s rows (one campaign).
        settings: The profile (control shares, seed, window and label horizon).
        as_of: The scored snapshot's date: the campaign starts then.
        model_version: The champion's version that scored it.
        created: When the campaign was planned (UTC).

    Returns:
        A JSON-ready mapping: campaign_id, as_of, window_end (actions count until then), outcome_known
        (the day the label horizon has passed), model_version, created, seed, rank_by, customers,
        treatment, control, expected_cost (treatment x cost per contact), expected_profit, actions
        (one entry per action with customers).

    Raises:
        ValueError: `planned` holds no campaign id, or several.
    """
    ids = planned[CAMPAIGN_ID].dropna().unique() if CAMPAIGN_ID in planned else []
    if len(ids) != 1:
        raise ValueError(f"expected the rows of one campaign, got campaign ids {list(ids)}")
    cfg = settings.crm.campaigns
    alerted = planned[planned[GROUP].notna()]
    treated = alerted[alerted[GROUP] == TREATMENT]
    per_action = []
    for action, rows in alerted.groupby(ACTION, sort=True):
        arm = rows[rows[GROUP] == TREATMENT]
        per_action.append(
            {
                "action": str(action),
                "customers": len(rows),
                "treatment": len(arm),
                "control": len(rows) - len(arm),
                "control_share": cfg.share_of(str(action)),
                "unit_cost": float(rows[UNIT_COST].iloc[0]),
                "retention_success": float(rows[SUCCESS].iloc[0]),
                "success_source": str(rows[SUCCESS_SOURCE].iloc[0]),
                "expected_cost": float(arm[UNIT_COST].sum()),
                "expected_profit": float(arm[EXPECTED_PROFIT].sum()),
            }
        )
    return {
        "campaign_id": str(ids[0]),
        "as_of": as_of.isoformat(),
        "window_end": (as_of + dt.timedelta(days=cfg.window_days)).isoformat(),
        "outcome_known": (as_of + dt.timedelta(days=settings.labels.horizon_days)).isoformat(),
        "horizon_days": settings.labels.horizon_days,
        "model_version": str(model_version),
        "created": created.astimezone(dt.UTC).isoformat(timespec="seconds"),
        "seed": cfg.seed,
        "rank_by": cfg.rank_by if EXPECTED_UPLIFT in planned else "expected_profit",
        "customers": len(alerted),
        "treatment": len(treated),
        "control": len(alerted) - len(treated),
        "expected_cost": float(treated[UNIT_COST].sum()),
        "expected_profit": float(treated[EXPECTED_PROFIT].sum()),
        "actions": per_action,
    }
