"""Evaluation of a churn model on held-out data: ranking, calibration, lift, money and explanations.

Everything here is pure: labels and scores in, numbers, figures and a report out. Nothing is
logged; the training pipeline logs `Evaluation.metrics()` and the folder that `write_artifacts`
fills (`mlflow.log_artifacts(out_dir)`).

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

Plots import matplotlib lazily (`matplotlib.figure.Figure`, no pyplot, no backend switch), so
importing this module does not need it.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd
import xgboost as xgb
from sklearn.calibration import calibration_curve
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from model.calibration import (
    LOG_LOSS_EPS,
    as_labels,
    as_probabilities,
)
from model.matrix import booster_input, dmatrix, is_categorical

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

NO_CONTACT = 1.01
"""The profit grid's last threshold: above every probability, so nobody is contacted (profit 0)."""

DEFAULT_THRESHOLDS = np.round(np.linspace(0.0, 1.0, 101), 2)
"""The default profit grid, 0.00 to 1.00 by 0.01 (`NO_CONTACT` is always added)."""

CALIBRATION_BINS = 10
"""Quantile bins of the calibration curve and of the expected calibration error."""

RECENCY_FALLBACK = "engagement_days_since_last_activity"
"""The recency rule's feature when the requested one is absent."""

TOP_FEATURES = 20
"""Features shown in the importance chart and in the report."""


# --------------------------------------------------------------------------------------------
# Metrics


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Metrics and curves of one set of scores against held-out labels (see `evaluate`).

    The arrays keep the inputs (`y_true`, `proba`) so the plots can draw ROC, precision-recall
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


# --------------------------------------------------------------------------------------------
# Baselines


