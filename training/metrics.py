"""Metrics of churn scores against held-out labels: ranking, lift, calibration and the money.

Everything here is pure: labels and scores in, numbers out. Nothing is logged; the training
pipeline logs `Evaluation.metrics()`, and `training.plots` and `training.report` draw and write
what an `Evaluation` holds.

The money. A retention campaign contacts every customer whose churn probability is at least a
threshold `t`. Contacting customer i costs `retention_cost`; if i was going to churn, the offer
keeps them with probability `success_rate`, which saves their value `v_i`. So

    profit(t)          = sum over i with p_i >= t of (y_i * success_rate * v_i - retention_cost)
    profit_expected(t) = sum over i with p_i >= t of (p_i * success_rate * v_i - retention_cost)

`profit` is the realised profit on labelled data (what the campaign would have earned on the
test set); `profit_expected` replaces the label by the predicted probability, so it is what the
model itself promises and is computable without labels (trustworthy only as far as the model is
calibrated). For a calibrated model and a scalar value, `profit_expected` peaks at
`t = retention_cost / (success_rate * value)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from model.calibration import LOG_LOSS_EPS, as_labels, as_probabilities

NO_CONTACT = 1.01
"""The profit grid's last threshold: above every probability, so nobody is contacted (profit 0)."""

DEFAULT_THRESHOLDS = np.round(np.linspace(0.0, 1.0, 101), 2)
"""The default profit grid, 0.00 to 1.00 by 0.01 (`NO_CONTACT` is always added)."""

CALIBRATION_BINS = 10
"""Quantile bins of the calibration curve and of the expected calibration error."""


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Metrics and curves of one set of scores against held-out labels (see `evaluate`).

    The arrays keep the inputs (`y_true`, `proba`) so `training.plots` can draw ROC, precision-recall
    and gains curves. Metrics that need both classes (AUCs, lift, capture) are NaN without them.
    """

    y_true: np.ndarray
    """Labels, 0/1 (int8)."""
    proba: np.ndarray
    """Scores, float64 in [0, 1]."""
    base_rate: float
    """Share of churners."""
    roc_auc: float
    pr_auc: float
    """Average precision (the step-wise area under the precision-recall curve)."""
    log_loss: float
    brier: float
    lift_fraction: float
    """The targeted top share of customers of `lift` and `capture` (0.1: top decile)."""
    lift: float
    """Churn rate among the top `lift_fraction` by score / overall churn rate."""
    capture: float
    """Share of all churners that are in the top `lift_fraction` by score."""
    calibration_true: np.ndarray
    """Calibration curve: the churn rate of each non-empty quantile bin."""
    calibration_pred: np.ndarray
    """Calibration curve: the mean score of each non-empty quantile bin."""
    ece: float
    """Expected calibration error: bin-size weighted mean |churn rate - mean score| over the bins."""
    retention_cost: float
    success_rate: float
    mean_customer_value: float
    thresholds: np.ndarray
    """The profit grid (ascending, ends with `NO_CONTACT`)."""
    contacted: np.ndarray
    """Customers with score >= each threshold."""
    profit: np.ndarray
    """Realised profit of each threshold (uses the labels)."""
    profit_expected: np.ndarray
    """Expected profit of each threshold (uses the scores instead of the labels)."""
    best_threshold: float
    """Threshold of the highest realised profit (ties: the highest threshold, fewest contacts)."""
    best_profit: float
    best_contacted: int
    expected_best_threshold: float
    """Threshold of the highest expected profit: the one to use on unlabelled customers."""
    expected_best_profit: float
    """The expected profit at `expected_best_threshold`."""
    profit_at_expected_threshold: float
    """The realised profit at `expected_best_threshold` (what trusting the model would have earned)."""

    @property
    def n(self) -> int:
        """Number of customers evaluated."""
        return int(self.y_true.size)

    @property
    def top_label(self) -> str:
        """The lift fraction as a metric suffix: 0.1 -> 'top10'."""
        return f"top{self.lift_fraction * 100:g}"

    def metrics(self) -> dict[str, float]:
        """Flat metrics for MLflow (`mlflow.log_metrics`), NaN where undefined.

        Note that `best_threshold`/`best_profit` are chosen on the same labels they are measured
        on (optimistic); `profit_at_expected_threshold` is the label-free choice's realised profit.
        """
        return {
            "roc_auc": self.roc_auc,
            "pr_auc": self.pr_auc,
            "log_loss": self.log_loss,
            "brier": self.brier,
            f"lift_{self.top_label}": self.lift,
            f"capture_{self.top_label}": self.capture,
            "ece": self.ece,
            "base_rate": self.base_rate,
            "best_threshold": self.best_threshold,
            "best_profit": self.best_profit,
            "best_contacted": float(self.best_contacted),
            "expected_best_threshold": self.expected_best_threshold,
            "expected_best_profit": self.expected_best_profit,
            "profit_at_expected_threshold": self.profit_at_expected_threshold,
        }


def _per_row(value: float | npt.ArrayLike, size: int, name: str) -> np.ndarray:
    values = np.asarray(value, dtype=np.float64)
    if values.ndim == 0:
        values = np.full(size, float(values))
    if values.shape != (size,):
        raise ValueError(f"{name} must be a scalar or one value per row ({size}), got shape {values.shape}")
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError(f"{name} must be finite and non-negative")
    return values


def top_fraction(y_true: np.ndarray, proba: np.ndarray, fraction: float) -> tuple[float, float]:
    """Lift and capture rate of the top `fraction` of customers by score.

    The top is the ceil(fraction * n) highest scores. Scores tied across the cut count with the
    expected share of their churners (as if ties were broken at random), so the result does not
    depend on row order; constant scores give lift 1.

    Args:
        y_true: Labels, 0/1.
        proba: Scores.
        fraction: Share of customers targeted, in (0, 1].

    Returns:
        (lift, capture): churn rate in the top / overall churn rate, and churners in the top /
        all churners. NaN when there are no churners.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError("the lift fraction must be in (0, 1]")
    n = y_true.size
    positives = float(y_true.sum())
    if positives == 0:
        return math.nan, math.nan
    k = max(1, math.ceil(round(fraction * n, 9)))
    cut = np.sort(proba)[::-1][k - 1]
    above = proba > cut
    tied = proba == cut
    n_above = int(above.sum())
    caught = float(y_true[above].sum()) + (k - n_above) * float(y_true[tied].sum()) / int(tied.sum())
    capture = caught / positives
    lift = (caught / k) / (positives / n)
    return lift, capture


