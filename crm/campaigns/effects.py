"""Measured effects of a campaign's actions: treatment against control, per action and per segment.

Pure: one row per alerted customer in (group, churned, and where the CRM's actions are known,
whether the customer was actually treated; value and cost), one row per cell out. Effects are
churn *reductions*: positive when the action keeps customers.

* Intent to treat (ITT): control churn rate - treatment churn rate, with a Wald interval
  (unpooled variances); relative to the control rate (1 - risk ratio), with the interval of the
  log risk ratio (Katz; 0.5 added to every cell when one is empty).
* Complier average causal effect (CACE), where actions taken are known: the Wald (instrumental
  variable) estimator ITT / (share treated in the treatment arm - share treated in the control
  arm); relative to the compliers' churn rate without the action (Imbens and Rubin). Its interval
  is a seeded bootstrap: each arm's (churned, treated) counts redrawn from their multinomial.
* Money: cost (of the actions taken, else the treatment arm x the cost per contact), saved
  customers (ITT x treatment arm), saved value (the fall in mean lost value, customer value x
  churned, x treatment arm, with its Wald interval), net value (saved value - cost) and the number
  needed to treat (1 / ITT).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from crm.campaigns.plan import CONTROL, GROUP, TREATMENT

CHURNED = "churned"
TREATED = "treated"
"""1 when the CRM's log shows an action for the customer in the campaign window; NaN when no log was imported."""
VALUE = "customer_value"
COST = "cost"
"""What the customer's actions cost (treatment arm): the log's cost, else the cost per contact."""

LEVEL = 0.95
BOOTSTRAP = 2000

COLUMNS = (
    "treatment_n",
    "control_n",
    "treatment_churn",
    "control_churn",
    "itt",
    "itt_low",
    "itt_high",
    "relative",
    "relative_low",
    "relative_high",
    "log_rr_se",
    "zero_in_ci",
    "treated_share",
    "control_treated_share",
    "cace",
    "cace_low",
    "cace_high",
    "cace_relative",
    "cace_relative_low",
    "cace_relative_high",
    "cost",
    "saved_customers",
    "saved_value",
    "saved_value_low",
    "saved_value_high",
    "net_value",
    "net_value_low",
    "net_value_high",
    "nnt",
)
"""The figures of a cell, in order."""


def z_value(level: float = LEVEL) -> float:
    """The normal quantile of a two-sided interval at `level`."""
    return float(norm.ppf(0.5 + level / 2))