def _model_columns(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(numeric, categorical) columns; others (dates, ...) are not baseline inputs."""
    numeric, categorical = [], []
    for name in frame.columns:
        column = frame[name]
        if is_categorical(column):
            categorical.append(str(name))
        elif pd.api.types.is_numeric_dtype(column.dtype):
            numeric.append(str(name))
    return numeric, categorical


def _baseline_input(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    out = {name: pd.to_numeric(frame[name], errors="coerce").astype("float64") for name in numeric}
    for name in categorical:
        column = frame[name].astype("object")
        out[name] = column.where(column.notna(), "__missing__").astype(str)
    return pd.DataFrame(out, index=frame.index)


def logistic_baseline(train_frame: pd.DataFrame, y_train: npt.ArrayLike) -> Pipeline:
    """A fitted logistic regression on every numeric and string/category column of `train_frame`.

    Numeric columns: median imputation, standard scaling. String/category columns (missing as
    its own value): one-hot, unknown values ignored. Other columns (dates, ...) are dropped.
    """
    numeric, categorical = _model_columns(train_frame)
    if not numeric and not categorical:
        raise ValueError("the training frame has no numeric or categorical columns")
    encode = ColumnTransformer(
        [
            ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    model = Pipeline([("encode", encode), ("classify", LogisticRegression(max_iter=1000))])
    return model.fit(_baseline_input(train_frame, numeric, categorical), as_labels(y_train))


def recency_rule(days_since: pd.Series | npt.ArrayLike) -> np.ndarray:
    """Risk scores of the recency rule: the percentile rank of days since last purchase/activity.

    More days is more risk; a missing value (never purchased) is the highest risk. Ties share
    their average rank, so scores lie in (0, 1].
    """
    days = pd.to_numeric(pd.Series(np.asarray(days_since).ravel()), errors="coerce").astype("float64")
    return np.asarray(days.fillna(np.inf).rank(method="average", pct=True), dtype=np.float64)


def baseline_scores(
    train_frame: pd.DataFrame,
    y_train: npt.ArrayLike,
    test_frame: pd.DataFrame,
    *,
    recency_feature: str = "purchases_days_since_last",
) -> dict[str, np.ndarray]:
    """Scores of simple baselines for the test rows, to evaluate on the same data as the model.

    - "logistic_regression": `logistic_baseline` fitted on the train rows (pass feature columns
      only: ids and labels would leak), its probabilities of the test rows.
    - "recency_rule": `recency_rule` of the test rows' `recency_feature`, or of
      `engagement_days_since_last_activity` when that is absent; skipped (no key) when the test
      frame has neither column. Rank-scaled, so it is a ranking, not a calibrated probability.

    Args:
        train_frame: Feature rows to fit the logistic regression on.
        y_train: Their labels.
        test_frame: Feature rows to score (the model's test rows).
        recency_feature: Days since the last purchase.

    Returns:
        Baseline name -> one score in [0, 1] per test row.
    """
    model = logistic_baseline(train_frame, y_train)
    numeric, categorical = _model_columns(train_frame)
    scores = {
        "logistic_regression": np.asarray(
            model.predict_proba(_baseline_input(test_frame, numeric, categorical))[:, 1], dtype=np.float64
        )
    }
    for name in (recency_feature, RECENCY_FALLBACK):
        if name in test_frame.columns:
            scores["recency_rule"] = recency_rule(test_frame[name])
            break
    return scores


# --------------------------------------------------------------------------------------------
# Explanations


def shap_importance(booster: xgb.Booster, data: xgb.DMatrix | pd.DataFrame) -> pd.Series:
    """Global SHAP importance: each feature's mean |contribution| to the margin (XGBoost `pred_contribs`).

    Args:
        booster: A trained binary booster (categorical features are fine).
        data: Rows to explain: a DMatrix, or a frame that is typed as the booster was trained
            (`model.matrix.booster_input`, extra columns ignored).

    Returns:
        Feature -> mean |SHAP value| in log-odds, the bias excluded, sorted descending.
    """
    matrix = data if isinstance(data, xgb.DMatrix) else dmatrix(booster_input(booster, data))
    if matrix.num_row() == 0:
        raise ValueError("no rows to explain")
    contributions = np.asarray(booster.predict(matrix, pred_contribs=True))
    if contributions.ndim != 2:
        raise ValueError("SHAP importance supports single-output (binary) boosters only")
    names = matrix.feature_names or booster.feature_names or [f"f{i}" for i in range(contributions.shape[1] - 1)]
    importance = pd.Series(np.abs(contributions[:, :-1]).mean(axis=0), index=list(names), name="mean_abs_shap")
    return importance.sort_values(ascending=False, kind="stable")


# --------------------------------------------------------------------------------------------
# Plots


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _curves(evaluation: Evaluation, baselines: Mapping[str, Evaluation] | None, label: str) -> dict[str, Evaluation]:
    return {label: evaluation, **(baselines or {})}


def plot_roc(
    evaluation: Evaluation, baselines: Mapping[str, Evaluation] | None = None, *, label: str = "model"
) -> Figure:
    """ROC curve of the model, with the baselines' overlaid and the chance diagonal."""
    fig, ax = _figure("ROC curve", "False positive rate", "True positive rate")
    for name, ev in _curves(evaluation, baselines, label).items():
        if 0 < ev.y_true.sum() < ev.n:
            fpr, tpr, _ = roc_curve(ev.y_true, ev.proba)
            ax.plot(fpr, tpr, label=f"{name} (AUC {ev.roc_auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.legend(loc="lower right")
    return fig


def plot_precision_recall(
    evaluation: Evaluation, baselines: Mapping[str, Evaluation] | None = None, *, label: str = "model"
) -> Figure:
    """Precision-recall curve of the model and the baselines, with the churn rate as the chance level."""
    fig, ax = _figure("Precision-recall curve", "Recall", "Precision")
    for name, ev in _curves(evaluation, baselines, label).items():
        if 0 < ev.y_true.sum() < ev.n:
            precision, recall, _ = precision_recall_curve(ev.y_true, ev.proba)
            ax.step(recall, precision, where="post", label=f"{name} (AP {ev.pr_auc:.3f})")
    ax.axhline(evaluation.base_rate, linestyle="--", color="grey", label=f"chance ({evaluation.base_rate:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper right")
    return fig


def plot_calibration(evaluation: Evaluation, *, label: str = "model") -> Figure:
    """Reliability diagram: churn rate against mean score per quantile bin, with the diagonal."""
    fig, ax = _figure(
        f"Calibration (reliability diagram, ECE {evaluation.ece:.3f})",
        "Mean predicted probability",
        "Observed churn rate",
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    ax.plot(evaluation.calibration_pred, evaluation.calibration_true, marker="o", label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    return fig


def gains(evaluation: Evaluation) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative gains: (share of customers contacted by descending score, share of churners caught)."""
    order = np.argsort(-evaluation.proba, kind="stable")
    caught = np.concatenate([[0.0], np.cumsum(evaluation.y_true[order])])
    total = caught[-1] if caught[-1] > 0 else 1.0
    return np.arange(evaluation.n + 1) / evaluation.n, caught / total


def plot_gains(
    evaluation: Evaluation, baselines: Mapping[str, Evaluation] | None = None, *, label: str = "model"
) -> Figure:
    """Cumulative gains chart (the lift chart's integral), the top fraction of the lift marked."""
    top = evaluation.lift_fraction
    fig, ax = _figure(
        f"Cumulative gains (lift {evaluation.lift:.2f}x in the top {top * 100:g}%)",
        "Share of customers contacted (by descending score)",
        "Share of churners caught",
    )
    for name, ev in _curves(evaluation, baselines, label).items():
        x, y = gains(ev)
        ax.plot(x, y, label=f"{name} (capture {ev.capture:.2f} at {top * 100:g}%)")
    if evaluation.base_rate > 0:
        ax.plot([0, evaluation.base_rate, 1], [0, 1, 1], linestyle=":", color="black", label="perfect")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    ax.axvline(top, color="grey", alpha=0.5)
    ax.legend(loc="lower right")
    return fig


def plot_profit(evaluation: Evaluation) -> Figure:
    """Realised and expected campaign profit against the threshold, the best thresholds marked."""
    fig, ax = _figure("Retention campaign profit by threshold", "Contact if churn probability >= threshold", "Profit")
    ax.plot(evaluation.thresholds, evaluation.profit, label="realised profit (labels)")
    ax.plot(evaluation.thresholds, evaluation.profit_expected, linestyle="--", label="expected profit (probabilities)")
    ax.axvline(
        evaluation.best_threshold,
        color="tab:red",
        label=f"best threshold {evaluation.best_threshold:.2f} (profit {evaluation.best_profit:,.0f})",
    )
    ax.axvline(
        evaluation.expected_best_threshold,
        color="tab:green",
        linestyle=":",
        label=f"expected-best threshold {evaluation.expected_best_threshold:.2f}",
    )
    ax.axhline(0, color="black", linewidth=0.8)
    ax.legend(loc="best")
    return fig


def plot_importance(importance: pd.Series, *, top: int = TOP_FEATURES) -> Figure:
    """Horizontal bars of the `top` features by mean |SHAP value|, the most important on top."""
    fig, ax = _figure(f"SHAP feature importance (top {min(top, importance.size)})", "Mean |SHAP value| (log-odds)", "")
    shown = importance.sort_values(ascending=False, kind="stable").head(top)[::-1]
    ax.barh([str(name) for name in shown.index], shown.to_numpy(dtype=float))
    ax.set_ylabel("Feature")
    fig.set_figheight(max(3.0, 0.3 * shown.size + 1.5))
    return fig


def make_figures(
    evaluation: Evaluation, baselines: Mapping[str, Evaluation] | None = None, importance: pd.Series | None = None
) -> dict[str, Figure]:
    """Every evaluation figure by file stem (importance only when given and non-empty)."""
    out = {
        "roc": plot_roc(evaluation, baselines),
        "precision_recall": plot_precision_recall(evaluation, baselines),
        "calibration": plot_calibration(evaluation),
        "gains": plot_gains(evaluation, baselines),
        "profit": plot_profit(evaluation),
    }
    if importance is not None and not importance.empty:
        out["importance"] = plot_importance(importance)
    return out


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    """A PNG as a `data:` URI, to embed in HTML."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# --------------------------------------------------------------------------------------------
# Report


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { display: inline-block; margin: 0.5em; }
img { max-width: 32em; }
"""


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4f}"


def render_report(
    evaluation: Evaluation,
    *,
    baselines: Mapping[str, Evaluation],
    importance: pd.Series | None,
    figures: Mapping[str, str],
    title: str,
) -> str:
    """A self-contained HTML evaluation report.

    Args:
        evaluation: The model's evaluation.
        baselines: Baseline name -> its evaluation on the same rows (a column each in the metrics table).
        importance: SHAP importance (`shap_importance`); the top features are listed. None or empty: omitted.
        figures: Caption -> image source, used verbatim as `<img src>`. `write_artifacts` passes
            base64 `data:` URIs (`data_uri`) so the report has no external files and renders in
            the MLflow artifact viewer; relative file names work too if the files travel with it.
        title: The page title.

    Returns:
        The HTML document.
    """
    esc = html.escape
    columns = {"model": evaluation, **baselines}
    metrics = {name: ev.metrics() for name, ev in columns.items()}
    header = "".join(f"<th>{esc(name)}</th>" for name in columns)
    rows = "".join(
        f"<tr><td>{esc(key)}</td>"
        + "".join(f"<td>{_fmt(metrics[name].get(key, math.nan))}</td>" for name in columns)
        + "</tr>"
        for key in metrics["model"]
    )
    ev = evaluation
    decision = (
        f"<p>Contacting every customer with churn probability &ge; <b>{ev.best_threshold:.2f}</b> "
        f"({ev.best_contacted} of {ev.n}) would have earned <b>{_fmt(ev.best_profit)}</b> on these rows "
        f"(best threshold chosen on the same rows, so optimistic).</p>"
        f"<p>Without labels, the model's expected profit peaks at <b>{ev.expected_best_threshold:.2f}</b> "
        f"(expected {_fmt(ev.expected_best_profit)}, realised {_fmt(ev.profit_at_expected_threshold)}).</p>"
        f"<p>Assumptions: contact cost {_fmt(ev.retention_cost)}, offer success rate {ev.success_rate:.2f}, "
        f"mean customer value {_fmt(ev.mean_customer_value)}. A threshold of {NO_CONTACT} means contact nobody.</p>"
    )
    if importance is not None and not importance.empty:
        top = importance.sort_values(ascending=False, kind="stable").head(TOP_FEATURES)
        feature_rows = "".join(
            f"<tr><td>{rank}</td><td>{esc(str(name))}</td><td>{value:.4f}</td></tr>"
            for rank, (name, value) in enumerate(top.items(), start=1)
        )
        features_html = (
            "<table><tr><th>#</th><th>feature</th><th>mean |SHAP| (log-odds)</th></tr>" + feature_rows + "</table>"
        )
    else:
        features_html = "<p>Not computed.</p>"
    images = "".join(
        f'<figure><img src="{esc(src, quote=True)}" alt="{esc(caption)}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
        for caption, src in figures.items()
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{_STYLE}</style></head><body>\n"
        f"<h1>{esc(title)}</h1>\n"
        f"<p>{ev.n} customers, churn rate {ev.base_rate:.4f}.</p>\n"
        f"<h2>Metrics</h2>\n<table><tr><th>metric</th>{header}</tr>{rows}</table>\n"
        "<p>Log loss, Brier, ECE and the expected-profit rows assume the scores are probabilities; "
        "for a rank-based baseline (the recency rule) only the ranking rows (AUCs, lift, capture, "
        "best threshold and profit) are meaningful.</p>\n"
        f"<h2>Retention campaign</h2>\n{decision}\n"
        f"<h2>Top features</h2>\n{features_html}\n"
        f"<h2>Figures</h2>\n{images}\n"
        "</body></html>\n"
    )


def write_artifacts(
    out_dir: str | Path,
    evaluation: Evaluation,
    baselines: Mapping[str, Evaluation],
    importance: pd.Series | None,
    *,
    title: str = "Churn model evaluation",
) -> list[Path]:
    """Save the figures as PNGs and the report as `report.html` (figures embedded) into `out_dir`.

    Meant for a temporary folder the pipeline then logs with `mlflow.log_artifacts(out_dir)`;
    existing files of the same names are overwritten.

    Returns:
        The written files: one `<name>.png` per figure (roc, precision_recall, calibration, gains,
        profit, importance when given), then `report.html`.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    embedded: dict[str, str] = {}
    for name, fig in make_figures(evaluation, baselines, importance).items():
        png = png_bytes(fig)
        path = folder / f"{name}.png"
        path.write_bytes(png)
        written.append(path)
        embedded[name.replace("_", " ")] = data_uri(png)
    report = folder / "report.html"
    report.write_text(
        render_report(evaluation, baselines=baselines, importance=importance, figures=embedded, title=title),
        encoding="utf-8",
    )
    written.append(report)
    return written