def calibration_bins(
    y_true: np.ndarray, proba: np.ndarray, n_bins: int = CALIBRATION_BINS
) -> tuple[np.ndarray, np.ndarray, float]:
    """The quantile-binned calibration curve and the expected calibration error.

    The curve is `sklearn.calibration.calibration_curve(strategy="quantile")`; the ECE uses the
    same bins (same edges, same assignment): sum over bins of n_bin / n * |churn rate - mean score|.

    Returns:
        (churn rate per non-empty bin, mean score per non-empty bin, ECE).
    """
    prob_true, prob_pred = calibration_curve(y_true, proba, n_bins=n_bins, strategy="quantile")
    edges = np.percentile(proba, np.linspace(0, 1, n_bins + 1) * 100)
    counts = np.bincount(np.searchsorted(edges[1:-1], proba), minlength=n_bins)
    counts = counts[counts != 0]
    if counts.size != prob_true.size:  # pragma: no cover - sklearn changed its binning
        raise RuntimeError("calibration bins do not match sklearn's calibration_curve")
    ece = float(np.sum(counts / proba.size * np.abs(prob_true - prob_pred)))
    return np.asarray(prob_true), np.asarray(prob_pred), ece


def profit_curve(
    y_true: np.ndarray,
    proba: np.ndarray,
    *,
    retention_cost: float | npt.ArrayLike,
    customer_value: float | npt.ArrayLike,
    success_rate: float,
    thresholds: npt.ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Realised and expected campaign profit of contacting every customer with score >= each threshold.

    See the module docstring for the formulas. `NO_CONTACT` (contact nobody, profit 0) is always
    part of the grid.

    Args:
        y_true: Labels, 0/1.
        proba: Scores in [0, 1].
        retention_cost: Cost of contacting one customer (scalar or per row).
        customer_value: Value saved when a churner is retained (scalar or per row).
        success_rate: Probability that the offer retains a contacted churner.
        thresholds: The grid; None is `DEFAULT_THRESHOLDS`.

    Returns:
        (thresholds ascending, customers contacted, realised profit, expected profit).
    """
    if not 0.0 <= success_rate <= 1.0:
        raise ValueError("success_rate must be in [0, 1]")
    n = y_true.size
    cost = _per_row(retention_cost, n, "retention_cost")
    value = _per_row(customer_value, n, "customer_value")
    grid = DEFAULT_THRESHOLDS if thresholds is None else np.asarray(thresholds, dtype=np.float64).ravel()
    if not np.isfinite(grid).all():
        raise ValueError("thresholds must be finite")
    grid = np.unique(np.append(grid, NO_CONTACT))

    order = np.argsort(-proba, kind="stable")  # contacted customers are a prefix of this order
    saved = success_rate * value[order]
    cum_cost = np.concatenate([[0.0], np.cumsum(cost[order])])
    cum_real = np.concatenate([[0.0], np.cumsum(y_true[order] * saved)]) - cum_cost
    cum_expected = np.concatenate([[0.0], np.cumsum(proba[order] * saved)]) - cum_cost
    contacted = n - np.searchsorted(np.sort(proba), grid, side="left")
    return grid, contacted, cum_real[contacted], cum_expected[contacted]


def _best(profit: np.ndarray) -> int:
    """Index of the highest profit; ties go to the last (highest threshold, fewest contacts)."""
    return int(np.flatnonzero(profit == profit.max())[-1])


def evaluate(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    *,
    retention_cost: float,
    customer_value: float | npt.ArrayLike,
    success_rate: float = 0.25,
    lift_fraction: float = 0.1,
    thresholds: npt.ArrayLike | None = None,
) -> Evaluation:
    """Every metric and curve of churn scores against held-out labels.

    Profit (see the module docstring): contacting each customer with score >= t costs
    `retention_cost`; each contacted churner saves `success_rate * customer_value`:

        profit(t)          = sum_{p_i >= t} (y_i * success_rate * value_i - retention_cost)
        profit_expected(t) = sum_{p_i >= t} (p_i * success_rate * value_i - retention_cost)

    The best threshold maximises the profit over the grid (ties: highest threshold); if every
    campaign loses money it is `NO_CONTACT` (contact nobody) with profit 0.

    Args:
        y_true: Labels, 0/1 or booleans.
        proba: Churn probabilities (or any scores in [0, 1]).
        retention_cost: Cost of contacting one customer.
        customer_value: Value of a retained churner, a scalar or one value per row.
        success_rate: Share of contacted churners the offer retains (0.25 unless you know better).
        lift_fraction: The top share of lift and capture (0.1: the top decile).
        thresholds: The profit grid; None is 0.00..1.00 by 0.01.

    Returns:
        The evaluation; `.metrics()` flattens it for MLflow.
    """
    y = as_labels(y_true)
    p = as_probabilities(proba, y.size)
    if retention_cost < 0:
        raise ValueError("retention_cost must be non-negative")
    value = _per_row(customer_value, y.size, "customer_value")
    both_classes = 0 < y.sum() < y.size
    lift, capture = top_fraction(y, p, lift_fraction)
    cal_true, cal_pred, ece = calibration_bins(y, p)
    grid, contacted, profit, expected = profit_curve(
        y, p, retention_cost=retention_cost, customer_value=value, success_rate=success_rate, thresholds=thresholds
    )
    best, best_expected = _best(profit), _best(expected)
    return Evaluation(
        y_true=y,
        proba=p,
        base_rate=float(y.mean()),
        roc_auc=float(roc_auc_score(y, p)) if both_classes else math.nan,
        pr_auc=float(average_precision_score(y, p)) if both_classes else math.nan,
        log_loss=float(log_loss(y, np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS), labels=[0, 1])),
        brier=float(brier_score_loss(y, p, pos_label=1)),
        lift_fraction=lift_fraction,
        lift=lift,
        capture=capture,
        calibration_true=cal_true,
        calibration_pred=cal_pred,
        ece=ece,
        retention_cost=float(retention_cost),
        success_rate=float(success_rate),
        mean_customer_value=float(value.mean()),
        thresholds=grid,
        contacted=contacted,
        profit=profit,
        profit_expected=expected,
        best_threshold=float(grid[best]),
        best_profit=float(profit[best]),
        best_contacted=int(contacted[best]),
        expected_best_threshold=float(grid[best_expected]),
        expected_best_profit=float(expected[best_expected]),
        profit_at_expected_threshold=float(profit[best_expected]),
    )
