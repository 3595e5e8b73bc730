"""The training set's fingerprint: equal for equal frames, different for any changed value, order or column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from training.lineage import fingerprint


def _frame(rows: int = 1_000) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(rows)],
            "event_timestamp": pd.date_range("2025-01-06", periods=rows, freq="h", tz="UTC"),
            "churned": rng.integers(0, 2, rows),
            "spend": rng.gamma(2.0, 30.0, rows),
            "visits": rng.integers(0, 9, rows).astype("int32"),
            "ratio": rng.random(rows).astype("float32"),
            "plan": pd.Categorical(rng.choice(["basic", "plus"], rows)),
            "active": rng.random(rows) > 0.5,
            "signup": pd.date_range("2020-01-01", periods=rows, freq="D"),
        }
    )
    frame.loc[::7, "spend"] = np.nan
    return frame


def test_equal_frames_share_a_fingerprint_whatever_their_index_or_blocks() -> None:
    frame = _frame()
    digest = fingerprint(frame)
    assert len(digest) == 16 and digest == fingerprint(frame.copy())
    assert fingerprint(frame.set_axis(np.arange(5, 5 + len(frame)))) == digest
    # One block per column, as a retrieval converts it, or consolidated blocks: the same frame.
    split = pa.Table.from_pandas(frame, preserve_index=False).to_pandas(split_blocks=True)
    assert fingerprint(split) == digest


def test_any_changed_value_row_order_name_or_type_changes_it() -> None:
    frame = _frame()
    digest = fingerprint(frame)
    changed = {
        "one float": frame.assign(spend=frame["spend"].where(frame.index != 3, 1.0)),
        "a missing value": frame.assign(spend=frame["spend"].where(frame.index != 4)),
        "one id": frame.assign(customer_id=frame["customer_id"].where(frame.index != 5, "X")),
        "one category": frame.assign(
            plan=frame["plan"].where(frame.index != 6, "plus" if frame.loc[6, "plan"] == "basic" else "basic")
        ),
        "one date": frame.assign(
            event_timestamp=frame["event_timestamp"].where(frame.index != 8, pd.Timestamp("2030-01-01", tz="UTC"))
        ),
        "one flag": frame.assign(active=frame["active"] ^ (frame.index == 9)),
        "two rows swapped": frame.iloc[[1, 0, *range(2, len(frame))]].reset_index(drop=True),
        "a column renamed": frame.rename(columns={"visits": "visit_count"}),
        "a column's type": frame.assign(visits=frame["visits"].astype("float64")),
        "a row less": frame.iloc[:-1],
    }
    for what, other in changed.items():
        assert fingerprint(other) != digest, what
    assert fingerprint(frame.iloc[:0]) != fingerprint(frame.iloc[:0].drop(columns="plan"))
