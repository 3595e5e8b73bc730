"""The (event_timestamp, customer_id) order labels are written in and Feast's training rows come in."""

from __future__ import annotations

import pandas as pd

from core import names
from features.labels import in_time_order, time_ordered


def _keys(rows: list[tuple[str, str]], index: list[int] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            names.CUSTOMER_ID: [c for _, c in rows],
            names.EVENT_TIMESTAMP: pd.to_datetime([t for t, _ in rows], utc=True),
            names.LABEL: range(len(rows)),
        },
        index=index,
    )


def test_rows_in_time_then_customer_order_are_kept_as_they_are() -> None:
    frame = _keys([("2025-01-01", "A"), ("2025-01-01", "B"), ("2025-01-08", "A")])
    assert in_time_order(frame)
    assert time_ordered(frame) is frame  # no copy, no sort
    assert in_time_order(frame.iloc[:0]) and in_time_order(frame.iloc[:1])


def test_other_orders_are_sorted_stably_and_renumbered() -> None:
    frame = _keys(
        [("2025-01-08", "A"), ("2025-01-01", "B"), ("2025-01-01", "A"), ("2025-01-01", "A")], index=[7, 3, 5, 1]
    )
    assert not in_time_order(frame)
    ordered = time_ordered(frame)
    assert list(ordered[names.CUSTOMER_ID]) == ["A", "A", "B", "A"]
    assert list(ordered[names.LABEL]) == [2, 3, 1, 0]  # equal keys keep their order
    assert list(ordered.index) == [0, 1, 2, 3]
    assert in_time_order(ordered)
    assert list(frame[names.LABEL]) == [0, 1, 2, 3]  # the input is untouched


def test_a_sorted_frame_with_another_index_is_renumbered_only() -> None:
    frame = _keys([("2025-01-01", "A"), ("2025-01-08", "A")], index=[4, 2])
    ordered = time_ordered(frame)
    assert list(ordered.index) == [0, 1]
    assert list(ordered[names.LABEL]) == [0, 1]


def test_a_missing_customer_id_is_left_to_the_sort() -> None:
    frame = _keys([("2025-01-01", "B"), ("2025-01-01", "A")])
    frame.loc[0, names.CUSTOMER_ID] = None
    assert not in_time_order(frame)
    assert list(time_ordered(frame)[names.CUSTOMER_ID]) == ["A", None]
