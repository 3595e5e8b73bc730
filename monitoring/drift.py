"""Per-column data and prediction drift: one Evidently report, the verdicts read from its public result.

`drift_report(reference, current)` picks a test per column (`monitoring.drift_methods`), runs one
Evidently `Report` on `Dataset.from_pandas` data whose column kinds are given explicitly
(`DataDefinition`), and reads each column's value back from `Snapshot.dict()` (`read_columns`).
The report holds, in this order:

- a count of the drifted feature columns, with each column's method and threshold (its widget is
  the report's summary);
- one value-drift metric per feature column and one for the prediction column, each with its
  explicit method and threshold (its widget is the column's distribution chart);
- Evidently's `MissingValueCount` of each column tested on its missing share
  (`monitoring.drift_methods.MISSING_SHARE`): Evidently cannot test a column without values, so
  that test is computed here, and the report shows the column's missing values.

Two engines fill the report with the same values:

- "fast" (the default): `FastDriftedColumnsCount` and `FastValueDrift` of
  `monitoring.evidently_adapter`, the one module that uses Evidently internals; it exists for the
  drift report's time budget (see its docstring and `bench/drift.py`).
- "public": Evidently's own `DriftedColumnsCount` and `ValueDrift`, public API only, with
  Evidently's own charts (two Plotly figures per column), and much slower.

Why not `DataDriftPreset`: it computes every column's drift three times (its `ValueDrift` metrics,
then the legacy `DataDriftTable` and `DatasetDriftMetric` it renders) and chooses tests by
counting distinct values, where the platform chooses them by dtype.

Every row is tested, nothing is sampled. Errors: no shared column, a requested column missing on
one side, an empty frame, or a numeric reference column that is not numeric in the current data
raise `ValueError` naming what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report, Run
from evidently.metrics import DriftedColumnsCount, MissingValueCount, ValueDrift

from core.monitoring_settings import DriftTests
from monitoring.drift_methods import (
    MISSING_SHARE,
    ColumnTest,
    choose_tests,
    finite,
    is_drifted,
    kind_of,
    method_name,
    missing_share,
    prediction_test,
    with_missing_share,
)
from monitoring.evidently_adapter import FastDriftedColumnsCount, FastValueDrift
from monitoring.summary import ColumnResult, PredictionDrift

Engine = Literal["fast", "public"]
"""Which metrics compute the report: the adapter's (`fast`) or Evidently's own (`public`)."""

_ENGINES: dict[Engine, tuple[type[ValueDrift], type[DriftedColumnsCount]]] = {
    "fast": (FastValueDrift, FastDriftedColumnsCount),
    "public": (ValueDrift, DriftedColumnsCount),
}

_VALUE_DRIFT_TYPES = tuple(f":{value_drift.__name__}" for value_drift, _ in _ENGINES.values())
"""How the value-drift metrics' `config.type` ends in a snapshot dict (`evidently:metric_v2:ValueDrift`)."""


@dataclass(frozen=True)
class DriftResult:
    """What a drift report found.

    Attributes:
        columns: One result per feature column (the prediction column is not among them).
        n_columns: Number of feature columns tested.
        drifted_columns: How many of them drifted.
        drifted_share: drifted_columns / n_columns.
        prediction: Drift of the prediction column, if one was given.
        drift_share: Share of drifted columns at which `status` is 'drift'.
    """

    columns: list[ColumnResult]
    n_columns: int
    drifted_columns: int
    drifted_share: float
    prediction: PredictionDrift | None = None
    drift_share: float = 0.3

    @property
    def status(self) -> Literal["ok", "warning", "drift"]:
        """The default verdict; callers may apply their own policy to the figures instead.

        'drift' at `drift_share` or more drifted columns or a drifted prediction, 'warning' when some
        column drifted, else 'ok'.
        """
        if self.drifted_share >= self.drift_share or (self.prediction is not None and self.prediction.drifted):
            return "drift"
        return "warning" if self.drifted_columns else "ok"