def cell_effects(rows: pd.DataFrame, level: float = LEVEL, seed: int = 0, draws: int = BOOTSTRAP) -> dict[str, float]:
    """The figures (`COLUMNS`) of one cell: treatment against control.

    Args:
        rows: One row per customer: group (treatment or control), churned (0/1), customer_value,
            cost, and treated (0/1, or NaN throughout when the actions are unknown).
        level: Confidence level of the intervals.
        seed: Seed of the CACE bootstrap.
        draws: Bootstrap draws.
    """
    z = z_value(level)
    t = rows[rows[GROUP] == TREATMENT]
    c = rows[rows[GROUP] == CONTROL]
    nt, nc = len(t), len(c)
    out: dict[str, float] = dict.fromkeys(COLUMNS, np.nan)
    out["treatment_n"], out["control_n"] = float(nt), float(nc)
    cost = float(t[COST].sum()) if nt else 0.0
    out["cost"] = cost
    if nt == 0 or nc == 0:
        out["zero_in_ci"] = 1.0
        return out
    yt, yc = t[CHURNED].to_numpy(dtype=float), c[CHURNED].to_numpy(dtype=float)
    pt, pc = yt.mean(), yc.mean()
    itt = pc - pt
    se = np.sqrt(pt * (1 - pt) / nt + pc * (1 - pc) / nc)
    out |= {"treatment_churn": pt, "control_churn": pc, "itt": itt, "itt_low": itt - z * se, "itt_high": itt + z * se}
    out["zero_in_ci"] = float(out["itt_low"] <= 0 <= out["itt_high"]) if se > 0 else float(itt == 0)
    at, ac = yt.sum(), yc.sum()
    if ac > 0:
        out["relative"] = 1 - pt / pc
        if at == 0 or at == nt or ac == nc:
            at, ac, nt_, nc_ = at + 0.5, ac + 0.5, nt + 1.0, nc + 1.0
        else:
            nt_, nc_ = float(nt), float(nc)
        log_rr = np.log((at / nt_) / (ac / nc_))
        se_log = np.sqrt(1 / at - 1 / nt_ + 1 / ac - 1 / nc_)
        out["log_rr_se"] = se_log
        out["relative_low"] = 1 - np.exp(log_rr + z * se_log)
        # No churner under treatment: the corrected interval is for 0.5 churners; the point is 100%.
        out["relative_high"] = 1.0 if yt.sum() == 0 else 1 - np.exp(log_rr - z * se_log)
    lost_t = yt * t[VALUE].to_numpy(dtype=float)
    lost_c = yc * c[VALUE].to_numpy(dtype=float)
    per_customer = lost_c.mean() - lost_t.mean()
    se_value = np.sqrt(lost_t.var(ddof=1) / nt + lost_c.var(ddof=1) / nc) if nt > 1 and nc > 1 else np.nan
    out["saved_customers"] = itt * nt
    out["saved_value"] = per_customer * nt
    out["saved_value_low"] = (per_customer - z * se_value) * nt
    out["saved_value_high"] = (per_customer + z * se_value) * nt
    out["net_value"] = out["saved_value"] - cost
    out["net_value_low"] = out["saved_value_low"] - cost
    out["net_value_high"] = out["saved_value_high"] - cost
    out["nnt"] = 1 / itt if itt > 0 else np.inf
    if rows[TREATED].notna().all():
        out |= _cace(yt, t[TREATED].to_numpy(dtype=float), yc, c[TREATED].to_numpy(dtype=float), level, seed, draws)
    return out


def _cace(
    yt: np.ndarray, dt_: np.ndarray, yc: np.ndarray, dc: np.ndarray, level: float, seed: int, draws: int
) -> dict[str, float]:
    """CACE and its relative form, with bootstrap percentile intervals, from each arm's (churned, treated)."""
    cells_t = _cells(yt, dt_)
    cells_c = _cells(yc, dc)
    point = _wald(cells_t[None, :], cells_c[None, :])
    rng = np.random.default_rng(seed)
    boot_t = rng.multinomial(len(yt), cells_t / len(yt), size=draws)
    boot_c = rng.multinomial(len(yc), cells_c / len(yc), size=draws)
    boot = _wald(boot_t.astype(float), boot_c.astype(float))
    tail = (1 - level) / 2 * 100
    out = {
        "treated_share": float(dt_.mean()),
        "control_treated_share": float(dc.mean()),
        "cace": float(point[0][0]),
        "cace_relative": float(point[1][0]),
    }
    for name, values in (("cace", boot[0]), ("cace_relative", boot[1])):
        finite = values[np.isfinite(values)]
        if np.isfinite(out[name]) and len(finite) > draws / 2:
            out[f"{name}_low"], out[f"{name}_high"] = (float(v) for v in np.percentile(finite, [tail, 100 - tail]))
    return out


