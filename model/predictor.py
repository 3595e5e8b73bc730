"""The plain predictor behind the service and batch scoring: probabilities and top reasons.

It knows nothing of HTTP or BentoML, so tests build it from a small real booster. Probabilities
cost a fraction of reasons (per-feature contributions: exact TreeSHAP, or XGBoost's approximation),
so batch scoring asks for them separately.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
import xgboost as xgb

from core.config_sections import ServingSettings
from model import saabas, treeshap
from model.calibration import calibrate
from model.champion import RegisteredModel
from model.linear import CompiledLinear, LinearPart, blend_margin, sigmoid
from model.matrix import booster_categories
from model.reasons import phraser, reason
from model.rows import (
    Rows,
    category_codes,
    column,
    column_numbers,
    frame_category_codes,
    plain,
    row_count,
)
from model.rows import (
    numbers as to_numbers,
)

log = logging.getLogger(__name__)

FLOAT32_MAX = float(np.finfo(np.float32).max)
"""Largest finite value XGBoost can take (it reads features as float32)."""

Explainer = Literal["shap", "approx", "auto"]
Method = Literal["shap", "approx"]
"""How one call computed its reasons: exact TreeSHAP, or XGBoost's approximation (Saabas)."""


class Predictor:
    """Scores feature rows with a booster and explains each score by per-feature contributions."""

    def __init__(
        self,
        booster: xgb.Booster,
        version: str,
        top_reasons: int,
        explainer: Explainer = "shap",
        exact_rows: int = 100,
        calibration: Mapping[str, Any] | None = None,
        reference: pd.DataFrame | None = None,
        linear: LinearPart | None = None,
    ) -> None:
        """Wrap a trained booster.

        Args:
            booster: The model; its feature names define the expected columns.
            version: The registry version, echoed in every answer.
            top_reasons: How many reasons to give per customer.
            explainer: `shap` (exact TreeSHAP), `approx` (XGBoost's approximate contributions) or
                `auto`: exact for calls on at most `exact_rows` rows, approximate for bigger ones.
                Unless `approx`, the exact explainer's tables are built here (`model.treeshap`).
            exact_rows: The largest call `auto` explains exactly.
            calibration: The probability calibration training chose (`model.calibration`), if any.
            reference: A sample of the training features (quantile cut-offs of CRM layers come from it).
            linear: The logistic regression blended with the trees (`model.linear`), if any: the
                margin and every contribution are then the blend of both.
        """
        if not booster.feature_names:
            raise ValueError("the model has no feature names: train it on a DataFrame")
        self.booster = booster
        self._one_thread = booster.copy()
        self._one_thread.set_param({"nthread": 1})
        self.version = version
        self.features: list[str] = list(booster.feature_names)
        self.categories = booster_categories(booster)
        self.reference = reference
        """A sample of the training features (quantile cut-offs of CRM layers come from it)."""
        self.calibration = dict(calibration) if calibration is not None else None
        """The probability calibration training chose (`model.calibration.calibrate`), if any."""
        self.info: dict[str, Any] = {"version": version}
        """Registry facts for GET /model: name, version, run, trained_at, metrics, feature_service."""
        self.top_reasons = top_reasons
        self.explainer = explainer
        self.exact_rows = exact_rows
        self._codes = {f: {v: float(i) for i, v in enumerate(cats)} for f, cats in self.categories.items()}
        self.numeric_features = [f for f in self.features if f not in self.categories]
        """The features that are numbers, in the model's order (the rest are categories)."""
        self.categorical_features = [f for f in self.features if f in self.categories]
        """The categorical features, in the model's order."""
        self._numeric_at = np.array([self.features.index(f) for f in self.numeric_features], dtype=int)
        self._types = ["c" if f in self.categories else "float" for f in self.features]
        self._phrasers = [phraser(f) for f in self.features]
        self._logistic = _objective(booster) == "binary:logistic"
        """Whether a probability is the sigmoid of the margin (`model_outputs` then sums the contributions)."""
        if linear is not None and not self._logistic:
            raise ValueError("a linear part blends only with a binary:logistic booster")
        self._linear = CompiledLinear(linear, self.features, self.categories) if linear is not None else None
        """The blended linear part, laid out for `_array` rows; None: the trees alone."""
        single = treeshap.single_output_trees(booster)  # the booster's JSON, parsed once for both explainers
        self._shap = treeshap.build(booster, single=single) if explainer != "approx" and single else None
        """Exact TreeSHAP by table lookup; None (XGBoost's `pred_contribs` then) for a model the tables
        do not cover, or a predictor made to approximate."""
        self._saabas = saabas.build(booster, single=single) if explainer != "shap" and single else None
        """XGBoost's approximation from flat trees and a compiled walk; None (XGBoost then) for a model
        they do not cover, or a predictor made to explain exactly."""
        if self._saabas is not None:  # compile now (or load the compiled walk), not in the first big call
            saabas.contributions(self._saabas, np.full((1, len(self.features)), np.nan, dtype=np.float32))
        if self._shap is None and explainer != "approx":
            log.warning(
                "model v%s: exact SHAP uses XGBoost's pred_contribs (several times slower): the TreeSHAP "
                "tables take single-output gbtree models with paths of at most %d splits and tables of at "
                "most %d MiB",
                version,
                treeshap.MAX_PATH,
                treeshap.MAX_TABLE_BYTES // 2**20,
            )

    def matrix(self, rows: Rows) -> xgb.DMatrix:
        """The model's input for feature rows, built straight from the columns (no typed DataFrame).

        Numbers are clipped to float32's range: XGBoost reads float32, and a finite float64 past
        its range would become inf and make it raise; clipped, such a value goes down every tree
        as any value above (below) every threshold, which is what a huge value means to the model.
        A category is its code in the training category list, so an unknown or missing one is
        missing to the model, exactly as `model.matrix.model_frame` makes it.

        Args:
            rows: Feature rows (extra columns are ignored; values as callers send them).
        """
        return xgb.DMatrix(
            self._array(rows), feature_names=self.features, feature_types=self._types, enable_categorical=True
        )

    def _input(self, rows: Rows) -> xgb.DMatrix:
        """`matrix(rows)` without feature names and types: what this predictor's own XGBoost calls take."""
        return self._dmatrix(self._array(rows))

    def _dmatrix(self, array: np.ndarray) -> xgb.DMatrix:
        """The DMatrix of `_array` rows, unnamed.

        The trees see the same numbers as in `matrix` (a split itself says whether it is
        categorical, and these calls skip the name check), and the DMatrix is built in half the
        time: for one row, naming the features and their types took longer than building the array.
        """
        # Like `_booster`: for a few rows, more threads only add their start-up (half the build time for one row).
        return xgb.DMatrix(array, nthread=1 if len(array) <= ONE_THREAD_ROWS else None)

    def _array(self, rows: Rows) -> np.ndarray:
        """`matrix(rows)` as a float32 array, one line per row and one column per feature (categories coded)."""
        if isinstance(rows, pd.DataFrame) and rows.columns.is_unique:
            return self._frame_array(rows)
        out = np.empty((row_count(rows), len(self.features)), dtype=np.float32)
        if self.numeric_features:
            numbers = (
                to_numbers(rows[self.numeric_features])
                if isinstance(rows, pd.DataFrame)
                else column_numbers(rows, self.numeric_features)
            )
            out[:, self._numeric_at] = np.clip(numbers, -FLOAT32_MAX, FLOAT32_MAX)
        for j, feature in enumerate(self.features):
            codes = self._codes.get(feature)
            if codes is not None:
                out[:, j] = category_codes(column(rows, feature), codes)
        return out

    def _frame_array(self, rows: pd.DataFrame) -> np.ndarray:
        """`_array` of a DataFrame, column by column, without a Python step per value.

        The same numbers as converting the numeric features together (`model.rows.numbers`): a NumPy bool,
        integer or float column converts the same way on either path, and the rest go through
        `model.rows.numbers` together, as before. The array is filled a block of rows at a time, so each
        block stays in cache while its columns are written.
        """
        n = len(rows)
        out = np.empty((n, len(self.features)), dtype=np.float32)
        columns: list[tuple[int, np.ndarray]] = []
        other: list[str] = []
        for j, feature in zip(self._numeric_at.tolist(), self.numeric_features, strict=True):
            values = rows[feature]
            if isinstance(values.dtype, np.dtype) and values.dtype.kind in "biuf":
                columns.append((j, values.to_numpy(dtype=np.float64, copy=False)))
            else:
                other.append(feature)
        if other:
            numbers = to_numbers(rows[other])
            columns += [(self.features.index(f), numbers[:, k]) for k, f in enumerate(other)]
        coded = [
            (j, frame_category_codes(rows[feature], codes))
            for j, feature in enumerate(self.features)
            if (codes := self._codes.get(feature)) is not None
        ]
        for start in range(0, n, _BLOCK_ROWS):
            stop = min(start + _BLOCK_ROWS, n)
            block = out[start:stop]
            for j, values in columns:
                block[:, j] = np.clip(values[start:stop], -FLOAT32_MAX, FLOAT32_MAX)
            for j, values in coded:
                block[:, j] = values[start:stop]
        return out

    def method(self, rows: int) -> Method:
        """How a call on `rows` rows computes reasons: the explainer, or for `auto` exact up to `exact_rows`."""
        if self.explainer == "auto":
            return "shap" if rows <= self.exact_rows else "approx"
        return self.explainer

    def model_outputs(self, rows: Rows, contributions: bool = True, method: Method | None = None) -> np.ndarray:
        """The model step alone, the part the service batches across requests.

        Args:
            rows: Feature rows.
            contributions: Also the contributions (else the probabilities only).
            method: How to compute them; default `method(len(rows))`.

        Returns:
            float32, shape (rows, 1 + features): column 0 the raw (uncalibrated) probability, then
            one contribution per feature (the bias term dropped). With `contributions=False`, only
            column 0.
        """
        array = self._array(rows)
        if not contributions:
            return self._raw_probabilities(array).astype(np.float32).reshape(-1, 1)
        method = method or self.method(len(array))
        if not self._logistic:
            matrix = self._dmatrix(array)
            proba = self._booster(matrix).predict(matrix, validate_features=False)
            contribs = self._contributions(array, method, matrix)
            return np.column_stack([proba, contribs[:, :-1]]).astype(np.float32)
        contribs = self._contributions(array, method)
        # Both explainers split each row's margin exactly (the bias term included), so the
        # probability is the sigmoid of their sum: a second pass over the trees for `predict` would
        # give the same number (up to float32 rounding, as the sum's order differs) at up to half
        # the cost of a request's model step.
        margin = contribs.sum(axis=1, dtype=np.float64)
        out = np.empty(contribs.shape, dtype=np.float32)
        out[:, 0] = 1.0 / (1.0 + np.exp(-margin))
        out[:, 1:] = contribs[:, :-1]
        return out

    def _booster(self, matrix: xgb.DMatrix) -> xgb.Booster:
        """The booster for a call on `matrix`: a one-thread copy for a few rows (a request's).

        XGBoost splits one call's rows over its threads; for a few rows a second thread has
        nothing to do but wake up, and its OpenMP spin-wait afterwards takes CPU from the server's
        other processes (the model service, other workers) on a small machine.
        """
        return self._one_thread if matrix.num_row() <= ONE_THREAD_ROWS else self.booster

    def _contributions(self, array: np.ndarray, method: Method, matrix: xgb.DMatrix | None = None) -> np.ndarray:
        """Per row of `_array` rows, one contribution per feature (by `method`), then the bias term.

        Exact TreeSHAP comes from the tables and the approximation from the flat trees when the
        model has them (float64, XGBoost's numbers up to float rounding), else from XGBoost
        (float32), on `matrix` (`array`'s DMatrix, when the caller has built it) or a DMatrix built here.
        """
        if method == "shap" and self._shap is not None:
            trees = treeshap.contributions(self._shap, array)
        elif method == "approx" and self._saabas is not None:
            trees = saabas.contributions(self._saabas, array)
        else:
            matrix = matrix if matrix is not None else self._dmatrix(array)
            trees = np.asarray(
                self._booster(matrix).predict(
                    matrix, pred_contribs=True, approx_contribs=method == "approx", validate_features=False
                )
            )
        if self._linear is None:
            return trees
        # Both parts' contributions are exact splits of their margins, so the blend's are their blend.
        w = self._linear.tree_weight
        blended = w * trees.astype(np.float64)
        blended[:, :-1] += (1.0 - w) * self._linear.contributions(array)
        blended[:, -1] += (1.0 - w) * self._linear.bias
        return blended

    def _raw_probabilities(self, array: np.ndarray) -> np.ndarray:
        """Uncalibrated churn probabilities of `_array` rows.

        The booster predicts from the array `matrix` would wrap (`inplace_predict`: the same
        numbers, without building a DMatrix; the trees' categorical splits read the codes).
        """
        if self._linear is None:
            proba = self.booster.inplace_predict(array, validate_features=False)
            return np.asarray(proba, dtype=np.float32).reshape(-1)
        trees = self.booster.inplace_predict(array, predict_type="margin", validate_features=False)
        margin = blend_margin(np.asarray(trees).reshape(-1), self._linear.margin(array), self._linear.tree_weight)
        return sigmoid(margin)

    def probabilities(self, rows: Rows) -> np.ndarray:
        """Calibrated churn probabilities of feature rows (no reasons: the fast path of batch scoring)."""
        return calibrate(self.calibration, self._raw_probabilities(self._array(rows)))

    def reasons(
        self, rows: Rows, contribs: np.ndarray | None = None, method: Method | None = None
    ) -> list[list[dict[str, Any]]]:
        """Per row, the features that pushed its churn score up most, largest first (at most `top_reasons`).

        Args:
            rows: Feature rows.
            contribs: Their contributions (`model_outputs(rows)[:, 1:]`); computed here when None.
            method: How to compute them here; default `method(len(rows))`.

        Returns:
            Per row, a list of reasons (`_reason`): feature, value, contribution, phrase.
        """
        if contribs is None:
            contribs = self._contributions(self._array(rows), method or self.method(row_count(rows)))
            contribs = contribs.astype(np.float32)  # as `model_outputs` gives them
        contribs = contribs[:, : len(self.features)]
        top = min(self.top_reasons, len(self.features))
        n = row_count(rows)
        if top == 0 or n == 0:
            return [[] for _ in range(n)]
        order = np.argsort(-contribs, axis=1, kind="stable")[:, :top]
        picked = np.take_along_axis(contribs, order, axis=1)
        # A row's reasons run down its largest contributions up to the first that does not push up.
        kept = np.logical_and.accumulate(~(picked <= 0), axis=1)
        at_row, at_rank = np.nonzero(kept)  # row by row, largest first
        at_feature = order[at_row, at_rank]
        values = {j: column(rows, self.features[j]) for j in np.unique(at_feature).tolist()}
        features, phrasers = self.features, self._phrasers
        made: list[dict[str, Any]] = []
        for i, j, amount in zip(at_row.tolist(), at_feature.tolist(), picked[at_row, at_rank].tolist(), strict=True):
            value = values[j][i]
            if type(value) is not float or math.isnan(value):  # else it is plain already
                value = plain(value)
            made.append(reason(features[j], value, amount, phrasers[j](value)))
        out: list[list[dict[str, Any]]] = []
        start = 0
        for count in kept.sum(axis=1).tolist():
            out.append(made[start : start + count])
            start += count
        return out


def _objective(booster: xgb.Booster) -> str:
    """The name of the booster's training objective (`binary:logistic` for the platform's models)."""
    return str(json.loads(booster.save_config())["learner"]["objective"]["name"])


ONE_THREAD_ROWS = 16
"""Calls on at most this many rows run XGBoost on one thread (see `Predictor._booster`)."""

_BLOCK_ROWS = 8_192
"""Rows per block when `Predictor._frame_array` fills the model's input."""


def predictor_of(registered: RegisteredModel, serving: ServingSettings) -> Predictor:
    """A `Predictor` of a registered model with the serving settings' reasons and explainer."""
    bundle = registered.bundle
    predictor = Predictor(
        bundle.booster,
        registered.version,
        serving.top_reasons,
        serving.explainer,
        serving.exact_shap_rows,
        calibration=bundle.calibration,
        reference=bundle.reference,
        linear=bundle.linear,
    )
    predictor.info = dict(registered.info)
    return predictor