def read_columns(snapshot: Mapping[str, Any], tests: Sequence[ColumnTest]) -> list[ColumnResult]:
    """Each tested column's result, read from a snapshot dict.

    Reads the value-drift metrics (Evidently's `ValueDrift` or the adapter's `FastValueDrift`),
    taking method and threshold from the metric's config, which records what Evidently ran.

    Args:
        snapshot: `Snapshot.dict()`.
        tests: The columns to read, with their kind.

    Returns:
        One result per test, in the same order.

    Raises:
        ValueError: A column has no drift metric in the snapshot, or an unusable value or method.
    """
    by_column: dict[str, Mapping[str, Any]] = {}
    for metric in snapshot.get("metrics", []):
        config = metric.get("config") or {}
        if str(config.get("type", "")).endswith(_VALUE_DRIFT_TYPES) and "column" in config:
            by_column[str(config["column"])] = metric
    out = []
    for test in tests:
        metric = by_column.get(test.column)
        if metric is None:
            raise ValueError(f"the snapshot holds no drift metric for column {test.column!r}")
        config = metric["config"]
        method = str(config.get("method") or test.method)
        threshold = float(config["threshold"]) if config.get("threshold") is not None else test.threshold
        try:
            value = float(metric["value"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"drift metric of column {test.column!r} has no numeric value: {metric!r}") from exc
        out.append(
            ColumnResult(
                column=test.column,
                kind=test.kind,
                method=method_name(method),
                threshold=threshold,
                value=value,
                drifted=is_drifted(method, threshold, value),
            )
        )
    return out


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    prediction_column: str | None = None,
    methods: DriftTests = DriftTests(),  # noqa: B008 (frozen, so a shared default is safe)
    drift_share: float = 0.3,
    engine: Engine = "fast",
) -> tuple[Run, DriftResult]:
    """Test every feature column (and the prediction) of `current` against `reference`.

    Args:
        reference: The training-time sample.
        current: The data to check.
        columns: Feature columns to test; default: every column both frames hold, except the
            prediction column.
        prediction_column: The model's (numeric) prediction, tested with `methods.prediction`.
        methods: The test per kind of column (`monitoring.tests`).
        drift_share: Share of drifted feature columns at which `DriftResult.status` is 'drift'.
        engine: The metrics that compute the report (see the module docstring).

    Returns:
        The Evidently snapshot (`save_html` for the report) and the verdicts read from it.

    Raises:
        ValueError: An empty frame, no column to test, a requested column missing from either
            frame, a prediction column that is missing, not numeric, among the features or without
            values, or a method that does not apply.
    """
    columns = _feature_columns(reference, current, columns, prediction_column)
    tests = with_missing_share(choose_tests(reference, columns, methods), reference, current)
    for test in tests:
        if test.kind == "numeric" and test.method != MISSING_SHARE:
            dtype = current[test.column].dtype
            if not pd.api.types.is_numeric_dtype(dtype):
                raise ValueError(f"column {test.column!r} is numeric in the reference but {dtype} in the current data")
    prediction = None if prediction_column is None else prediction_test(reference, prediction_column, methods)

    snapshot = _run(reference, current, tests, prediction, drift_share, engine)
    tested = [t for t in tests if t.method != MISSING_SHARE]
    read = read_columns(snapshot.dict(), [*tested, prediction] if prediction is not None else tested)
    by_column = {r.column: r for r in read}
    results = [_missing(t, reference, current) if t.method == MISSING_SHARE else by_column[t.column] for t in tests]
    drifted = sum(r.drifted for r in results)
    result = DriftResult(
        columns=results,
        n_columns=len(results),
        drifted_columns=drifted,
        drifted_share=drifted / len(results),
        prediction=None if prediction is None else _prediction(by_column[prediction.column], reference, current),
        drift_share=drift_share,
    )
    return snapshot, result


def _feature_columns(
    reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str] | None, prediction_column: str | None
) -> list[str]:
    """The feature columns to test, checked against both frames (and the prediction column)."""
    if reference.empty or current.empty:
        raise ValueError(f"drift needs rows on both sides: reference has {len(reference)}, current has {len(current)}")
    if columns is None:
        columns = [c for c in reference.columns if c in current.columns and c != prediction_column]
        if not columns:
            raise ValueError(
                f"reference and current share no feature column: reference has {list(reference.columns)}, "
                f"current has {list(current.columns)}"
            )
    else:
        columns = list(dict.fromkeys(columns))
        if not columns:
            raise ValueError("no column to test")
        for side, frame in (("reference", reference), ("current", current)):
            missing = [c for c in columns if c not in frame.columns]
            if missing:
                raise ValueError(f"columns not in the {side} data: {missing}")
    if prediction_column is not None:
        if prediction_column in columns:
            raise ValueError(f"prediction column {prediction_column!r} is also among the feature columns")
        for side, frame in (("reference", reference), ("current", current)):
            if prediction_column not in frame.columns:
                raise ValueError(f"prediction column {prediction_column!r} not in the {side} data")
            series = frame[prediction_column]
            if kind_of(series) != "numeric":
                raise ValueError(
                    f"prediction column {prediction_column!r} is not numeric in the {side} data ({series.dtype})"
                )
            if finite(series).size == 0:
                raise ValueError(f"prediction column {prediction_column!r} has no value in the {side} data")
    return list(columns)


