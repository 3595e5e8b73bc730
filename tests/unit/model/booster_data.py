"""Small real boosters and their input rows, shared by the explainer tests (exact TreeSHAP, Saabas)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xgboost as xgb

COLORS = ["red", "green", "blue", "black", "white", "grey", "pink"]


def data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Seeded rows with numbers, missing values and a categorical of 7 levels, and a label using them all."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "a": rng.normal(0, 1, n),
            "b": rng.poisson(3, n).astype(float),
            "c": rng.exponential(5, n),
            "color": pd.Categorical(rng.choice(COLORS, n), categories=COLORS),
            "d": rng.uniform(-1, 1, n),
        }
    )
    x.loc[rng.random(n) < 0.15, "c"] = np.nan
    x.loc[rng.random(n) < 0.1, "color"] = np.nan
    logit = np.sin(3 * x["a"]) + 0.4 * x["b"] - 0.1 * x["c"].fillna(10) + x["color"].isin(["red", "pink"]) * 1.5
    y = (logit + rng.logistic(size=n) > 1.0).astype(int).to_numpy()
    return x, y


def train(params: dict[str, object], rounds: int = 30, seed: int = 1) -> xgb.Booster:
    """A booster on `data`, with categorical splits (one-hot for few levels is off: set splits)."""
    x, y = data(2_000, seed)
    base = {"objective": "binary:logistic", "max_depth": 6, "eta": 0.3, "seed": 7, "nthread": 1}
    return xgb.train({**base, **params}, xgb.DMatrix(x, label=y, enable_categorical=True), num_boost_round=rounds)


def rows_of(n: int, seed: int) -> np.ndarray:
    """The model input as the predictor builds it: float32, category codes, NaN missing, plus odd codes."""
    x, _ = data(n, seed)
    out = x.assign(color=x["color"].cat.codes.replace(-1, np.nan)).to_numpy(dtype=np.float32)
    out[:3, 3] = [7.0, 40.0, -2.0]  # codes no split has seen, past every set, negative: all go left
    out[3, :] = np.nan  # a row with nothing known
    out[4, 0] = np.float32(np.finfo(np.float32).max)
    return out
