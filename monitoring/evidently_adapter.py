"""The one module that uses Evidently internals: drift metrics that compute what Evidently's do, fast.

Why it exists. Evidently's public drift metrics (`ValueDrift`, `DriftedColumnsCount`) miss the
drift report's time budget (`bench/drift.py`: at most `TARGET_RATIO` times a SciPy `ks_2samp` loop
over the same columns) by a wide margin, and no public option makes them cheaper. Profiled, most
of `ValueDrift` is building two Plotly figure objects per column inside its calculation (Plotly's
property validation); the rest copies and re-aggregates the whole current frame per column, and
`DriftedColumnsCount` tests every column again through Evidently's legacy metrics. The metrics here
give the same values (the same registered statistic with the same method and threshold, on the
same non-missing values) with one light histogram per column; the statistic is all they compute.

What it relies on, none of it public API (so `tests/unit/monitoring/test_evidently_adapter.py` pins each, and
checks the values against Evidently's own `ValueDrift` and `DriftedColumnsCount`):

- a metric calculation is bound to its metric by the calculation's generic parameter
  (`SingleValueCalculation[FastValueDrift]`, as Evidently binds its own metrics),
  and returns `self.result(...)` with its `widget` list set;
- `Context.calculate_metric(metric.to_calculation())` returns a metric's cached result (the count
  reads the columns' values from it instead of testing them again);
- `evidently.legacy.calculations.stattests.get_stattest`, the registry `ValueDrift` itself calls;
- the widget helpers of `evidently.legacy.renderers.html_widgets`.

`monitoring.drift.drift_report(engine="public")` runs Evidently's own metrics instead.

It also holds two metrics of the monitoring report's performance part that Evidently lacks, bound
to their calculations the same way: `MaturedLabels`, the part's heading (which window's labels,
known when, how many churners, the champion's test ROC AUC), and `PrAuc`, the area under the
precision-recall curve (average precision) of the matured labels' churn probabilities.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from evidently import ColumnType, Dataset
from evidently.core.metric_types import (
    CountCalculation,
    CountValue,
    SingleValue,
    SingleValueCalculation,
    SingleValueMetric,
)
from evidently.legacy.calculations.stattests import get_stattest
from evidently.legacy.renderers.html_widgets import CounterData, WidgetSize, counter, plotly_data, table_data
from evidently.metrics import DriftedColumnsCount, ValueDrift
from sklearn.metrics import average_precision_score

from monitoring.drift_methods import finite, is_drifted

_HISTOGRAM_BINS = 30
_MAX_CATEGORIES = 30
_REFERENCE_COLOR = "#4d4d4d"
_CURRENT_COLOR = "#ed0400"


class FastValueDrift(ValueDrift):
    """Evidently's `ValueDrift` of one column with an explicit method and threshold, computed lightly.

    Its value is the registered statistic of `method` on the column's non-missing values (sorted
    first, which changes no two-sample statistic but halves SciPy's Wasserstein distance, which
    sorts its inputs). Rendered as one histogram of reference and current values, titled with the
    verdict (`monitoring.drift_methods.is_drifted`).
    """

    class Config:
        # Evidently's prefix: dashboard panels (`PanelMetric(metric="FastValueDrift")`) prepend it.
        type_alias = "evidently:metric_v2:FastValueDrift"


class FastDriftedColumnsCount(DriftedColumnsCount):
    """Evidently's `DriftedColumnsCount` that counts from the report's `FastValueDrift` results.

    Needs `columns`, `per_column_method` and `per_column_threshold`; tests nothing again. Rendered
    as counters and a table of every column's method, threshold, value and verdict, drifted first.
    """

    class Config:
        type_alias = "evidently:metric_v2:FastDriftedColumnsCount"


def _present(series: pd.Series, column_type: ColumnType) -> pd.Series:
    """The values a test compares: finite and sorted for a numeric column, not missing otherwise."""
    if column_type == ColumnType.Numerical:
        values = finite(series)
        values.sort()
        return pd.Series(values, name=series.name, copy=False)
    return series[series.notna()]


class _FastValueDriftCalculation(SingleValueCalculation[FastValueDrift]):
    def calculate(self, context: Any, current_data: Dataset, reference_data: Dataset | None) -> SingleValue:
        metric = self.metric
        if reference_data is None:
            raise ValueError("value drift needs reference data")
        if metric.method is None or metric.threshold is None:
            raise ValueError(f"FastValueDrift of {metric.column!r} needs an explicit method and threshold")
        column = current_data.column(metric.column)
        column_type = column.type
        ref = _present(reference_data.column(metric.column).data, column_type)
        cur = _present(column.data, column_type)
        for side, values in (("reference", ref), ("current", cur)):
            if values.empty:
                raise ValueError(f"column {metric.column!r} has no value in the {side} data")
        stattest = get_stattest(ref, cur, column_type, metric.method)
        value = float(stattest(ref, cur, column_type, metric.threshold).drift_score)
        result = self.result(value)
        verdict = "DRIFT" if is_drifted(metric.method, metric.threshold, value) else "no drift"
        title = f"{metric.column}: {verdict} ({metric.method} {value:.4g}, threshold {metric.threshold:g})"
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


class _FastDriftedColumnsCountCalculation(CountCalculation[FastDriftedColumnsCount]):
    def calculate(self, context: Any, current_data: Dataset, reference_data: Dataset | None) -> CountValue:
        metric = self.metric
        if reference_data is None:
            raise ValueError("drift needs reference data")
        if not metric.columns or metric.per_column_method is None or metric.per_column_threshold is None:
            raise ValueError("FastDriftedColumnsCount needs columns, per_column_method and per_column_threshold")
        rows = []
        for column in metric.columns:
            method, threshold = str(metric.per_column_method[column]), float(metric.per_column_threshold[column])
            drift = FastValueDrift(column=column, method=method, threshold=threshold)
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


class MaturedLabels(SingleValueMetric):
    """The number of labelled rows, rendered as the heading of the performance part of a report."""

    target: str
    """The label column (0 or 1): its sum is the number of churners shown."""
    window: str
    """The window whose labels have matured."""
    known_at: str
    """When they were known (the run's window end)."""
    champion_roc_auc: float | None = None
    """The champion's ROC AUC on its test rows at training time, shown as the baseline."""

    class Config:
        type_alias = "evidently:metric_v2:MaturedLabels"


class _MaturedLabelsCalculation(SingleValueCalculation[MaturedLabels]):
    def calculate(self, context: Any, current_data: Dataset, reference_data: Dataset | None) -> SingleValue:
        metric = self.metric
        labels = current_data.column(metric.target).data
        result = self.result(float(len(labels)))
        baseline = "-" if metric.champion_roc_auc is None else f"{metric.champion_roc_auc:.3f}"
        result.widget = [
            counter(
                title=f"Performance on matured labels: the window {metric.window}, labels known at {metric.known_at}",
                counters=[
                    CounterData("labelled rows", f"{len(labels):,}"),
                    CounterData("churners", f"{int(labels.sum()):,}"),
                    CounterData("champion's test ROC AUC", baseline),
                ],
            )
        ]
        return result

    def display_name(self) -> str:
        return "Labelled rows"


class PrAuc(SingleValueMetric):
    """PR AUC (average precision) of a binary label's predicted probabilities; Evidently has no such metric.

    Computed with scikit-learn's `average_precision_score` on the current data, the positive class 1.
    """

    target: str
    """The label column (0 or 1)."""
    probability: str
    """The predicted probability of class 1."""

    class Config:
        type_alias = "evidently:metric_v2:PrAuc"


class _PrAucCalculation(SingleValueCalculation[PrAuc]):
    def calculate(self, context: Any, current_data: Dataset, reference_data: Dataset | None) -> SingleValue:
        y = current_data.column(self.metric.target).data.to_numpy(dtype=float)
        p = current_data.column(self.metric.probability).data.to_numpy(dtype=float)
        return self.result(float(average_precision_score(y, p)))

    def display_name(self) -> str:
        return "PR AUC (average precision)"
