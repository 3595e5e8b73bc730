"""The event-to-feature lag summary: percentiles over events, the window, the newest event."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from crm.freshness import NO_EVENTS, append_record, freshness_of, record, summarize

T0 = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)


def _batch(written_s: float, events: int, lag_s: float) -> dict[str, object]:
    written = T0 + dt.timedelta(seconds=written_s)
    return record(written, events, written - dt.timedelta(seconds=lag_s), written - dt.timedelta(seconds=lag_s + 1))


def test_percentiles_count_each_event_with_its_batch_lag() -> None:
    records = [_batch(1, 98, 0.1), _batch(2, 1, 0.5), _batch(3, 1, 2.0)]
    fresh = summarize(records, T0, T0 + dt.timedelta(minutes=1))
    assert (fresh.events, fresh.batches) == (100, 3)
    assert fresh.lag_p50_s == pytest.approx(0.1)
    assert fresh.lag_p99_s == pytest.approx(0.5)
    assert fresh.lag_max_s == pytest.approx(2.0)
    assert fresh.event_lag_p50_s == pytest.approx(1.5)
    assert fresh.newest_event == T0 + dt.timedelta(seconds=0.5)  # the second batch: written at 2 s, 1.5 s old
    assert "100 streamed events in 3 batches" in fresh.describe() and "p50 100 ms" in fresh.describe()


def test_only_the_window_counts_and_an_empty_one_says_so() -> None:
    records = [_batch(-10, 5, 0.1), _batch(70, 5, 0.1)]
    fresh = summarize(records, T0, T0 + dt.timedelta(minutes=1))
    assert fresh.events == 0 and fresh.lag_p50_s is None
    assert fresh.describe() == NO_EVENTS


def test_the_log_file_round_trips_and_skips_a_line_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "stream" / "freshness.jsonl"
    assert freshness_of(path, T0, T0 + dt.timedelta(hours=1)).describe() == NO_EVENTS
    append_record(path, _batch(5, 3, 0.25))
    with path.open("a") as out:
        out.write('{"written_at": "2026-01-01T12:00:06+00:00", "eve')
    fresh = freshness_of(path, T0, T0 + dt.timedelta(hours=1))
    assert (fresh.events, fresh.lag_p99_s) == (3, pytest.approx(0.25))
