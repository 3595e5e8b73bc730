"""A monitoring run's current data: the rows of its window, from the prediction log or through Feast.

In serving mode the current data is the prediction log's rows of the window: what the service
scored, with the features it used. In batch mode it is the feature snapshots observed in the
window, fetched through Feast (as training saw them) and scored by the champion. Auto mode takes
the log when it has rows in the window.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from core import names
from core.settings import Settings
from features.paths import FeaturePaths
from features.pipeline import historical_features, open_store
from model.champion import RegisteredModel

Mode = Literal["auto", "serving", "batch"]
"""How a run takes its current data (`monitoring.mode`): the prediction log, Feast, or the log when it has rows."""


@dataclass(frozen=True)
class Window:
    """A half-open time window [start, end), UTC."""

    start: dt.datetime
    end: dt.datetime

    def shifted(self, delta: dt.timedelta) -> Window:
        """The same window moved by `delta`."""
        return Window(self.start + delta, self.end + delta)

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M}"


def serving_rows(settings: Settings, window: Window) -> pd.DataFrame:
    """The prediction log's rows logged in `window`: customer_id, time, features, churn_probability."""
    from core.prediction_log import LOGGED_AT, read_prediction_log

    frame = read_prediction_log(settings.path(settings.serving.prediction_log_dir), window.start, window.end)
    return frame.rename(columns={LOGGED_AT: names.EVENT_TIMESTAMP})


def snapshot_keys(settings: Settings, window: Window) -> pd.DataFrame:
    """customer_id and event_timestamp of the feature snapshots observed in `window`."""
    paths = FeaturePaths.of(settings)
    if not paths.snapshots.exists():
        raise FileNotFoundError(f"{paths.snapshots} does not exist: run `churn features build` first")
    keys = pd.read_parquet(
        paths.snapshots,
        columns=[names.CUSTOMER_ID, names.EVENT_TIMESTAMP],
        filters=[
            (names.EVENT_TIMESTAMP, ">=", pd.Timestamp(window.start)),
            (names.EVENT_TIMESTAMP, "<", pd.Timestamp(window.end)),
        ],
    )
    return keys.reset_index(drop=True)


def batch_rows(settings: Settings, champion: RegisteredModel, keys: pd.DataFrame) -> pd.DataFrame:
    """Feature rows of snapshot keys through Feast (as training saw them), scored by the champion."""
    if keys.empty:
        return keys.assign(**{names.PREDICTION: pd.Series(dtype=float)})
    frame = historical_features(open_store(settings), keys, settings.training.feature_service)
    frame[names.PREDICTION] = champion.bundle.probabilities(frame)
    return frame


def choose_mode(settings: Settings, mode: Mode, window: Window) -> tuple[Literal["serving", "batch"], pd.DataFrame]:
    """The mode to use and, for serving mode, its rows (auto: serving when the log has rows in the window)."""
    if mode == "batch":
        return "batch", pd.DataFrame()
    rows = serving_rows(settings, window)
    if mode == "serving" or not rows.empty:
        return "serving", rows
    return "batch", pd.DataFrame()
