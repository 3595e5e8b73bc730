"""Uplift targeting: a T-learner on XGBoost, and the Qini curves that judge it on held-out campaigns.

Two XGBoost classifiers of churn, one fitted on the control group and one on the treatment group
of evaluated campaigns (features as scored, the churn probability and the action, one-hot);
a customer's expected uplift is the fall in churn probability the action brings:
P(churn | control) - P(churn | treatment). Ranking by uplift x value - cost targets the
persuadable instead of the likeliest churners, among whom are the lost causes.

The Qini curve of a ranking counts, among the top k customers, the churners the action avoided:
C_c(k) x N_t(k) / N_c(k) - C_t(k) (treatment arm size times the control's churn rate, less the
treatment's churners). Its Qini coefficient is the area between the curve and the straight line
of random targeting, per customer. A T-learner needs nothing a maintained library adds: causalml
(the maintained choice) installs with the lock but brings numba, lightgbm, shap and more into the
service's environment, and scikit-uplift has had no release since 2022.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xgboost as xgb

from core import names
from core.crm_settings import UpliftSettings
from crm.campaigns.plan import CONTROL, TREATMENT

ACTION_PREFIX = "action="


class NotEnoughOutcomesError(ValueError):
    """Too few treated or control outcomes to fit the uplift model."""


def uplift_columns(features: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """The numeric feature columns an uplift model can use (ids, timestamps and strings left out)."""
    skip = {names.CUSTOMER_ID, names.EVENT_TIMESTAMP, *exclude}
    return [c for c in features.columns if c not in skip and pd.api.types.is_numeric_dtype(features[c])]


def design(
    features: pd.DataFrame, actions: pd.Series, columns: Sequence[str], action_names: Sequence[str]
) -> pd.DataFrame:
    """The model input: the numeric columns as floats (missing ones NaN) and the action one-hot."""
    out = {c: pd.to_numeric(features[c], errors="coerce").astype(float) if c in features else np.nan for c in columns}
    frame = pd.DataFrame(out, index=features.index)
    values = actions.astype(str).to_numpy()
    for action in action_names:
        frame[ACTION_PREFIX + action] = (values == action).astype(float)
    return frame


@dataclass(frozen=True)
class TLearner:
    """One churn model per arm; uplift = P(churn | control) - P(churn | treatment)."""

    control: xgb.Booster
    treatment: xgb.Booster
    columns: tuple[str, ...]
    actions: tuple[str, ...]

    def uplift(self, features: pd.DataFrame, actions: pd.Series) -> np.ndarray:
        """Each row's expected fall in churn probability if it gets its action.

        Args:
            features: The rows' features (and churn probability) as scored.
            actions: Each row's action.
        """
        matrix = xgb.DMatrix(design(features, actions, self.columns, self.actions))
        return np.asarray(self.control.predict(matrix) - self.treatment.predict(matrix), dtype=float)


def fit_t_learner(
    features: pd.DataFrame, actions: pd.Series, group: pd.Series, churned: pd.Series, cfg: UpliftSettings
) -> TLearner:
    """Fit the two arms' churn models.

    Args:
        features: One row per customer: the numeric features as scored (and churn probability).
        actions: Each row's action.
        group: Each row's group (treatment or control).
        churned: Each row's outcome (0/1).
        cfg: Rounds, depth, learning rate, minimum rows per arm and seed.

    Raises:
        NotEnoughOutcomesError: An arm holds fewer than `cfg.min_per_group` rows.
    """
    counts = {arm: int((group == arm).sum()) for arm in (TREATMENT, CONTROL)}
    if min(counts.values()) < cfg.min_per_group:
        raise NotEnoughOutcomesError(
            f"the evaluated campaigns hold {counts[TREATMENT]:,} treated and {counts[CONTROL]:,} control outcomes; "
            f"the uplift model needs {cfg.min_per_group:,} of each (crm.campaigns.uplift.min_per_group)"
        )
    columns = tuple(uplift_columns(features))
    action_names = tuple(sorted(set(actions.astype(str))))
    x = design(features, actions, columns, action_names)
    params = {
        "objective": "binary:logistic",
        "max_depth": cfg.max_depth,
        "eta": cfg.eta,
        "min_child_weight": cfg.min_child_weight,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "seed": cfg.seed,
        "nthread": 2,
        "verbosity": 0,
    }
    boosters = {}
    for arm in (CONTROL, TREATMENT):
        rows = (group == arm).to_numpy()
        data = xgb.DMatrix(x[rows], label=churned.to_numpy(dtype=float)[rows])
        boosters[arm] = xgb.train(params, data, num_boost_round=cfg.rounds)
    return TLearner(boosters[CONTROL], boosters[TREATMENT], columns, action_names)


def qini_curve(score: np.ndarray, group: pd.Series, churned: pd.Series) -> pd.DataFrame:
    """The Qini curve of ranking by `score` (highest first): churners avoided among the top k.

    Args:
        score: The ranking score per customer (uplift, churn probability, ...).
        group: Each customer's group.
        churned: Each customer's outcome (0/1).

    Returns:
        Columns share (of customers targeted, 0 to 1) and avoided (churners the action avoided
        among them, in customers), one row per customer plus the origin.
    """
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    treat = (group.to_numpy() == TREATMENT)[order]
    y = churned.to_numpy(dtype=float)[order]
    n_t, n_c = np.cumsum(treat), np.cumsum(~treat)
    c_t, c_c = np.cumsum(y * treat), np.cumsum(y * ~treat)
    with np.errstate(divide="ignore", invalid="ignore"):
        avoided = np.where(n_c > 0, c_c * n_t / n_c, 0.0) - c_t
    share = np.arange(1, len(order) + 1) / max(len(order), 1)
    return pd.DataFrame({"share": np.r_[0.0, share], "avoided": np.r_[0.0, avoided]})


def qini_coefficient(curve: pd.DataFrame) -> float:
    """The area between a Qini curve and random targeting's straight line, per customer targeted."""
    x = curve["share"].to_numpy()
    q = curve["avoided"].to_numpy()
    gain = q - x * q[-1]
    area = float(np.sum((gain[1:] + gain[:-1]) / 2 * np.diff(x)))
    return area / max(len(curve) - 1, 1)