def _run(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    tests: Sequence[ColumnTest],
    prediction: ColumnTest | None,
    drift_share: float,
    engine: Engine,
) -> Run:
    """The Evidently report of `tests` and the prediction's test (see the module docstring)."""
    value_drift, drifted_count = _ENGINES[engine]
    everything = [*tests, prediction] if prediction is not None else list(tests)
    tested = [t for t in tests if t.method != MISSING_SHARE]
    metrics: list[Any] = []
    if tested:
        metrics.append(
            drifted_count(
                columns=[t.column for t in tested],
                per_column_method={t.column: t.method for t in tested},
                per_column_threshold={t.column: t.threshold for t in tested},
                drift_share=drift_share,
            )
        )
    drifts = [*tested, prediction] if prediction is not None else tested
    metrics += [value_drift(column=t.column, method=t.method, threshold=t.threshold) for t in drifts]
    metrics += [MissingValueCount(column=t.column) for t in tests if t.method == MISSING_SHARE]
    definition = DataDefinition(
        numerical_columns=[t.column for t in everything if t.kind == "numeric"],
        categorical_columns=[t.column for t in everything if t.kind == "categorical"],
        text_columns=[],
        datetime_columns=[],
        unknown_columns=[],
        list_columns=[],
    )
    names = [t.column for t in everything]
    numeric = [t.column for t in everything if t.kind == "numeric"]
    with np.errstate(divide="ignore", invalid="ignore"):  # Evidently's column statistics divide by 0 on empty columns
        current_data, reference_data = (
            Dataset.from_pandas(_finite_or_missing(frame[names], numeric), data_definition=definition)
            for frame in (current, reference)
        )
        return Report(metrics).run(current_data, reference_data)


def _finite_or_missing(frame: pd.DataFrame, numeric: Sequence[str]) -> pd.DataFrame:
    """`frame` with +-inf as NaN in float columns: missing, as Evidently's drift tests treat them.

    A `numeric` column that is not of a numeric dtype (all missing, as a column tested on its missing
    share can be: `None`s read from the prediction log) becomes float, its values missing.
    """
    untyped = [c for c in numeric if not pd.api.types.is_numeric_dtype(frame[c].dtype)]
    if untyped:
        frame = frame.assign(**{c: pd.to_numeric(frame[c], errors="coerce").astype(float) for c in untyped})
    infinite = [
        c for c in frame.columns if pd.api.types.is_float_dtype(frame[c].dtype) and np.isinf(frame[c].to_numpy()).any()
    ]
    return frame.assign(**{c: frame[c].replace([np.inf, -np.inf], np.nan) for c in infinite}) if infinite else frame


def _missing(test: ColumnTest, reference: pd.DataFrame, current: pd.DataFrame) -> ColumnResult:
    """The result of a column tested on its missing share."""
    value = abs(missing_share(current[test.column], test.kind) - missing_share(reference[test.column], test.kind))
    return ColumnResult(
        column=test.column,
        kind=test.kind,
        method=MISSING_SHARE,
        threshold=test.threshold,
        value=value,
        drifted=is_drifted(MISSING_SHARE, test.threshold, value),
    )


def _prediction(result: ColumnResult, reference: pd.DataFrame, current: pd.DataFrame) -> PredictionDrift:
    """The prediction column's drift, with its mean on both sides."""
    return PredictionDrift(
        method=result.method,
        threshold=result.threshold,
        value=result.value,
        drifted=result.drifted,
        reference_mean=float(finite(reference[result.column]).mean()),
        current_mean=float(finite(current[result.column]).mean()),
    )
