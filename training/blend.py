"""Blending the trees with the logistic regression: the linear part's terms and the weight of each.

Where the data's signal is close to linear in the features (a proportional-hazards churn process,
a telecom table whose contract and tenure act almost additively), a logistic regression fitted on
the same rows is hard to beat with trees alone on a few thousand rows. Their margins combine:
`w * trees + (1 - w) * linear`. `choose_tree_weight` picks `w` on held-out rows (validation, or the
out-of-fold rows of cross-validation) from `training.blend.tree_weights`: an even blend unless the
held-out rows show, beyond their noise, that another weight (the trees alone included) does
better. `linear_part` turns the fitted regression into the plain numbers the model bundle keeps
(`model.linear`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from model.linear import LinearPart, NumericTerm, blend_margin, sigmoid
from training.baselines import baseline_input, model_columns


def linear_part(model: Pipeline, train_frame: pd.DataFrame, tree_weight: float) -> LinearPart:
    """The terms of a fitted `training.baselines.logistic_baseline` as a `LinearPart`.

    Args:
        model: The fitted pipeline (median imputation and scaling of numbers, one-hot categories).
        train_frame: The feature rows it was fitted on (for the categories' shares).
        tree_weight: The trees' share of the blended margin.
    """
    encode, classify = model.named_steps["encode"], model.named_steps["classify"]
    numeric, categorical = model_columns(train_frame)
    coefs = np.asarray(classify.coef_[0], dtype=np.float64)
    impute = encode.named_transformers_["numeric"].named_steps["impute"]
    scale = encode.named_transformers_["numeric"].named_steps["scale"]
    terms = {
        name: NumericTerm(float(impute.statistics_[i]), float(scale.mean_[i]), float(scale.scale_[i]), float(coefs[i]))
        for i, name in enumerate(numeric)
    }
    rows = baseline_input(train_frame, [], categorical)  # the categories' shares: no numeric column needed
    onehot = encode.named_transformers_["categorical"] if categorical else None
    at = len(numeric)
    by_value: dict[str, dict[str, float]] = {}
    shares: dict[str, dict[str, float]] = {}
    for name, values in zip(categorical, onehot.categories_ if onehot is not None else [], strict=True):
        by_value[name] = {str(v): float(c) for v, c in zip(values, coefs[at : at + len(values)], strict=True)}
        at += len(values)
        shares[name] = {str(k): float(v) for k, v in rows[name].value_counts(normalize=True).items()}
    return LinearPart(
        tree_weight=float(tree_weight),
        intercept=float(classify.intercept_[0]),
        numeric=terms,
        categorical=by_value,
        shares=shares,
    )


def choose_tree_weight(
    y: npt.ArrayLike,
    tree_margin: npt.ArrayLike,
    linear_margin: npt.ArrayLike,
    weights: Sequence[float],
    score: Callable[[np.ndarray, np.ndarray], float],
    *,
    resamples: int = 200,
    seed: int = 0,
    counted: Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], float]] | None = None,
) -> tuple[float, dict[float, float]]:
    """The trees' weight for the blend, chosen on held-out rows, and every candidate's score there.

    The default is an even blend (the candidate nearest 0.5): averaging two models whose errors
    differ is the robust choice when the held-out rows cannot tell them apart. Another candidate
    replaces it only when it scores higher on the held-out rows and its lead survives resampling
    them: in `resamples` paired bootstrap draws of the rows, the mean lead minus two standard
    deviations stays above zero. On a few hundred churners a lead of a hundredth of AUC is noise;
    on tens of thousands it is not.

    Args:
        y: Labels of the held-out rows.
        tree_margin: The trees' margins of those rows.
        linear_margin: The regression's margins of those rows.
        weights: Candidate weights of the trees; 1.0 (the trees alone) is always a candidate. Empty:
            the trees alone, no blend.
        score: `(y, probabilities) -> float`, higher is better.
        resamples: Bootstrap draws that test a lead.
        seed: Seed of the draws.
        counted: `(y, probabilities) -> (counts -> float)`: the same number as `score` of a resample's
            rows, from how many times each row was drawn (`roc_auc_of_counts` for ROC AUC), so a draw
            costs no sort of the rows; None: `score` of each resample's rows.

    Returns:
        The chosen weight and the score of each candidate on all the held-out rows.
    """
    labels = np.asarray(y)
    trees, linear = np.asarray(tree_margin, dtype=np.float64), np.asarray(linear_margin, dtype=np.float64)
    candidates = sorted({1.0, *map(float, weights)}, reverse=True)
    proba = {w: sigmoid(blend_margin(trees, linear, w)) for w in candidates}
    scored = {w: float(score(labels, p)) for w, p in proba.items()}
    if not weights:
        return 1.0, scored
    default = min(candidates, key=lambda w: (abs(w - 0.5), -w))
    best = max(scored, key=lambda w: (scored[w], w))
    if best == default:
        return default, scored
    rng = np.random.default_rng(seed)
    leads = []
    of_best = counted(labels, proba[best]) if counted else None
    of_default = counted(labels, proba[default]) if counted else None
    # One BLAS thread: each draw's dot products are small, and splitting them over threads costs more
    # than it saves (far more when a thread has to wait for a busy core).
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(resamples):
            rows = rng.integers(0, len(labels), len(labels))
            if labels[rows].min() == labels[rows].max():
                continue
            if of_best is not None and of_default is not None:
                counts = np.bincount(rows, minlength=len(labels)).astype(np.float64)
                leads.append(of_best(counts) - of_default(counts))
            else:
                leads.append(score(labels[rows], proba[best][rows]) - score(labels[rows], proba[default][rows]))
    lead = np.asarray(leads)
    return (best if len(lead) and lead.mean() - 2 * lead.std() > 0 else default), scored


def roc_auc_of_counts(y: npt.ArrayLike, proba: npt.ArrayLike) -> Callable[[np.ndarray], float]:
    """ROC AUC of bootstrap resamples of (`y`, `proba`), each given as how often every row was drawn.

    The rows are sorted by score once; a resample's AUC is then the Mann-Whitney statistic with
    the counts as weights (a churner and a stayer with equal scores count a half), the number
    `sklearn.metrics.roc_auc_score` gives for the drawn rows themselves. The returned function
    needs counts with churners and stayers among the drawn rows.
    """
    labels = np.asarray(y, dtype=np.float64)
    scores = np.asarray(proba, dtype=np.float64)
    order = np.argsort(scores, kind="stable")
    ordered, positive = scores[order], labels[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # the groups of equal scores

    def auc(counts: np.ndarray) -> float:
        weights = np.asarray(counts, dtype=np.float64)[order]
        churners = weights * positive
        per_group_churners = np.add.reduceat(churners, starts)
        per_group_stayers = np.add.reduceat(weights - churners, starts)
        stayers_below = np.cumsum(per_group_stayers) - per_group_stayers
        total_churners, total_stayers = per_group_churners.sum(), per_group_stayers.sum()
        wins = per_group_churners @ (stayers_below + 0.5 * per_group_stayers)
        return float(wins / (total_churners * total_stayers))

    return auc
