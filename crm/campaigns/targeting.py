"""Training the uplift model on evaluated campaigns, judging it on a held-out one, and loading it to rank.

The job around `crm.campaigns.uplift`: each evaluated campaign's customers (features as scored,
churn probability, action, group) with their outcomes. The newest campaign is held out: the model
fitted on the others ranks it, beside ranking by churn probability and at random (Qini). With one
campaign only, a seeded 30% of its customers is held out instead (and the report says so). The
model that ranks the alert list is then fitted on every campaign and kept in
`<crm.campaigns.dir>/uplift/` (both arms' boosters and `meta.json`), with the Qini figure.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from core import names
from core.settings import Settings
from crm.campaigns.evaluation import campaign_rows, labels_at, read_evaluations
from crm.campaigns.plan import GROUP, assignment_draws
from crm.campaigns.store import campaigns_root, read_assignments, read_features, read_json, read_record, write_json
from crm.campaigns.uplift import TLearner, fit_t_learner, qini_coefficient, qini_curve

FOLDER = "uplift"
META = "meta.json"
HELD_OUT_SHARE = 0.3


class UpliftModelMissingError(FileNotFoundError):
    """No uplift model trained yet."""


@dataclass(frozen=True)
class UpliftResult:
    """What training the uplift model did."""

    meta: dict[str, Any]
    curves: dict[str, pd.DataFrame]
    folder: Path


def campaign_table(settings: Settings, campaign_id: str) -> pd.DataFrame | None:
    """One campaign's customers for the uplift model: features, churn probability, action, group, churned.

    None when the campaign kept no features.
    """
    from crm.campaigns.actions import read_actions

    features = read_features(settings, campaign_id)
    if features is None:
        return None
    record = read_record(settings, campaign_id)
    rows = campaign_rows(
        read_assignments(settings, campaign_id),
        labels_at(
            settings,
            dt.date.fromisoformat(record["as_of"]),
            read_assignments(settings, campaign_id)[names.CUSTOMER_ID].astype(str),
        ),
        read_actions(settings, campaign_id),
    )
    features = features.astype({names.CUSTOMER_ID: str}).drop(columns=[names.PREDICTION], errors="ignore")
    keep = [names.CUSTOMER_ID, names.PREDICTION, names.ACTION, GROUP, "churned"]
    return rows[keep].merge(features, on=names.CUSTOMER_ID).assign(campaign_id=campaign_id)


def train_uplift(settings: Settings, seed: int = 0) -> UpliftResult:
    """Fit, judge on a held-out campaign, refit on everything and keep the uplift model.

    Raises:
        NotEnoughOutcomesError: Too few treated or control outcomes.
        ValueError: No evaluated campaign kept its features.
    """
    cfg = settings.crm.campaigns.uplift
    tables = [t for e in read_evaluations(settings) if (t := campaign_table(settings, e["campaign_id"])) is not None]
    if not tables:
        raise ValueError("no evaluated campaign kept its customers' features: run `churn campaigns evaluate` first")
    data = pd.concat(tables, ignore_index=True)
    campaigns = list(dict.fromkeys(data["campaign_id"]))
    if len(campaigns) >= 2:
        test = (data["campaign_id"] == campaigns[-1]).to_numpy()
        held_out = f"campaign {campaigns[-1]}"
    else:
        test = assignment_draws("uplift-holdout", data[names.CUSTOMER_ID], seed) < HELD_OUT_SHARE
        held_out = f"{HELD_OUT_SHARE:.0%} of the customers of campaign {campaigns[0]} (one campaign only)"
    features = data.drop(columns=[names.CUSTOMER_ID, names.ACTION, GROUP, "churned", "campaign_id"])
    judge = fit_t_learner(
        features[~test], data.loc[~test, names.ACTION], data.loc[~test, GROUP], data.loc[~test, "churned"], cfg
    )
    outcome = data.loc[test, "churned"]
    group = data.loc[test, GROUP]
    scores = {
        "uplift": judge.uplift(features[test], data.loc[test, names.ACTION]),
        "churn_probability": data.loc[test, names.PREDICTION].to_numpy(dtype=float),
        "random": np.random.default_rng(seed).random(int(test.sum())),
    }
    curves = {name: qini_curve(score, group, outcome) for name, score in scores.items()}
    final = fit_t_learner(features, data[names.ACTION], data[GROUP], data["churned"], cfg)
    folder = campaigns_root(settings) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    final.control.save_model(str(folder / "control.json"))
    final.treatment.save_model(str(folder / "treatment.json"))
    meta = {
        "trained": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "campaigns": campaigns,
        "held_out": held_out,
        "rows": len(data),
        "test_rows": int(test.sum()),
        "treatment": int((data[GROUP] == "treatment").sum()),
        "control": int((data[GROUP] == "control").sum()),
        "columns": list(final.columns),
        "actions": list(final.actions),
        "qini": {name: qini_coefficient(curve) for name, curve in curves.items()},
        "avoided_at_30pct": {name: _at(curve, 0.3) for name, curve in curves.items()},
    }
    write_json(meta, folder / META)
    return UpliftResult(meta, curves, folder)


def _at(curve: pd.DataFrame, share: float) -> float:
    """Churners avoided when the top `share` of the customers is targeted."""
    return float(np.interp(share, curve["share"], curve["avoided"]))


def load_uplift(settings: Settings) -> TLearner:
    """The kept uplift model.

    Raises:
        UpliftModelMissingError: None trained yet.
    """
    folder = campaigns_root(settings) / FOLDER
    if not (folder / META).exists():
        raise UpliftModelMissingError(f"no uplift model in {folder}: none was trained on evaluated campaigns yet")
    meta = read_json(folder / META)
    arms = {}
    for arm in ("control", "treatment"):
        booster = xgb.Booster()
        booster.load_model(str(folder / f"{arm}.json"))
        arms[arm] = booster
    return TLearner(arms["control"], arms["treatment"], tuple(meta["columns"]), tuple(meta["actions"]))


def predict_uplift(model: TLearner, features: pd.DataFrame, alerts: pd.DataFrame) -> np.ndarray:
    """Expected uplift of each alert list row (features in the list's order, with its churn probability)."""
    rows = features.reset_index(drop=True).assign(**{names.PREDICTION: alerts[names.PREDICTION].to_numpy()})
    return model.uplift(rows, alerts[names.ACTION].reset_index(drop=True))
