"""The prediction log: rows appended off the request path, written atomically, nothing lost on close."""

from __future__ import annotations

import datetime as dt
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from core import names
from core.prediction_log import read_prediction_log
from serving.prediction_log import PredictionLog


def test_rows_are_written_in_parts_and_read_back(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_rows=3, flush_seconds=60)
    day1 = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
    rows = [{"f": float(i), "plan": "gold", "gap": math.nan} for i in range(7)]
    for start in (0, 3, 6):  # a part file once 3 rows wait
        stop = min(start + 3, 7)
        ids = [f"C{i}" for i in range(start, stop)]
        log.append(ids, "3", rows[start:stop], [i / 10 for i in range(start, stop)], now=day1)
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


def test_frames_and_columns_are_logged_by_the_columns_named(tmp_path: Path) -> None:
    """The service hands over its rows as a DataFrame or as columns; the writer makes Arrow columns of them in bulk."""
    log = PredictionLog(tmp_path, flush_rows=10_000, flush_seconds=3600)
    frame = pd.DataFrame(
        {"customer_id": ["a", "b"], "f": [1.25, math.nan], "plan": ["gold", None], "big": [1e300, 0.1 + 0.2]}
    )
    log.append(["a", "b"], "7", frame, [0.25, 0.75], columns=["f", "plan", "big"])
    columns = {"f": [2.5, None], "plan": [None, "basic"], "big": [-1e300, 7.0], "customer_id": ["c", "d"]}
    log.append(["c", "d"], "7", columns, [0.5, 0.5], columns=["f", "plan", "big"])
    log.append(["e"], "7", [{"f": 3.0, "plan": "gold", "big": 1.0}], [0.5])  # one dict per row
    log.append(["f"], "7", {"f": [4.0], "plan": ["x"], "big": [2.0]}, [0.5])  # a second run of columns
    log.close()
    logged = read_prediction_log(tmp_path).set_index(names.CUSTOMER_ID)
    assert set(logged.columns) == {"logged_at", "model_version", names.PREDICTION, "f", "plan", "big"}
    assert logged.loc["a", "f"] == 1.25 and logged.loc["a", "plan"] == "gold" and logged.loc["a", "big"] == 1e300
    assert math.isnan(logged.loc["b", "f"]) and logged.loc["b", "plan"] is None
    assert logged.loc["b", "big"] == 0.1 + 0.2  # float64 columns: every digit kept
    assert logged.loc["c", "f"] == 2.5 and math.isnan(logged.loc["d", "f"]) and logged.loc["d", "plan"] == "basic"
    assert logged.loc["c", "big"] == -1e300 and logged.loc["e", "plan"] == "gold" and logged.loc["f", "big"] == 2.0
    assert logged[names.PREDICTION].tolist() == [0.25, 0.75, 0.5, 0.5, 0.5, 0.5]


