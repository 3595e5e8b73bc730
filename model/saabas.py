"""XGBoost's approximate contributions (`pred_contribs` with `approx_contribs`), computed faster.

The approximation (Saabas) walks each tree from its root to the row's leaf and gives every split's
feature the change in the node's expected value: mean(child) - mean(node), where a node's mean is
its leaves' values weighted by training cover (hessian). The root means and the base score make the
bias term. XGBoost does the same walk, but per call it builds a DMatrix and recomputes every
node's mean; here the trees are laid out once, when the model loads, as flat node arrays, and one
compiled loop (numba) walks them. The numbers are XGBoost's up to float rounding
(tests/unit/model/test_saabas.py compares them); bench/serving.py times both.

`build` returns None for a model the layout does not cover (anything but a single-output gbtree);
the caller then uses XGBoost.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import xgboost as xgb

from model import treeshap


@dataclass(frozen=True)
class SaabasTrees:
    """Every node of every tree, numbered across trees: what `contributions` walks."""

    roots: np.ndarray
    """Per tree, its root node."""
    left: np.ndarray
    """Per node, its left child; -1 for a leaf."""
    right: np.ndarray
    """Per node, its right child; -1 for a leaf."""
    feature: np.ndarray
    """Per node, the feature its split tests (the column of the model's input)."""
    threshold: np.ndarray
    """float32 per node: a number below it goes left (XGBoost's `<` on float32)."""
    default_left: np.ndarray
    """Per node, whether a missing value goes left."""
    category_at: np.ndarray
    """Per node, where its category set starts in `category_in`; -1 for a numeric split."""
    category_size: np.ndarray
    """Per node, the codes its set covers (a code at or past it is in no set)."""
    category_in: np.ndarray
    """bool: per categorical split, whether each code below its size is in its set (in: right)."""
    mean: np.ndarray
    """float64 per node: its leaves' values weighted by training cover (a leaf's: its value)."""
    bias: float
    """The bias term: the base score's margin plus every root's mean."""
    features: int


def build(booster: xgb.Booster, single: treeshap.SingleOutput | None = None) -> SaabasTrees | None:
    """The flat trees of a booster, or None for a model they do not cover (dart, linear, several outputs).

    Args:
        booster: A trained booster.
        single: The booster's `treeshap.single_output_trees`, when the caller has them already.
    """
    single = single or treeshap.single_output_trees(booster)
    if single is None:
        return None
    params, trees = single
    roots: list[int] = []
    left: list[int] = []
    right: list[int] = []
    feature: list[int] = []
    threshold: list[float] = []
    default_left: list[bool] = []
    category_at: list[int] = []
    category_size: list[int] = []
    category_in: list[bool] = []
    mean: list[float] = []
    for tree in trees:
        offset = len(left)
        roots.append(offset)
        lefts, rights, condition = tree["left_children"], tree["right_children"], tree["split_conditions"]
        sets = zip(tree["categories_segments"], tree["categories_sizes"], strict=True)
        categories = dict(zip(tree["categories_nodes"], sets, strict=True))
        for node, (lo, hi) in enumerate(zip(lefts, rights, strict=True)):
            left.append(lo + offset if lo != -1 else -1)
            right.append(hi + offset if hi != -1 else -1)
            feature.append(int(tree["split_indices"][node]))
            threshold.append(condition[node])
            default_left.append(bool(tree["default_left"][node]))
            if node in categories:
                start, size = categories[node]
                codes = tree["categories"][start : start + size]
                span = max(codes, default=-1) + 1
                category_at.append(len(category_in))
                category_size.append(span)
                in_set = [False] * span
                for code in codes:
                    in_set[code] = True
                category_in.extend(in_set)
            else:
                category_at.append(-1)
                category_size.append(0)
        mean.extend(_node_means(lefts, rights, condition, tree["sum_hessian"]))
    rows = np.full((1, int(params["num_feature"])), np.nan, dtype=np.float32)
    bias = booster.predict(xgb.DMatrix(rows), pred_contribs=True, approx_contribs=True, validate_features=False)
    return SaabasTrees(
        roots=np.array(roots, dtype=np.intp),
        left=np.array(left, dtype=np.intp),
        right=np.array(right, dtype=np.intp),
        feature=np.array(feature, dtype=np.intp),
        threshold=np.array(threshold, dtype=np.float32),
        default_left=np.array(default_left, dtype=np.bool_),
        category_at=np.array(category_at, dtype=np.intp),
        category_size=np.array(category_size, dtype=np.intp),
        category_in=np.array(category_in or [False], dtype=np.bool_),
        mean=np.array(mean, dtype=np.float64),
        bias=float(bias[0, -1]),
        features=int(params["num_feature"]),
    )


def _node_means(left: list[int], right: list[int], value: list[float], cover: list[float]) -> list[float]:
    """Per node of one tree, its cover-weighted mean leaf value (XGBoost's node mean values)."""
    order: list[int] = []
    stack = [0]
    while stack:  # parents before children
        node = stack.pop()
        order.append(node)
        if left[node] != -1:
            stack += [left[node], right[node]]
    mean = [0.0] * len(left)
    for node in reversed(order):  # children before parents
        lo, hi = left[node], right[node]
        if lo == -1:
            mean[node] = value[node]
        else:
            mean[node] = (mean[lo] * cover[lo] + mean[hi] * cover[hi]) / cover[node]
    return mean


def contributions(trees: SaabasTrees, rows: np.ndarray) -> np.ndarray:
    """Approximate contributions of rows, as XGBoost's `pred_contribs` with `approx_contribs` gives them.

    Args:
        trees: The model's `build`.
        rows: float32 (rows, features), the model's input (NaN missing; categories as codes).

    Returns:
        float64 (rows, features + 1): one contribution per feature, then the bias term.
    """
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    out = np.zeros((len(rows), trees.features + 1))
    t = trees
    _kernel()(
        rows,
        t.roots,
        t.left,
        t.right,
        t.feature,
        t.threshold,
        t.default_left,
        t.category_at,
        t.category_size,
        t.category_in,
        t.mean,
        out,
    )
    out[:, -1] = t.bias
    return out


def _walk(
    rows: np.ndarray,
    roots: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    default_left: np.ndarray,
    category_at: np.ndarray,
    category_size: np.ndarray,
    category_in: np.ndarray,
    mean: np.ndarray,
    out: np.ndarray,
) -> None:
    """Add every split's change in mean to its feature, down each row's path through each tree.

    XGBoost's decisions: a missing value by the default; a category code goes right when in the
    split's set, left when not (negative, past the set, or not in it; a fraction counts as its
    integer part); a number goes left when below the threshold. Trees outside, rows inside: one
    tree's nodes stay in cache while every row walks it.
    """
    for tree in range(roots.shape[0]):
        for r in range(rows.shape[0]):
            node = roots[tree]
            while left[node] != -1:
                j = feature[node]
                x = rows[r, j]
                if np.isnan(x):
                    goes_left = default_left[node]
                elif category_at[node] >= 0:
                    in_set = False
                    if x >= 0 and int(x) < category_size[node]:
                        in_set = category_in[category_at[node] + int(x)]
                    goes_left = not in_set
                else:
                    goes_left = x < threshold[node]
                child = left[node] if goes_left else right[node]
                out[r, j] += mean[child] - mean[node]
                node = child


@functools.cache
def _kernel() -> Callable[..., Any]:
    """`_walk` compiled (numba), on first use: importing this module compiles nothing.

    Compiled code is cached on disk (beside this module, or in the user's cache folder); where
    neither can be written, numba refuses to cache and the loop is compiled in each process.
    """
    import numba

    try:
        return numba.njit(cache=True, nogil=True)(_walk)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(nogil=True)(_walk)
