"""Behaviour layers (a feature cut into labelled bins) and RFM segments (recency and frequency scores).

Layer bins are fixed bounds or quantiles of a population; `layer_bounds` resolves them once per
model so that one customer gets the same label in a batch and in a single request.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from core.crm_settings import CrmSettings, Layer
from crm.columns import Frame, Numeric, height, numeric, numeric_columns, take

RFM_RECENCY = "purchases_rfm_recency"
RFM_FREQUENCY = "purchases_rfm_frequency"


def layer_edges(layer: Layer, population: pd.Series | None) -> np.ndarray:
    """The layer's bin edges, first edge -inf; quantile bounds resolved against `population`."""
    edges = np.array([bound for _, bound in layer.ordered()], dtype=float)
    if layer.method == "quantile":
        numbers = pd.Series(dtype=float) if population is None else pd.to_numeric(population, errors="coerce").dropna()
        edges = np.quantile(numbers, edges) if len(numbers) else np.full(len(edges), np.inf)
    edges[0] = -np.inf
    return edges


def layer_bounds(crm: CrmSettings, reference: pd.DataFrame | None) -> dict[str, np.ndarray]:
    """The bin edges of every layer that needs no scored rows, to compute once and pass to `early_warning`.

    Args:
        crm: The config with the layers.
        reference: The population quantile layers come from (the model's training sample); a
            quantile layer whose feature it lacks (or every quantile layer, when None) is left out,
            and `early_warning` computes it from the scored rows as without `bounds`.

    Returns:
        Layer name -> increasing bin edges (read-only), one per label, the first -inf.
    """
    out: dict[str, np.ndarray] = {}
    for name, layer in crm.layers.items():
        population = reference[layer.feature] if reference is not None and layer.feature in reference else None
        if layer.method == "quantile" and population is None:
            continue
        edges = layer_edges(layer, population)
        edges.setflags(write=False)
        out[name] = edges
    return out


def layer_codes(layer: Layer, numbers: Numeric, edges: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each value's index into the layer's labels (lowest bound first), and those labels.

    Raises:
        ValueError: `edges` does not have one bound per label.
    """
    labels = [label for label, _ in layer.ordered()]
    if len(edges) != len(labels):
        raise ValueError(f"layer on '{layer.feature}' has {len(labels)} bins but {len(edges)} bounds were given")
    x, missing = numbers
    codes = np.searchsorted(edges, x, side="right") - 1
    np.maximum(codes, 0, out=codes)
    codes[missing] = labels.index(layer.missing)
    return codes, labels


def layer_labels(
    layer: Layer, values: pd.Series, reference: pd.Series | None = None, *, bounds: np.ndarray | None = None
) -> pd.Series:
    """Each value's bin label.

    Args:
        layer: The layer's feature, bins and missing label.
        values: The feature for the customers to label.
        reference: For quantile bins, the population the quantiles come from (e.g. the model's
            training sample, so one customer gets the same label in a batch and in a single
            request); `values` itself when None.
        bounds: The layer's bin edges from `layer_bounds`; `reference` is not used then.
    """
    edges = bounds if bounds is not None else layer_edges(layer, reference if reference is not None else values)
    codes, labels = layer_codes(layer, numeric(values), edges)
    return pd.Series(take(labels, codes), index=values.index, dtype="object")


def rfm_codes(crm: CrmSettings, frame: Frame, columns: Mapping[str, Numeric]) -> tuple[np.ndarray, list[str]]:
    """Each row's index into the segment names (the configured segments, then the catch-all).

    Args:
        crm: The config with the segments.
        frame: The feature rows.
        columns: The RFM scores `frame` has, from `crm.columns.numeric_columns`.
    """
    segments = crm.rfm_segments
    names_ = [s.name for s in segments] + [crm.other_segment]
    if not segments or RFM_RECENCY not in frame or RFM_FREQUENCY not in frame:
        return np.full(height(frame), len(segments), dtype=np.intp), names_
    r, f = columns[RFM_RECENCY][0], columns[RFM_FREQUENCY][0]
    lows_r, highs_r, lows_f, highs_f = (
        np.array(bounds, dtype=float)[:, None]
        for bounds in zip(*((*s.recency, *s.frequency) for s in segments), strict=True)
    )
    covers = (r >= lows_r) & (r <= highs_r) & (f >= lows_f) & (f <= highs_f)  # segment x row
    return np.where(covers.any(axis=0), covers.argmax(axis=0), len(segments)), names_


def rfm_features(frame: Frame) -> list[str]:
    """The RFM scores `frame` has (none, recency, frequency or both)."""
    return [c for c in (RFM_RECENCY, RFM_FREQUENCY) if c in frame]


def rfm_segments(crm: CrmSettings, frame: pd.DataFrame) -> pd.Series:
    """Each row's RFM segment: the first configured segment covering its recency and frequency scores."""
    codes, segments = rfm_codes(crm, frame, numeric_columns(frame, rfm_features(frame)))
    return pd.Series(take(segments, codes), index=frame.index, dtype="object")
