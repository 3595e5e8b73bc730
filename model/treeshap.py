"""Exact TreeSHAP of an XGBoost tree ensemble by table lookup: XGBoost's `pred_contribs`, faster for a request's rows.

Path-dependent TreeSHAP (Lundberg et al., 2020) shares each leaf's value among the features on the
leaf's path. Say the path tests features U (a feature tested twice counts once). Feature j has a
cover fraction z_j, the share of the training cover that follows the path at j's tests, and o_j,
1 when the row follows the path at all of j's tests. The leaf, of value v, adds to feature i in U

    v * (o_i - z_i) * sum over S in {j in U, j != i, o_j = 1} of
        |S|! (|U| - |S| - 1)! / |U|! * product of z_j over j in U, j not in S, j != i.

Only the o's depend on the row. So when the model loads, the contributions of every leaf for
every pattern of its path's decisions are computed once (as in Fast TreeSHAP v2, Yang 2021), and
a row costs one comparison per split, one pattern per leaf and a table row per leaf: about a
fifth of XGBoost's `pred_contribs` for one row of a 300-tree model of depth 6 (bench/serving.py).
The numbers are XGBoost's up to float rounding (tests/unit/model/test_treeshap.py compares them).

A table holds 2^depth rows per leaf, so a deep model's can be too big: `build` then returns None,
and the caller uses XGBoost's `pred_contribs`.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse
import xgboost as xgb

MAX_PATH = 8
"""Longest root-to-leaf path the tables take (a row's decisions on a path fit one 64-bit word)."""
MAX_TABLE_BYTES = 128 * 2**20
"""Largest table `build` makes; a bigger model falls back to XGBoost's `pred_contribs`."""
BLOCK_ROWS = 8
"""Rows `contributions` handles at once (its working arrays grow with rows × leaves × path)."""
SingleOutput = tuple[dict[str, Any], list[dict[str, Any]]]
"""A single-output tree booster's model parameters and trees, from its JSON (`single_output_trees`)."""
_PACK = np.uint64(0x0102040810204080)
"""Times 8 little-endian bytes of 0 or 1, its top byte holds them as bits (byte s as bit s)."""
_LEAVES_AT_ONCE = 4_096
"""Leaves whose tables `build` computes together (bounds its working memory)."""


@dataclass(frozen=True)
class ShapTables:
    """What `contributions` needs of one model: its splits, its leaves' paths and their tables.

    Splits are numbered across all trees: the numeric ones, then the categorical ones, then one
    pseudo split that every row "follows", which pads paths shorter than `MAX_PATH`.
    """

    split_feature: np.ndarray
    """Per numeric split, the feature it tests (column of the model's input)."""
    threshold: np.ndarray
    """Per numeric split, float32: a number below it goes left (XGBoost's `<` on float32)."""
    default_left: np.ndarray
    """Per numeric split, whether a missing value goes left."""
    category_feature: np.ndarray
    """Per categorical split, the feature it tests. A category in the split's set goes right, any other left."""
    category_default_left: np.ndarray
    """Per categorical split, whether a missing value goes left."""
    category_in: np.ndarray
    """bool, `category_size` per categorical split: whether each code is in its set (the last: no code is)."""
    category_size: int
    """Codes per categorical split in `category_in`."""
    path_split: np.ndarray
    """(leaves, MAX_PATH): the splits on each leaf's path, padded with the pseudo split."""
    path_left: np.ndarray
    """(leaves, MAX_PATH): whether the path goes left at each of them (True on padding)."""
    pattern_mask: np.ndarray
    """uint64 per leaf: the bits of the path's own splits in a row's decision pattern."""
    table_start: np.ndarray
    """Per leaf, its first row in `table` (a leaf with a path of d splits has 2^d rows)."""
    table: np.ndarray
    """float32 (rows, width): per leaf and decision pattern, the contributions to the path's features."""
    to_features: scipy.sparse.csr_array
    """(features + 1, leaves × width), float64: adds up what a row's table rows give each feature
    (the last line collects padding, which is always 0)."""
    features: int
    """The model's input columns."""
    bias: float
    """The bias term: the base margin plus every tree's cover-weighted mean leaf value."""


def build(
    booster: xgb.Booster, max_bytes: int = MAX_TABLE_BYTES, single: SingleOutput | None = None
) -> ShapTables | None:
    """The tables of a booster, or None for a model they do not cover.

    They cover a single-output tree booster (`gbtree`) whose paths are at most `MAX_PATH` splits
    long and whose table fits in `max_bytes`. Anything else (`dart`, whose trees are weighted;
    linear boosters; several outputs) gets None.

    Args:
        booster: A trained booster.
        max_bytes: The largest table to build.
        single: The booster's `single_output_trees`, when the caller has them already.
    """
    single = single or single_output_trees(booster)
    if single is None:
        return None
    params, trees = single
    splits, leaves = _walk(trees)
    depth = max(len(path) for _, path in leaves)
    width = max(1, max(len({splits.feature[s] for s, _, _ in path}) for _, path in leaves))
    rows = sum(1 << len(path) for _, path in leaves)
    if depth > MAX_PATH or rows * width * 4 > max_bytes:
        return None
    features = int(params["num_feature"])
    empty = xgb.DMatrix(np.full((1, features), np.nan, dtype=np.float32))
    bias = float(booster.predict(empty, pred_contribs=True, validate_features=False)[0, -1])
    return _tables(splits, leaves, depth, width, features, bias)


def single_output_trees(booster: xgb.Booster) -> SingleOutput | None:
    """The learner's model parameters and trees from the booster's JSON, or None for a model that is
    not a single-output tree booster (`dart`, whose trees are weighted; linear; several outputs)."""
    model = json.loads(booster.save_raw("json"))["learner"]
    params = model["learner_model_param"]
    gbm = model["gradient_booster"]
    if gbm.get("name") != "gbtree" or int(params.get("num_class", 0)) > 1 or int(params.get("num_target", 1)) > 1:
        return None
    trees = gbm["model"]["trees"]
    if not trees or any(int(t["tree_param"].get("size_leaf_vector", 1)) > 1 for t in trees):
        return None
    return params, trees


@dataclass
class _Splits:
    """Every split of every tree, in one numbering."""

    feature: list[int]
    threshold: list[float]
    default_left: list[bool]
    categories: dict[int, list[int]]


def _walk(trees: list[dict[str, Any]]) -> tuple[_Splits, list[tuple[float, list[tuple[int, bool, float]]]]]:
    """All splits, and per leaf its value and path: (split, goes left, cover fraction) from the root down."""
    splits = _Splits([], [], [], {})
    leaves: list[tuple[float, list[tuple[int, bool, float]]]] = []
    for tree in trees:
        left, right = tree["left_children"], tree["right_children"]
        cover, condition, feature = tree["sum_hessian"], tree["split_conditions"], tree["split_indices"]
        sets = zip(tree["categories_segments"], tree["categories_sizes"], strict=True)
        categories = dict(zip(tree["categories_nodes"], sets, strict=True))
        stack: list[tuple[int, list[tuple[int, bool, float]]]] = [(0, [])]
        while stack:
            node, path = stack.pop()
            if left[node] == -1:
                leaves.append((condition[node], path))
                continue
            split = len(splits.feature)
            splits.feature.append(feature[node])
            splits.threshold.append(condition[node])
            splits.default_left.append(bool(tree["default_left"][node]))
            if node in categories:
                start, size = categories[node]
                splits.categories[split] = tree["categories"][start : start + size]
            for child, goes_left in ((left[node], True), (right[node], False)):
                fraction = cover[child] / cover[node] if cover[node] > 0 else 0.0
                stack.append((child, [*path, (split, goes_left, fraction)]))
    return splits, leaves


def _tables(
    splits: _Splits,
    leaves: list[tuple[float, list[tuple[int, bool, float]]]],
    depth: int,
    width: int,
    features: int,
    bias: float,
) -> ShapTables:
    """Lay out the paths and compute every leaf's table (see the module docstring).

    `depth` is the longest path's splits, `width` the most features a path tests.
    """
    count = len(leaves)
    pad = len(splits.feature)  # the pseudo split every row follows
    path_split = np.full((count, MAX_PATH), pad, dtype=np.intp)
    path_left = np.ones((count, MAX_PATH), dtype=bool)
    slot = np.full((count, MAX_PATH), -1, dtype=np.intp)  # the path feature each split tests (-1: padding)
    path_feature = np.full((count, width), features, dtype=np.intp)
    zero = np.ones((count, width))  # cover fraction per path feature (1 on padding: a null player)
    value = np.empty(count)
    lengths = np.empty(count, dtype=np.intp)
    for i, (leaf_value, path) in enumerate(leaves):
        value[i], lengths[i] = leaf_value, len(path)
        seen: dict[int, int] = {}
        for s, (split, goes_left, fraction) in enumerate(path):
            k = seen.setdefault(splits.feature[split], len(seen))
            path_split[i, s], path_left[i, s], slot[i, s] = split, goes_left, k
            path_feature[i, k] = splits.feature[split]
            zero[i, k] *= fraction
    table_start = np.zeros(count, dtype=np.intp)
    np.cumsum(1 << lengths[:-1], out=table_start[1:])
    table = np.empty((int(table_start[-1] + (1 << lengths[-1])), width), dtype=np.float32)
    weights = _shapley_weights(width)
    for lo in range(0, count, _LEAVES_AT_ONCE):
        part = slice(lo, min(lo + _LEAVES_AT_ONCE, count))
        by_pattern = _leaf_tables(value[part], zero[part], weights)  # (leaves, 2^width, width)
        features_of = _feature_patterns(slot[part, :depth], width)  # (leaves, 2^depth)
        for i in range(part.start, part.stop):
            n = 1 << lengths[i]
            table[table_start[i] : table_start[i] + n] = by_pattern[i - lo, features_of[i - lo, :n]]
    numeric = [i for i in range(len(splits.feature)) if i not in splits.categories]
    categorical = sorted(splits.categories)
    number = np.empty(len(splits.feature) + 1, dtype=np.intp)  # the splits in ShapTables' order
    number[[*numeric, *categorical, pad]] = np.arange(len(number))
    size = max((max(c, default=-1) for c in splits.categories.values()), default=-1) + 2  # + "in no set"
    category_in = np.zeros((len(categorical), size), dtype=bool)
    for row, split in enumerate(categorical):
        category_in[row, splits.categories[split]] = True
    feature, default_left = np.array(splits.feature, dtype=np.intp), np.array(splits.default_left, dtype=bool)
    return ShapTables(
        split_feature=feature[numeric],
        threshold=np.array(splits.threshold, dtype=np.float32)[numeric],
        default_left=default_left[numeric],
        category_feature=feature[categorical],
        category_default_left=default_left[categorical],
        category_in=category_in.ravel(),
        category_size=size,
        path_split=number[path_split],
        path_left=path_left,
        pattern_mask=((np.uint64(1) << lengths.astype(np.uint64)) - np.uint64(1)).astype(np.uint64),
        table_start=table_start,
        table=table,
        to_features=scipy.sparse.csr_array(
            (np.ones(path_feature.size), (path_feature.ravel(), np.arange(path_feature.size))),
            shape=(features + 1, path_feature.size),
        ),
        features=features,
        bias=bias,
    )


def _shapley_weights(width: int) -> np.ndarray:
    """(width, 2^width, 2^width): for feature k, pattern A and set M of features, the weight of prod z over M.

    That is |S|! (width - |S| - 1)! / width! when M is the complement of S + {k} for some S among
    A's features other than k (the module docstring's sum, written as a matrix), else 0.
    """
    full = (1 << width) - 1
    share = [math.factorial(s) * math.factorial(width - s - 1) / math.factorial(width) for s in range(width)]
    out = np.zeros((width, 1 << width, 1 << width))
    for k in range(width):
        for pattern in range(1 << width):
            others = pattern & ~(1 << k)
            subset = others
            while True:  # every subset of `others`
                out[k, pattern, full & ~subset & ~(1 << k)] += share[subset.bit_count()]
                if subset == 0:
                    break
                subset = (subset - 1) & others
    return out


def _leaf_tables(value: np.ndarray, zero: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(leaves, 2^width, width): each leaf's contributions per pattern of its path features' o's."""
    width = zero.shape[1]
    bits = (np.arange(1 << width)[:, None] >> np.arange(width)) & 1  # (patterns, width)
    products = np.prod(np.where(bits[None] == 1, zero[:, None, :], 1.0), axis=2)  # (leaves, sets M)
    out = np.empty((len(value), 1 << width, width))
    for k in range(width):
        out[:, :, k] = (products @ weights[k].T) * value[:, None] * (bits[None, :, k] - zero[:, k, None])
    return out


def _feature_patterns(slot: np.ndarray, width: int) -> np.ndarray:
    """(leaves, 2^splits): per pattern of a path's decisions, the pattern of its features' o's.

    A feature's o is 1 when the row follows the path at every split testing it; a padding
    feature's is 1. `slot` gives each split's feature on the path (-1 past the path's end).
    """
    decisions = np.arange(1 << slot.shape[1])
    split_bits = 1 << np.arange(slot.shape[1])
    out = np.zeros((len(slot), len(decisions)), dtype=np.intp)
    for k in range(width):
        tests = ((slot == k) * split_bits).sum(axis=1)[:, None]  # the splits testing feature k, as bits
        out |= ((decisions & tests) == tests).astype(np.intp) << k
    return out


def contributions(tables: ShapTables, rows: np.ndarray) -> np.ndarray:
    """Exact TreeSHAP contributions of rows, as XGBoost's `pred_contribs` gives them.

    Args:
        tables: The model's `build`.
        rows: float32 (rows, features), the model's input (NaN missing; categories as codes).

    Returns:
        float64 (rows, features + 1): one contribution per feature, then the bias term.
    """
    out = np.empty((len(rows), tables.features + 1))
    for start in range(0, len(rows), BLOCK_ROWS):
        out[start : start + BLOCK_ROWS] = _block(tables, rows[start : start + BLOCK_ROWS])
    out[:, -1] = tables.bias
    return out


def _block(t: ShapTables, rows: np.ndarray) -> np.ndarray:
    """`contributions` of a few rows (the bias column left to the caller)."""
    n = len(rows)
    numeric = len(t.threshold)
    splits = numeric + len(t.category_feature)
    left = np.empty((n, splits + 1), dtype=bool)
    left[:, splits] = True  # the pseudo split
    values = np.take(rows, t.split_feature, axis=1)
    np.less(values, t.threshold, out=left[:, :numeric])
    missing = np.isnan(values)
    if missing.any():
        np.copyto(left[:, :numeric], t.default_left, where=missing)
    if splits > numeric:
        left[:, numeric:splits] = _category_left(t, np.take(rows, t.category_feature, axis=1))
    follows = np.take(left, t.path_split, axis=1) == t.path_left  # (rows, leaves, MAX_PATH)
    if sys.byteorder == "little":
        pattern = (follows.view(np.uint64)[..., 0] * _PACK) >> np.uint64(56)
    else:
        pattern = np.packbits(follows, axis=-1, bitorder="little")[..., 0].astype(np.uint64)
    at = t.table_start + (pattern & t.pattern_mask).astype(np.intp)  # (rows, leaves)
    amounts = np.take(t.table, at, axis=0).reshape(n, -1)  # (rows, leaves × width)
    return np.asarray(t.to_features @ amounts.T).T


def _category_left(t: ShapTables, codes: np.ndarray) -> np.ndarray:
    """Whether rows go left at the categorical splits: missing by the default; else unless the code is in the set.

    As XGBoost decides: a code that is negative or past every set is in none, and goes left; a
    fractional code counts as its integer part.
    """
    size = t.category_size
    known = (codes >= 0) & (codes < size - 1)  # False for NaN
    at = np.where(known, codes, size - 1).astype(np.intp)
    at += np.arange(0, len(t.category_feature) * size, size)
    left = ~np.take(t.category_in, at)
    missing = np.isnan(codes)
    if missing.any():
        np.copyto(left, t.category_default_left, where=missing)
    return left
