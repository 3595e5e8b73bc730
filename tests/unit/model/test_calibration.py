"""The calibrator that every scoring path applies: it calibrates and it keeps the model's ranking."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from model.calibration import RANK_SLOPE, calibrate, calibrator_spec, fit_calibrator


def test_isotonic_calibration_keeps_the_ranking_and_moves_probabilities_by_at_most_the_slope() -> None:
    rng = np.random.default_rng(0)
    raw = rng.random(5_000) ** 2
    y = (rng.random(raw.size) < np.sqrt(raw) * 0.5).astype(int)
    spec = calibrator_spec(fit_calibrator(raw[:2_500], y[:2_500], "isotonic"))
    calibrated = calibrate(spec, raw[2_500:])
    # Isotonic regression is flat in its blocks; the map stays strictly increasing all the same.
    order = np.argsort(raw[2_500:])
    assert (np.diff(calibrated[order]) > 0).all()
    assert roc_auc_score(y[2_500:], calibrated) == roc_auc_score(y[2_500:], raw[2_500:])
    flat = np.interp(raw[2_500:], np.asarray(spec["x"]), np.asarray(spec["y"]))
    assert np.abs(calibrated - np.clip(flat, spec["floor"], 1 - spec["floor"])).max() <= RANK_SLOPE
    assert abs(calibrated.mean() - y[2_500:].mean()) < 0.02  # and it calibrates