def _cells(y: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Counts of (churned, treated) = (0,0), (0,1), (1,0), (1,1)."""
    code = (y > 0).astype(int) * 2 + (d > 0).astype(int)
    return np.bincount(code, minlength=4).astype(float)


def _wald(t: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Wald estimator and the compliers' untreated churn rate, per row of cell counts (draws x 4).

    Churn reduction among compliers = (churn_c - churn_t) / (treated_t - treated_c); their churn
    without the action = (E[churned, untreated | control] - E[churned, untreated | treatment]) / the same share.
    """
    nt, nc = t.sum(axis=1), c.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        churn_t, churn_c = (t[:, 2] + t[:, 3]) / nt, (c[:, 2] + c[:, 3]) / nc
        treated_t, treated_c = (t[:, 1] + t[:, 3]) / nt, (c[:, 1] + c[:, 3]) / nc
        compliers = treated_t - treated_c
        cace = np.where(compliers > 0, (churn_c - churn_t) / compliers, np.nan)
        untreated_churn = (c[:, 2] / nc - t[:, 2] / nt) / compliers
        relative = np.where((compliers > 0) & (untreated_churn > 0), cace / untreated_churn, np.nan)
    return cace, relative


def effects_by(
    rows: pd.DataFrame, by: Sequence[str], level: float = LEVEL, seed: int = 0, draws: int = BOOTSTRAP
) -> pd.DataFrame:
    """`cell_effects` of every cell of `by` (e.g. action, or action and segment).

    Returns:
        One row per cell: the `by` columns, then `COLUMNS`; cells in sorted order.
    """
    out = []
    for key, cell in rows.groupby(list(by), sort=True, dropna=False):
        keys = key if isinstance(key, tuple) else (key,)
        out.append({**dict(zip(by, keys, strict=True)), **cell_effects(cell, level, seed, draws)})
    return pd.DataFrame(out, columns=[*by, *COLUMNS])


def pooled(table: pd.DataFrame, by: str, level: float = LEVEL) -> pd.DataFrame:
    """Effects pooled over campaigns per value of `by`: fixed-effect (inverse-variance) means.

    ITT and saved value are pooled on their scale, the relative effect on the log risk ratio;
    counts, cost, saved value and net value are summed over the campaigns.

    Args:
        table: Rows of `effects_by` of several campaigns (a `campaign_id` column may be there).
        by: The column to pool within (e.g. action).
        level: Confidence level of the intervals.

    Returns:
        One row per value of `by`: treatment_n, control_n, campaigns, itt (and interval), relative
        (and interval), zero_in_ci, cost, saved_value, net_value (and intervals), nnt.
    """
    z = z_value(level)
    rows = []
    for key, cells in table.groupby(by, sort=True):
        cells = cells[(cells["treatment_n"] > 0) & (cells["control_n"] > 0)]
        entry: dict[str, Any] = {by: str(key), "campaigns": float(len(cells))}
        entry["treatment_n"] = float(cells["treatment_n"].sum())
        entry["control_n"] = float(cells["control_n"].sum())
        se = (cells["itt_high"] - cells["itt_low"]) / (2 * z)
        weights = 1 / se.where(se > 0) ** 2
        if weights.notna().any():
            w = weights.fillna(0)
            itt = float((w * cells["itt"]).sum() / w.sum())
            half = z / np.sqrt(w.sum())
            entry |= {"itt": itt, "itt_low": itt - half, "itt_high": itt + half}
        else:
            entry |= {
                "itt": float(cells["itt"].mean()) if len(cells) else np.nan,
                "itt_low": np.nan,
                "itt_high": np.nan,
            }
        w_rel = 1 / cells["log_rr_se"].where(cells["log_rr_se"] > 0) ** 2
        log_rr = np.log(1 - cells["relative"].clip(upper=1 - 1e-9))
        if w_rel.notna().any():
            w = w_rel.fillna(0)
            mean = float((w * log_rr.fillna(0)).sum() / w.sum())
            half = z / np.sqrt(w.sum())
            entry |= {
                "relative": 1 - np.exp(mean),
                "relative_low": 1 - np.exp(mean + half),
                "relative_high": 1 - np.exp(mean - half),
            }
        else:
            entry |= {"relative": np.nan, "relative_low": np.nan, "relative_high": np.nan}
        entry["zero_in_ci"] = float(not (entry["itt_low"] > 0 or entry["itt_high"] < 0))
        entry["cost"] = float(cells["cost"].sum())
        entry["saved_value"] = float(cells["saved_value"].sum())
        half_value = np.sqrt((((cells["saved_value_high"] - cells["saved_value_low"]) / 2) ** 2).sum())
        entry["net_value"] = entry["saved_value"] - entry["cost"]
        entry["net_value_low"] = entry["net_value"] - half_value
        entry["net_value_high"] = entry["net_value"] + half_value
        entry["nnt"] = 1 / entry["itt"] if entry["itt"] > 0 else np.inf
        rows.append(entry)
    return pd.DataFrame(rows)
