"""Per-column data and prediction drift on Evidently 0.7: one explicit test per column, one snapshot.

`drift_report(reference, current)` picks a test per column (`choose_tests`), runs one Evidently
`Report` holding a `ColumnValueDrift` metric per feature column (and one for the prediction
column), preceded by a `ColumnsDriftCount` summary, and reads the verdicts back from
`Snapshot.dict()` (`read_columns`, `is_drifted`). The snapshot renders with `save_html`: a summary
(drifted columns, share, a table of every column's method, threshold, score and verdict), then one
distribution chart per column, titled with its verdict.

Why an effect size, not a p-value, by default. With 100,000 rows a side a two-sample test such as
Kolmogorov-Smirnov detects shifts far too small to matter, and at p < 0.05 it also flags about 5 %
of columns that did not change at all: about 2 of 39 unshifted columns, every run, by chance. The
default numeric test is therefore Evidently's normed Wasserstein distance (the Wasserstein-1
distance divided by the reference standard deviation, so 0.1 is roughly a shift of a tenth of a
standard deviation) at 0.15, and the categorical one the Jensen-Shannon distance at 0.1: they measure
how much a distribution moved, which does not grow with the sample size. Noise on an unchanged
100k-row column is about 0.005 (at most 0.01 over the 39 unshifted columns of `bench/drift.py`), a
0.2-standard-deviation mean shift scores 0.2. P-value
methods (`ks`, `chisquare`, `z`, ...) can still be chosen through `DriftMethods`; the verdict then
is value < threshold, while distances (`wasserstein`, `jensenshannon`, `psi`, ...) drift at
value >= threshold (`is_drifted`).

Why not `DataDriftPreset`. Profiled with cProfile on 100k x 100k rows x 40 columns (24.7 s for
`Report.run`): the preset computes every column's drift three times (its `ValueDrift` metrics, then
the legacy `DataDriftTable` and `DatasetDriftMetric` it renders), picks each test by counting
distinct values (`nunique`, 2.5 s), and builds Plotly figure objects while computing (about 13 s:
`make_subplots` and `update_layout` validation, two charts per column per pass). Even explicit
`ValueDrift` metrics cost 11.4 s: each renders two Plotly figures (5.3 s) and copies and `dropna`s
the whole current frame for a time-index chart (1 s). `ColumnValueDrift` keeps Evidently's
registered statistic (`get_stattest(...)` with the explicit method and threshold, the same call
`ValueDrift` makes) and drops the rest: it tests the column's values only, renders a histogram
from plain dicts (no Plotly objects), and sorts each sample first, which changes no two-sample
statistic (all of them are order-invariant) but halves the time of SciPy's `wasserstein_distance`
(it argsorts and merge-sorts its inputs). The datasets compute Evidently's per-column statistics
(quartiles, std, ...; no metric here reads them) only on demand, which saves another 0.6 s. Nothing
is sampled: every row is tested. What is left is mostly the Wasserstein distance itself: 1.7x to
2.8x the wall time (2.5x the CPU time) of a SciPy `ks_2samp` loop over the same columns, and 9x to
15x faster than the preset, on 2 shared cores (see `bench/drift.py`).

Edge cases:

- No shared column, a requested column missing on one side, an empty frame: `ValueError` naming
  what is missing. A numeric reference column that is not numeric in the current data: `ValueError`.
- Column kinds come from the reference dtypes and are passed to Evidently explicitly: integer
  columns are numeric whatever their cardinality (Evidently's own inference would call one with
  few distinct values categorical).
- Missing values (NaN, None, and for numeric columns +-inf) are dropped before testing, as Evidently
  does; a change in the missing share alone is not drift.
- A column with no value at all on one side (or both) cannot be compared by distribution; it is
  tested on its missing share instead: method `missing_share`, value = |current missing share -
  reference missing share|, drift at >= `MISSING_SHARE_THRESHOLD` (0.1). A column that went
  entirely missing is thus drifted; one missing on both sides is not.
- A constant numeric reference column: Evidently norms the Wasserstein distance by
  max(std, 0.001), so any change scores far above 0.1 (0.5 % of the values off by 1 already score
  5). Such columns are tested with
  the Jensen-Shannon distance on their values instead (`CONSTANT_REFERENCE_METHOD`, threshold 0.1):
  0 when the current column holds the same constant, drift when at least a few percent of the
  values differ (about 3 %).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.core.datasets import DatasetStats, PandasDataset
from evidently.core.metric_types import CountCalculation, SingleValue, SingleValueCalculation
from evidently.core.report import Snapshot
from evidently.legacy.calculations import stattests as evidently_stattests
from evidently.legacy.calculations.stattests import registry as stattests
from evidently.legacy.core import ColumnType
from evidently.legacy.renderers.html_widgets import CounterData, WidgetSize, counter, plotly_data, table_data
from evidently.metrics import DriftedColumnsCount, ValueDrift

from monitoring.summary import ColumnResult, PredictionDrift

Kind = Literal["numeric", "categorical"]

P_VALUE_METHODS = frozenset(
    {
        "ks",
        "chisquare",
        "z",
        "t_test",
        "mannw",
        "anderson",
        "cramer_von_mises",
        "es",
        "fisher_exact",
        "g_test",
        "empirical_mmd",
        "TVD",
    }
)
"""Evidently tests whose value is a p-value: drift when value < threshold."""

MISSING_SHARE = "missing_share"
"""Pseudo-method for columns without any value on one side: |current - reference missing share|."""

MISSING_SHARE_THRESHOLD = 0.1
"""Drift threshold of `MISSING_SHARE`."""

DISTANCE_METHODS = frozenset(
    {
        "wasserstein",
        "jensenshannon",
        "psi",
        "kl_div",
        "hellinger",
        "ed",
        "perc_text_content_drift",
        "abs_text_content_drift",
        MISSING_SHARE,
    }
)
"""Evidently distances (and `MISSING_SHARE`): drift when value >= threshold."""

STD_NORMED_METHODS = frozenset({"wasserstein"})
"""Numeric methods Evidently norms by the reference standard deviation (useless on constant columns)."""

CONSTANT_REFERENCE_METHOD = ("jensenshannon", 0.1)
"""Method and threshold for a numeric column whose reference is constant (see the module docstring)."""

_HISTOGRAM_BINS = 30
_MAX_CATEGORIES = 30
_REFERENCE_COLOR = "#4d4d4d"
_CURRENT_COLOR = "#ed0400"


@dataclass(frozen=True)
class DriftMethods:
    """The drift test per kind of column, as Evidently names them.

    Attributes:
        numeric: Method for numeric feature columns.
        numeric_threshold: Its threshold.
        categorical: Method for categorical feature columns (object, string, category, bool).
        categorical_threshold: Its threshold.
        prediction: Method for the (numeric) prediction column.
        prediction_threshold: Its threshold.
    """

    numeric: str = "wasserstein"
    numeric_threshold: float = 0.15
    categorical: str = "jensenshannon"
    categorical_threshold: float = 0.1
    prediction: str = "wasserstein"
    prediction_threshold: float = 0.2


@dataclass(frozen=True)
class ColumnTest:
    """The test chosen for one column.

    Attributes:
        column: Column name.
        kind: How Evidently treats the column.
        method: Evidently's name of the test or distance, or `MISSING_SHARE`.
        threshold: Its threshold.
    """

    column: str
    kind: Kind
    method: str
    threshold: float


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


def _method_name(method: str) -> str:
    """Evidently's registry name of `method`, which may also be a display name such as 'K-S p_value'.

    `ValueDrift` with an automatic method records the display name in the snapshot.
    """
    if method in P_VALUE_METHODS or method in DISTANCE_METHODS:
        return method
    for test in vars(evidently_stattests).values():
        if isinstance(test, stattests.StatTest) and method == test.display_name:
            return str(test.name)
    return method


def is_drifted(method: str, threshold: float, value: float) -> bool:
    """Whether a test's value means drift.

    Args:
        method: Evidently's name (or display name) of the test, or `MISSING_SHARE`.
        threshold: The test's threshold.
        value: The test's value: a p-value or a distance.

    Returns:
        value < threshold for p-value tests, value >= threshold for distances. (Evidently itself
        differs at the boundary for two methods: `ed` drifts at value > threshold and
        `cramer_von_mises` at value <= threshold.)

    Raises:
        ValueError: Unknown method, or a value that is not a finite number.
    """
    if not math.isfinite(value):
        raise ValueError(f"drift value of method {method!r} is not a finite number: {value}")
    name = _method_name(method)
    if name in P_VALUE_METHODS:
        return value < threshold
    if name in DISTANCE_METHODS:
        return value >= threshold
    raise ValueError(
        f"unknown drift method {method!r}: not one of the p-value tests {sorted(P_VALUE_METHODS)} "
        f"nor the distances {sorted(DISTANCE_METHODS)}"
    )


def _kind(series: pd.Series) -> Kind:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        return "categorical"
    raise ValueError(f"column {series.name!r} has dtype {dtype}, neither numeric nor categorical")


def _finite(series: pd.Series) -> np.ndarray:
    """The finite values of a numeric column as float64 (NaN, None and +-inf dropped)."""
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    return values[np.isfinite(values)]


def _check_method(column: str, kind: Kind, method: str) -> None:
    column_type = ColumnType.Numerical if kind == "numeric" else ColumnType.Categorical
    try:
        stattests.get_registered_stattest(method, column_type)
    except Exception as exc:  # Evidently raises its own error types (not ValueError subclasses)
        raise ValueError(f"drift method {method!r} cannot test {kind} column {column!r}: {exc}") from exc
    is_drifted(method, 0.0, 0.0)  # the verdict must know whether the method gives a p-value or a distance


def choose_tests(reference: pd.DataFrame, columns: Sequence[str], methods: DriftMethods) -> list[ColumnTest]:
    """Choose each column's test from its reference dtype.

    Object, string, category and bool columns are categorical, other numeric dtypes numeric. A
    numeric column whose reference values are all equal gets `CONSTANT_REFERENCE_METHOD` when the
    numeric method is normed by the standard deviation (Wasserstein).

    Args:
        reference: The reference data.
        columns: Columns to test, all in `reference`.
        methods: The methods per kind.

    Returns:
        One test per column, in the order of `columns`.

    Raises:
        ValueError: A column is missing from `reference`, has another dtype (e.g. datetime), or the
            method does not apply to its kind.
    """
    missing = [c for c in columns if c not in reference.columns]
    if missing:
        raise ValueError(f"columns not in the reference data: {missing}")
    tests = []
    for column in columns:
        kind = _kind(reference[column])
        if kind == "categorical":
            method, threshold = methods.categorical, methods.categorical_threshold
        else:
            method, threshold = methods.numeric, methods.numeric_threshold
            if method in STD_NORMED_METHODS:
                values = _finite(reference[column])
                if values.size and values.min() == values.max():
                    method, threshold = CONSTANT_REFERENCE_METHOD
        _check_method(column, kind, method)
        tests.append(ColumnTest(column, kind, method, float(threshold)))
    return tests


def read_columns(snapshot: Mapping[str, Any], tests: Sequence[ColumnTest]) -> list[ColumnResult]:
    """Each tested column's result, read from a snapshot dict.

    Reads the `ValueDrift` metrics (ours, `ColumnValueDrift`, or Evidently's own), taking method and
    threshold from the metric's config, which records what Evidently ran.

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
        if str(config.get("type", "")).endswith((":ValueDrift", ":ColumnValueDrift")) and "column" in config:
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
        drifted = is_drifted(method, threshold, value)
        out.append(
            ColumnResult(
                column=test.column,
                kind=test.kind,
                method=_method_name(method),
                threshold=threshold,
                value=value,
                drifted=drifted,
            )
        )
    return out


def _no_values(series: pd.Series, kind: Kind) -> bool:
    if kind == "numeric" and pd.api.types.is_numeric_dtype(series.dtype):
        return _finite(series).size == 0
    return not series.notna().any()


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    prediction_column: str | None = None,
    methods: DriftMethods = DriftMethods(),  # noqa: B008 (frozen, so a shared default is safe)
    drift_share: float = 0.3,
) -> tuple[Snapshot, DriftResult]:
    """Test every feature column (and the prediction) of `current` against `reference`.

    Args:
        reference: The training-time sample.
        current: The data to check.
        columns: Feature columns to test; default: every column both frames hold, except the
            prediction column.
        prediction_column: The model's (numeric) prediction, tested with `methods.prediction`.
        methods: The test per kind of column.
        drift_share: Share of drifted feature columns at which `DriftResult.status` is 'drift'.

    Returns:
        The Evidently snapshot (`save_html` for the report) and the verdicts read from it.

    Raises:
        ValueError: An empty frame, no column to test, a requested column missing from either
            frame, a prediction column that is missing, not numeric, among the features or without
            values, or a method that does not apply.
    """
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
        _check_prediction(reference, current, columns, prediction_column)

    tests = _with_missing_share(choose_tests(reference, columns, methods), reference, current)
    prediction_test = None
    if prediction_column is not None:
        by_prediction = replace(methods, numeric=methods.prediction, numeric_threshold=methods.prediction_threshold)
        prediction_test = choose_tests(reference, [prediction_column], by_prediction)[0]
    for test in tests:
        if (
            test.kind == "numeric"
            and test.method != MISSING_SHARE
            and not pd.api.types.is_numeric_dtype(current[test.column].dtype)
        ):
            dtype = current[test.column].dtype
            raise ValueError(f"column {test.column!r} is numeric in the reference but {dtype} in the current data")

    everything = [*tests, prediction_test] if prediction_test is not None else list(tests)
    names = [t.column for t in everything]
    definition = DataDefinition(
        numerical_columns=[t.column for t in everything if t.kind == "numeric"],
        categorical_columns=[t.column for t in everything if t.kind == "categorical"],
        text_columns=[],
        datetime_columns=[],
        unknown_columns=[],
        list_columns=[],
    )
    summary = ColumnsDriftCount(
        columns=[t.column for t in tests],
        per_column_method={t.column: t.method for t in tests},
        per_column_threshold={t.column: t.threshold for t in tests},
        drift_share=drift_share,
    )
    metrics = [
        summary,
        *(ColumnValueDrift(column=t.column, method=t.method, threshold=t.threshold) for t in everything),
    ]
    with np.errstate(divide="ignore", invalid="ignore"):  # Evidently's column stats divide by 0 on empty columns
        snapshot = Report(metrics).run(
            current_data=_LazyStatsDataset(current[names], definition),
            reference_data=_LazyStatsDataset(reference[names], definition),
        )

    snapshot_dict = snapshot.dict()
    results = read_columns(snapshot_dict, tests)
    drifted = sum(r.drifted for r in results)
    prediction = None
    if prediction_column is not None and prediction_test is not None:
        (p,) = read_columns(snapshot_dict, [prediction_test])
        prediction = PredictionDrift(
            method=p.method,
            threshold=p.threshold,
            value=p.value,
            drifted=p.drifted,
            reference_mean=float(_finite(reference[prediction_column]).mean()),
            current_mean=float(_finite(current[prediction_column]).mean()),
        )
    result = DriftResult(
        columns=results,
        n_columns=len(results),
        drifted_columns=drifted,
        drifted_share=drifted / len(results),
        prediction=prediction,
        drift_share=drift_share,
    )
    return snapshot, result