def test_rows_and_probabilities_must_match(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    with pytest.raises(ValueError, match="2 customer ids, 1 feature rows and 2 probabilities"):
        log.append(["a", "b"], "1", [{"x": 1.0}], [0.1, 0.2])
    log.close()


def test_each_feature_is_a_typed_column_of_its_own(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_rows=10_000, flush_seconds=3600)
    day = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
    # Two model versions with different features in one part file; integers from the online store.
    log.append(["a", "b"], "1", {"f": [1, 2.5], "plan": ["gold", None]}, [0.1, 0.2], now=day)
    log.append(["c"], "2", {"f": [math.nan], "renew": [True]}, [0.3], now=day)
    log.append(["d"], "2", {"f": [1.0], "odd": ["x"]}, [0.4], now=day)
    log.append(["e"], "2", {"f": [2.0], "odd": [3.5]}, [0.5], now=day)  # a feature mixing kinds: as text
    log.close()
    (part,) = tmp_path.glob("date=2025-06-01/part-*.parquet")
    schema = pq.read_schema(part)
    assert schema.names == [
        "logged_at", names.CUSTOMER_ID, "model_version", names.PREDICTION, "feature.f", "feature.plan",
        "feature.renew", "feature.odd",
    ]  # fmt: skip
    assert str(schema.field("feature.f").type) == "double" and str(schema.field("feature.plan").type) == "string"
    assert str(schema.field("feature.odd").type) == "string"
    logged = read_prediction_log(tmp_path).set_index(names.CUSTOMER_ID)
    assert logged["f"].tolist()[:2] == [1.0, 2.5] and math.isnan(logged.loc["c", "f"])
    assert logged.loc["b", "plan"] is None and logged.loc["c", "plan"] is None and logged.loc["c", "renew"]
    assert logged.loc["d", "odd"] == "x" and logged.loc["e", "odd"] == "3.5" and logged.loc["a", "odd"] is None


def test_parts_of_the_json_format_are_still_read(tmp_path: Path) -> None:
    """Logs written before the features had columns of their own hold them as JSON text."""
    old = pd.DataFrame(
        {
            "logged_at": pd.to_datetime(["2025-06-01 10:00"], utc=True),
            names.CUSTOMER_ID: ["old"],
            "model_version": ["1"],
            names.PREDICTION: [0.5],
            "features": ['{"f": 1.5, "plan": "gold"}'],
        }
    )
    (tmp_path / "date=2025-06-01").mkdir()
    old.to_parquet(tmp_path / "date=2025-06-01" / "part-20250601T100000000000-old.parquet", index=False)
    log = PredictionLog(tmp_path, flush_rows=10_000, flush_seconds=3600)
    log.append(["new"], "2", {"f": [2.5], "plan": ["basic"]}, [0.7], now=dt.datetime(2025, 6, 1, 11, tzinfo=dt.UTC))
    log.close()
    logged = read_prediction_log(tmp_path).sort_values("logged_at")
    assert logged[names.CUSTOMER_ID].tolist() == ["old", "new"]
    assert logged["f"].tolist() == [1.5, 2.5] and logged["plan"].tolist() == ["gold", "basic"]
    assert "features" not in logged.columns


def test_float_arrays_are_logged_as_the_same_values_in_lists(tmp_path: Path) -> None:
    """/score_features hands over its numeric features as float64 arrays (NaN for null): the part file
    is the one the same values as Python lists give, down to a column with no value known."""
    day = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
    arrays = {"f": np.array([1.5, math.nan, -1e300]), "gone": np.full(3, math.nan), "plan": ["a", None, "b"]}
    lists = {"f": [1.5, None, -1e300], "gone": [None, None, None], "plan": ["a", None, "b"]}
    for name, columns in (("arrays", arrays), ("lists", lists)):
        log = PredictionLog(tmp_path / name, flush_rows=10_000, flush_seconds=3600)
        log.append(["a", "b", "c"], "1", columns, [0.1, 0.2, 0.3], now=day)
        log.append(["d"], "1", {"f": np.array([2.0]), "gone": np.array([math.nan]), "plan": ["c"]}, [0.4], now=day)
        log.close()
    (from_arrays,) = (tmp_path / "arrays").glob("date=*/part-*.parquet")
    (from_lists,) = (tmp_path / "lists").glob("date=*/part-*.parquet")
    got, want = pq.read_table(from_arrays), pq.read_table(from_lists)
    assert got.schema == want.schema and str(got.schema.field("feature.gone").type) == "null"
    assert got.equals(want)
    assert got.column("feature.f").to_pylist() == [1.5, None, -1e300, 2.0]


def _wait_for(condition: Callable[[], bool], seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _running(pid: int) -> bool:
    """Whether process `pid` exists and is no zombie (Linux: /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc (Linux)")


@needs_proc
def test_the_writer_process_outlives_a_shutdown_signal(tmp_path: Path) -> None:
    """A server's shutdown may signal its whole process group; the log's writer keeps going until the log closes."""
    log = PredictionLog(tmp_path, flush_rows=1, flush_seconds=3600)
    log.append(["a"], "1", {"x": [1.0]}, [0.1])
    assert _wait_for(lambda: log.written == 1)
    assert log._writer is not None
    writer = log._writer.submit(os.getpid).result()
    assert writer != os.getpid()
    for sig in (signal.SIGTERM, signal.SIGINT):
        os.kill(writer, sig)
    log.append(["b"], "1", {"x": [2.0]}, [0.2])
    log.close()
    assert log.written == 2 and sorted(read_prediction_log(tmp_path)[names.CUSTOMER_ID]) == ["a", "b"]
    assert not _running(writer)  # closing the log ends it


@needs_proc
def test_a_dead_writer_process_is_replaced(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The writer killed outright (out of memory, say): the next flush starts another, and nothing queued is lost."""
    log = PredictionLog(tmp_path, flush_rows=1, flush_seconds=3600)
    log.append(["a"], "1", {"x": [1.0]}, [0.1])
    assert _wait_for(lambda: log.written == 1)
    assert log._writer is not None
    writer = log._writer.submit(os.getpid).result()
    os.kill(writer, signal.SIGKILL)
    assert _wait_for(lambda: not _running(writer), 15)
    log.append(["b"], "1", {"x": [2.0]}, [0.2])
    log.close()
    assert log.written == 2 and sorted(read_prediction_log(tmp_path)[names.CUSTOMER_ID]) == ["a", "b"]
    assert "the writer process died; starting another" in caplog.text


@needs_proc
def test_the_writer_process_ends_with_its_parent(tmp_path: Path) -> None:
    """A server killed outright leaves no writer process behind."""
    script = (
        "import os, sys, time\n"
        "from serving.prediction_log import PredictionLog\n"
        "log = PredictionLog(sys.argv[1], flush_rows=1)\n"
        "log.append(['a'], '1', {'x': [1.0]}, [0.1])\n"
        "while log.written < 1: time.sleep(0.05)\n"
        "print(log._writer.submit(os.getpid).result(), flush=True)\n"
        "os._exit(0)\n"  # no close: as if killed
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120)
    writer = int(done.stdout.split()[-1])
    assert _wait_for(lambda: not _running(writer), 15)
    assert len(read_prediction_log(tmp_path)) == 1


@pytest.mark.parametrize("writer_process", [True, False])
def test_a_failed_write_is_reported_and_later_rows_are_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, writer_process: bool
) -> None:
    (tmp_path / "date=2025-06-01").write_text("a file where the day's folder should be")
    log = PredictionLog(tmp_path, flush_rows=1, flush_seconds=3600, writer_process=writer_process)
    log.append(["lost"], "1", {"x": [1.0]}, [0.1], now=dt.datetime(2025, 6, 1, tzinfo=dt.UTC))
    log.append(["kept"], "1", {"x": [2.0]}, [0.2], now=dt.datetime(2025, 6, 2, tzinfo=dt.UTC))
    log.close()
    assert log.written == 1 and read_prediction_log(tmp_path)[names.CUSTOMER_ID].tolist() == ["kept"]
    assert f"prediction log: 1 rows could not be written to {tmp_path}" in caplog.text
