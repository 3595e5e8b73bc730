"""The evaluation figures: ROC, precision-recall, calibration, cumulative gains, profit, importance.

Each `plot_*` draws what an `Evaluation` (`training.metrics`) holds, the baselines' curves
overlaid where they compare; `make_figures` draws them all and `png_bytes` saves one.

Matplotlib is imported lazily (`matplotlib.figure.Figure`, no pyplot, no backend switch), so
importing this module does not need it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve

from training.importance import TOP_FEATURES, top_features
from training.metrics import Evaluation

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


CURVE_CELLS = 1000
"""Curves of the unit square are drawn at this resolution per axis (`thinned`), finer than a figure's pixels."""


def thinned(x: np.ndarray, y: np.ndarray, cells: int = CURVE_CELLS) -> tuple[np.ndarray, np.ndarray]:
    """The points of a curve in the unit square that draw it at `cells` x `cells` resolution.

    A test set's ROC, precision-recall and gains curves have a point per distinct score, up to one
    per row; drawing them all costs the figure its time and changes no pixel. Kept: both ends, and
    the last point in a cell of the grid and the first in the next, so each step and turn stays
    where it was to a cell's width.
    """
    x, y = np.asarray(x), np.asarray(y)
    if len(x) <= 4 * cells:
        return x, y
    column, row = np.floor(x * cells), np.floor(y * cells)
    moves = (column[1:] != column[:-1]) | (row[1:] != row[:-1])
    keep = np.zeros(len(x), dtype=bool)
    keep[[0, -1]] = True
    keep[1:] |= moves
    keep[:-1] |= moves
    return x[keep], y[keep]


def _curves(evaluation: Evaluation, baselines: Mapping[str, Evaluation] | None, label: str) -> dict[str, Evaluation]:
    return {label: evaluation, **(baselines or {})}


def _ranking_figure(
    kind: Literal["roc", "precision_recall"],
    evaluation: Evaluation,
    baselines: Mapping[str, Evaluation] | None,
    label: str,
) -> tuple[Figure, Axes]:
    """The ROC or the precision-recall curves of the model and the baselines (those with both classes)."""
    if kind == "roc":
        fig, ax = _figure("ROC curve", "False positive rate", "True positive rate")
    else:
        fig, ax = _figure("Precision-recall curve", "Recall", "Precision")
    for name, ev in _curves(evaluation, baselines, label).items():
        if not 0 < ev.y_true.sum() < ev.n:
            continue
        if kind == "roc":
            fpr, tpr, _ = roc_curve(ev.y_true, ev.proba)
            ax.plot(*thinned(fpr, tpr), label=f"{name} (AUC {ev.roc_auc:.3f})")
        else:
            precision, recall, _ = precision_recall_curve(ev.y_true, ev.proba)
            ax.step(*thinned(recall, precision), where="post", label=f"{name} (AP {ev.pr_auc:.3f})")
    return fig, ax


def plot_roc(
    evaluation: Evaluation, baselines: Mapping[str, Evaluation] | None = None, *, label: str = "model"
) -> Figure:
    """ROC curve of the model, with the baselines' overlaid and the chance diagonal."""
    fig, ax = _ranking_figure("roc", evaluation, baselines, label)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.legend(loc="lower right")
    return fig


def plot_precision_recall(
    evaluation: Evaluation, baselines: Mapping[str, Evaluation] | None = None, *, label: str = "model"
) -> Figure:
    """Precision-recall curve of the model and the baselines, with the churn rate as the chance level."""
    fig, ax = _ranking_figure("precision_recall", evaluation, baselines, label)
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
        ax.plot(*thinned(*gains(ev)), label=f"{name} (capture {ev.capture:.2f} at {top * 100:g}%)")
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
    shown = top_features(importance, top)[::-1]
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


def warm_up() -> None:
    """Import the plotting library now, so the first figure does not wait for it (training imports it
    on a spare thread while the trees train)."""
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