def _check_prediction(reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    if name in columns:
        raise ValueError(f"prediction column {name!r} is also among the feature columns")
    for side, frame in (("reference", reference), ("current", current)):
        if name not in frame.columns:
            raise ValueError(f"prediction column {name!r} not in the {side} data")
        series = frame[name]
        if _kind(series) != "numeric":
            raise ValueError(f"prediction column {name!r} is not numeric in the {side} data ({series.dtype})")
        if _finite(series).size == 0:
            raise ValueError(f"prediction column {name!r} has no value in the {side} data")


def _with_missing_share(tests: list[ColumnTest], reference: pd.DataFrame, current: pd.DataFrame) -> list[ColumnTest]:
    """`tests`, with `MISSING_SHARE` for columns that have no value on one side or both."""
    return [
        replace(t, method=MISSING_SHARE, threshold=MISSING_SHARE_THRESHOLD)
        if _no_values(reference[t.column], t.kind) or _no_values(current[t.column], t.kind)
        else t
        for t in tests
    ]


# Evidently metrics. A metric is bound to its calculation class by the calculation's generic
# parameter (`MetricCalculation.__init_subclass__`), so these bind only our own metric classes.


class ColumnValueDrift(ValueDrift):
    """Evidently `ValueDrift` of one column with an explicit method and threshold, rendered lightly.

    The statistic is Evidently's registered test for `method`, on the column's non-missing values
    (sorted first, which changes no two-sample statistic); `MISSING_SHARE` compares missing shares.
    Rendered as one histogram of reference and current values titled with the verdict.
    """

    class Config:
        # Evidently's prefix: dashboard panels (`PanelMetric(metric="ColumnValueDrift")`) prepend it.
        type_alias = "evidently:metric_v2:ColumnValueDrift"


class ColumnsDriftCount(DriftedColumnsCount):
    """Evidently `DriftedColumnsCount` that reuses the report's `ColumnValueDrift` results.

    Needs `columns`, `per_column_method` and `per_column_threshold`; counts and lists the drifted
    columns without testing anything again (Evidently's own recomputes every column).
    """

    class Config:
        type_alias = "evidently:metric_v2:ColumnsDriftCount"


class _LazyStatsDataset(PandasDataset):
    """Evidently's pandas `Dataset`, with its per-column statistics computed when first asked for.

    `PandasDataset` computes min, max, mean, std, quartiles and infinite counts of every column when
    it is built: 0.6 s of a 2.7 s report at 100k rows a side x 40 columns, and no metric here reads
    them (Evidently's own metrics read only the row and column counts).
    """

    def _collect_stats(self, column_type: ColumnType, data: pd.Series) -> Any:
        return None  # computed by `stats`

    def stats(self) -> DatasetStats:
        stats = self._dataset_stats
        for column, value in stats.column_stats.items():
            if value is None:
                column_type = self._data_definition.get_column_type(column)
                stats.column_stats[column] = super()._collect_stats(column_type, self._data[column])
        return stats


def _present(series: pd.Series, column_type: ColumnType) -> pd.Series:
    if column_type == ColumnType.Numerical:
        values = _finite(series)
        values.sort()
        return pd.Series(values, name=series.name, copy=False)
    return series[series.notna()]


def _missing_share(series: pd.Series, column_type: ColumnType) -> float:
    if column_type == ColumnType.Numerical and pd.api.types.is_numeric_dtype(series.dtype):
        return 1.0 - _finite(series).size / len(series)
    return float(series.isna().mean())


class _ColumnValueDriftCalculation(SingleValueCalculation[ColumnValueDrift]):
    def calculate(self, context: Any, current_data: Dataset, reference_data: Dataset | None) -> SingleValue:
        metric = self.metric
        if reference_data is None:
            raise ValueError("value drift needs reference data")
        if metric.method is None or metric.threshold is None:
            raise ValueError(f"ColumnValueDrift of {metric.column!r} needs an explicit method and threshold")
        column = current_data.column(metric.column)
        column_type = column.type
        current = column.data
        reference = reference_data.column(metric.column).data
        if metric.method == MISSING_SHARE:
            shares = (_missing_share(reference, column_type), _missing_share(current, column_type))
            value = abs(shares[1] - shares[0])
            drifted = is_drifted(MISSING_SHARE, metric.threshold, value)
            result = self.result(value)
            result.widget = [
                counter(
                    title=_title(metric.column, drifted, MISSING_SHARE, value, metric.threshold),
                    counters=[
                        CounterData("reference: missing share", f"{shares[0]:.1%}"),
                        CounterData("current: missing share", f"{shares[1]:.1%}"),
                    ],
                    size=WidgetSize.HALF,
                )
            ]
            return result
        ref, cur = _present(reference, column_type), _present(current, column_type)
        for side, values in (("reference", ref), ("current", cur)):
            if values.empty:
                raise ValueError(f"column {metric.column!r} has no value in the {side} data (use {MISSING_SHARE!r})")
        stattest = stattests.get_stattest(ref, cur, column_type, metric.method)
        outcome = stattest(ref, cur, column_type, metric.threshold)
        value = float(outcome.drift_score)
        drifted = is_drifted(metric.method, metric.threshold, value)
        result = self.result(value)
        title = _title(metric.column, drifted, metric.method, value, metric.threshold)
        if column_type == ColumnType.Numerical:
            title += f"; mean {ref.mean():.4g} -> {cur.mean():.4g}"
            traces, layout = _numeric_histogram(ref.to_numpy(), cur.to_numpy(), metric.nbinsx or _HISTOGRAM_BINS)
        else:
            traces, layout = _category_bars(ref, cur)
        layout["xaxis"]["title"] = {"text": metric.column}
        result.widget = [plotly_data(title=title, data=traces, layout=layout, size=WidgetSize.HALF)]
        return result

    def display_name(self) -> str:
        return f"Value drift for {self.metric.column}"


def _title(column: str, drifted: bool, method: str, value: float, threshold: float) -> str:
    verdict = "DRIFT" if drifted else "no drift"
    return f"{column}: {verdict} ({method} {value:.4g}, threshold {threshold:g})"


def _bars(x: list[Any], reference: np.ndarray, current: np.ndarray) -> list[dict[str, Any]]:
    return [
        {"type": "bar", "name": "reference", "x": x, "y": reference.round(3).tolist(),
         "marker": {"color": _REFERENCE_COLOR}, "opacity": 0.6},
        {"type": "bar", "name": "current", "x": x, "y": current.round(3).tolist(),
         "marker": {"color": _CURRENT_COLOR}, "opacity": 0.6},
    ]  # fmt: skip


def _numeric_histogram(ref: np.ndarray, cur: np.ndarray, bins: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Percent of values per bin, shared bins over both samples (both sorted ascending)."""
    low, high = min(ref[0], cur[0]), max(ref[-1], cur[-1])
    if low == high:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)

    def percent(values: np.ndarray) -> np.ndarray:
        positions = np.searchsorted(values, edges, side="left")
        positions[-1] = values.size  # the last bin includes its right edge
        return np.diff(positions) * 100.0 / values.size

    centers = ((edges[:-1] + edges[1:]) / 2).round(6).tolist()
    layout = {"barmode": "overlay", "bargap": 0, "xaxis": {}, "yaxis": {"title": {"text": "% of values"}}}
    return _bars(centers, percent(ref), percent(cur)), layout


def _category_bars(ref: pd.Series, cur: pd.Series) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Percent of values per category (the most frequent `_MAX_CATEGORIES`)."""
    shares = pd.DataFrame(
        {"reference": ref.value_counts(normalize=True), "current": cur.value_counts(normalize=True)}
    ).fillna(0.0)
    shares = shares.loc[shares.max(axis=1).sort_values(ascending=False).index[:_MAX_CATEGORIES]] * 100.0
    layout = {"barmode": "group", "xaxis": {"type": "category"}, "yaxis": {"title": {"text": "% of values"}}}
    x = [str(v) for v in shares.index]
    return _bars(x, shares["reference"].to_numpy(), shares["current"].to_numpy()), layout


class _ColumnsDriftCountCalculation(CountCalculation[ColumnsDriftCount]):
    def calculate(self, context: Any, current_data: Dataset, reference_data: Dataset | None) -> Any:
        metric = self.metric
        if reference_data is None:
            raise ValueError("drift needs reference data")
        if not metric.columns or metric.per_column_method is None or metric.per_column_threshold is None:
            raise ValueError("ColumnsDriftCount needs columns, per_column_method and per_column_threshold")
        rows = []
        for column in metric.columns:
            method, threshold = str(metric.per_column_method[column]), float(metric.per_column_threshold[column])
            drift = ColumnValueDrift(column=column, method=method, threshold=threshold)
            value = float(context.calculate_metric(drift.to_calculation()).value)  # cached by the Report
            kind = "numeric" if current_data.column(column).type == ColumnType.Numerical else "categorical"
            rows.append((column, kind, method, threshold, value, is_drifted(method, threshold, value)))
        drifted = sum(r[5] for r in rows)
        share = drifted / len(rows)
        result = self.result(drifted, share)
        rows.sort(key=lambda r: not r[5])  # drifted first, otherwise in column order
        result.widget = [
            counter(
                title="Feature drift",
                counters=[
                    CounterData("columns tested", str(len(rows))),
                    CounterData("drifted columns", str(drifted)),
                    CounterData("share of drifted columns", f"{share:.1%}"),
                    CounterData(
                        f"dataset drift (share >= {metric.drift_share:.0%})",
                        "DETECTED" if share >= metric.drift_share else "not detected",
                    ),
                ],
            ),
            table_data(
                title="Drift per column (drifted first)",
                column_names=["column", "kind", "method", "threshold", "value", "drift"],
                data=[[c, k, m, f"{t:g}", f"{v:.4g}", "DRIFT" if d else "no"] for c, k, m, t, v, d in rows],
            ),
        ]
        result.widget[-1].pageSize = len(rows)
        return result

    def display_name(self) -> str:
        return "Count of drifted columns"

    def share_display_name(self) -> str:
        return "Share of drifted columns"
