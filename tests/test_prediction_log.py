"""The prediction log: rows appended off the request path, written atomically, nothing lost on close."""

from __future__ import annotations

import datetime as dt
import math
import time
from pathlib import Path

from churn import names
from serving.prediction_log import PredictionLog, read_prediction_log


def test_rows_are_written_in_parts_and_read_back(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_rows=3, flush_seconds=60)
    day1 = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
    rows = [{"f": float(i), "plan": "gold", "gap": math.nan} for i in range(7)]
    log.append([f"C{i}" for i in range(7)], "3", rows, [i / 10 for i in range(7)], now=day1)
    log.append(["late"], "4", [{"f": 9.0, "plan": None, "gap": 1.0}], [0.9], now=day1 + dt.timedelta(days=1))
    log.close()
    assert log.written == 8
    parts = sorted(tmp_path.glob("date=*/part-*.parquet"))
    assert {p.parent.name for p in parts} == {"date=2025-06-01", "date=2025-06-02"} and len(parts) >= 3
    assert not list(tmp_path.rglob(".tmp-*"))  # no half-written files left behind
    frame = read_prediction_log(tmp_path)
    assert len(frame) == 8 and set(frame["model_version"]) == {"3", "4"}
    first = frame.set_index(names.CUSTOMER_ID).loc["C5"]
    assert first["f"] == 5.0 and first[names.PREDICTION] == 0.5 and first["plan"] == "gold"
    assert first["gap"] is None or math.isnan(first["gap"])
    window = read_prediction_log(tmp_path, start=day1 + dt.timedelta(hours=1))
    assert window[names.CUSTOMER_ID].tolist() == ["late"]


def test_close_drains_what_was_queued(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_rows=10_000, flush_seconds=3600)  # nothing would flush on its own
    log.append([f"C{i}" for i in range(500)], "1", [{"x": 1.0}] * 500, [0.1] * 500)
    log.close()
    assert len(read_prediction_log(tmp_path)) == 500


def test_time_based_flush(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_rows=10_000, flush_seconds=0.2)
    log.append(["a"], "1", [{"x": 1.0}], [0.5])
    deadline = dt.datetime.now() + dt.timedelta(seconds=10)
    while not list(tmp_path.glob("date=*/part-*.parquet")) and dt.datetime.now() < deadline:
        time.sleep(0.05)
    assert len(read_prediction_log(tmp_path)) == 1
    log.close()
    assert read_prediction_log(tmp_path / "nothing-here").empty
