"""The feature pipeline on generated data through real Feast stores: incremental rebuilds,
point-in-time training sets, the TTL boundary, online lookups and `feast apply` in feature_repo/."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import names
from core.io import write_atomic_parquet
from core.settings import Settings, parse_settings
from features.feast_repo import purchases_rhythm, purchases_rhythm_columns
from features.generator.dataset import generate, write_generated
from features.ingest import ingest
from features.labels import in_time_order
from features.pipeline import (
    FeaturePaths,
    apply_features,
    build_features,
    historical_features,
    materialize,
    materialize_incremental,
    open_store,
)

REPO = Path(__file__).resolve().parents[2]
KEYS = [names.CUSTOMER_ID, names.EVENT_TIMESTAMP]


def _settings(workspace: Path) -> Settings:
    return parse_settings(
        {"workspace": str(workspace), "features": {"first_observation_after_days": 28}}, source="test", env={}
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Clean (ingested) data of 300 customers over 120 days, seeded."""
    root = tmp_path_factory.mktemp("generated")
    customers, events = write_generated(generate(300, 120, seed=11), root / "raw")
    ingest(_settings(root), customers_path=customers, events_path=events)
    return root / "clean"


def _workspace(root: Path, clean: Path) -> Settings:
    shutil.copytree(clean, root / "clean")
    return _settings(root)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(KEYS).reset_index(drop=True)


def _truncate(clean: Path, out: Path, last_day: dt.date) -> None:
    """The data as it looked when `last_day` was the newest day: later events, signups and churns unknown."""
    events = pd.read_parquet(clean / "events.parquet")
    cut = pd.Timestamp(last_day + dt.timedelta(days=1), tz="UTC")
    write_atomic_parquet(events[events[names.EVENT_TIMESTAMP] < cut], out / "events.parquet")
    customers = pd.read_parquet(clean / "customers.parquet")
    customers = customers[customers[names.SIGNUP_DATE] < cut.tz_localize(None)].copy()
    customers.loc[customers[names.CHURN_DATE] >= cut.tz_localize(None), names.CHURN_DATE] = pd.NaT
    write_atomic_parquet(customers, out / "customers.parquet")


def test_incremental_rebuild_equals_full_rebuild(tmp_path: Path, generated: Path) -> None:
    full = _workspace(tmp_path / "full", generated)
    expected = build_features(full, incremental=False)
    last = expected.last_event_day

    inc = _settings(tmp_path / "inc")
    _truncate(generated, tmp_path / "inc/clean", last - dt.timedelta(days=1))
    first = build_features(inc)
    assert first.recomputed_dates == first.observation_dates  # nothing to reuse the first time
    # A new day of events (and the signups and churns of that day) arrives.
    for name in ("events.parquet", "customers.parquet"):
        shutil.copy(generated / name, tmp_path / "inc/clean" / name)
    second = build_features(inc)

    # Only the snapshots the new day can touch (dates after it) were computed ...
    assert second.recomputed_dates == (last + dt.timedelta(days=1),)
    assert len(second.observation_dates) > 10
    # ... and the result is the full rebuild's, row for row and value for value.
    pd.testing.assert_frame_equal(
        _sorted(pd.read_parquet(second.snapshots)), _sorted(pd.read_parquet(expected.snapshots))
    )
    pd.testing.assert_frame_equal(_sorted(pd.read_parquet(second.labels)), _sorted(pd.read_parquet(expected.labels)))
    # Labels are written in time, then customer, order: the order a retrieval's rows come in.
    assert in_time_order(pd.read_parquet(expected.labels)) and in_time_order(pd.read_parquet(second.labels))
    # Nothing changed: nothing is computed.
    assert build_features(inc).recomputed_dates == ()


def test_backfilled_old_day_recomputes_everything_after_it(tmp_path: Path, generated: Path) -> None:
    settings = _workspace(tmp_path, generated)
    built = build_features(settings)
    events = pd.read_parquet(generated / "events.parquet")
    middle = built.observation_dates[len(built.observation_dates) // 2]
    late = events.iloc[[0]].assign(**{names.EVENT_TIMESTAMP: pd.Timestamp(middle, tz="UTC") - pd.Timedelta(hours=1)})
    write_atomic_parquet(pd.concat([events, late]), FeaturePaths.of(settings).clean_events)
    again = build_features(settings)
    assert again.recomputed_dates == tuple(d for d in built.observation_dates if d >= middle)
    fresh = _workspace(tmp_path / "fresh", FeaturePaths.of(settings).clean_events.parent)
    pd.testing.assert_frame_equal(
        _sorted(pd.read_parquet(again.snapshots)),
        _sorted(pd.read_parquet(build_features(fresh, incremental=False).snapshots)),
    )


def _training_set(settings: Settings) -> pd.DataFrame:
    apply_features(settings)
    return historical_features(open_store(settings), pd.read_parquet(FeaturePaths.of(settings).labels))


def test_training_set_is_point_in_time_correct(tmp_path: Path, generated: Path) -> None:
    settings = _workspace(tmp_path, generated)
    built = build_features(settings)
    before = _training_set(settings)
    labels = pd.read_parquet(built.labels)
    assert len(before) == len(labels)  # one row per entity row
    assert set(built.features) <= set(before.columns) and "purchases_overdue_ratio" in before.columns

    # Append events on and after an observation date t0 for every customer observed at t0.
    labelled = sorted(labels[names.EVENT_TIMESTAMP].unique())
    t0, t1 = labelled[len(labelled) // 2], labelled[len(labelled) // 2 + 1]
    who = labels.loc[labels[names.EVENT_TIMESTAMP] == t0, names.CUSTOMER_ID]
    extra = pd.concat(
        [
            pd.DataFrame(
                {
                    names.CUSTOMER_ID: who.to_numpy(),
                    names.EVENT_TIMESTAMP: t0 + offset,
                    names.EVENT_TYPE: kind,
                    names.AMOUNT: amount,
                    names.CATEGORY: category,
                }
            )
            for offset, kind, amount, category in [
                (pd.Timedelta(0), "purchase", 500.0, "books"),  # at the observation instant itself
                (pd.Timedelta(days=2, hours=5), "complaint", None, None),
            ]
        ]
    )
    paths = FeaturePaths.of(settings)
    events = pd.read_parquet(paths.clean_events)
    write_atomic_parquet(pd.concat([events, extra], ignore_index=True), paths.clean_events)
    rebuilt = build_features(settings)
    assert min(rebuilt.recomputed_dates) > t0.date()
    after = _training_set(settings)

    at = before[names.EVENT_TIMESTAMP] == t0
    pd.testing.assert_frame_equal(
        after[after[names.EVENT_TIMESTAMP] == t0].drop(columns=names.LABEL).reset_index(drop=True),
        before[at].drop(columns=names.LABEL).reset_index(drop=True),
    )
    # The new events are there for the next observation date: its rows did change.
    nxt_before = before[before[names.EVENT_TIMESTAMP] == t1].set_index(names.CUSTOMER_ID)
    nxt_after = after[after[names.EVENT_TIMESTAMP] == t1].set_index(names.CUSTOMER_ID)
    common = nxt_before.index.intersection(who)
    added = nxt_after.loc[common, "purchases_spend_7d"] - nxt_before.loc[common, "purchases_spend_7d"]
    assert len(common) > 50 and (added > 499.99).all()
    assert (nxt_after.loc[common, "service_complaints_7d"] >= 1).all()


def test_ttl_boundary_and_one_row_per_entity_row(tmp_path: Path, generated: Path) -> None:
    settings = _workspace(tmp_path, generated)
    built = build_features(settings)
    apply_features(settings)
    snapshots = _sorted(pd.read_parquet(built.snapshots))
    newest = snapshots[names.EVENT_TIMESTAMP].max()
    row = snapshots[snapshots[names.EVENT_TIMESTAMP] == newest].iloc[0]
    ttl = pd.Timedelta(days=settings.feast.ttl_days)
    entity = pd.DataFrame(
        {
            names.CUSTOMER_ID: [row[names.CUSTOMER_ID]] * 5,
            names.EVENT_TIMESTAMP: [
                newest - pd.Timedelta(seconds=1),  # before the newest snapshot: the previous one
                newest,  # the snapshot itself
                newest + ttl,  # the TTL's last instant: still served
                newest + ttl + pd.Timedelta(seconds=1),  # past the TTL: nothing
                newest + ttl,  # a duplicate entity row keeps its own output row
            ],
        }
    )
    out = historical_features(open_store(settings), entity)
    assert len(out) == len(entity)
    feature = "purchases_count_90d"
    out = out.set_index(names.EVENT_TIMESTAMP)
    assert out.loc[newest, feature] == row[feature]
    assert (out.loc[[newest + ttl], feature] == row[feature]).all()
    assert pd.isna(out.loc[newest + ttl + pd.Timedelta(seconds=1), feature])
    previous = snapshots[
        (snapshots[names.CUSTOMER_ID] == row[names.CUSTOMER_ID]) & (snapshots[names.EVENT_TIMESTAMP] < newest)
    ].iloc[-1]
    assert out.loc[newest - pd.Timedelta(seconds=1), feature] == previous[feature]


def test_online_store_materialize_then_incremental(tmp_path: Path, generated: Path) -> None:
    settings = _settings(tmp_path)
    _truncate(generated, tmp_path / "clean", dt.date(2025, 4, 20))
    built = build_features(settings)
    apply_features(settings)
    materialize(settings)
    store = open_store(settings)
    snapshots = _sorted(pd.read_parquet(built.snapshots))
    newest = snapshots[snapshots[names.EVENT_TIMESTAMP] == snapshots[names.EVENT_TIMESTAMP].max()]
    ids = newest[names.CUSTOMER_ID].head(3).tolist()

    def online() -> pd.DataFrame:
        rows = [{names.CUSTOMER_ID: i} for i in [*ids, "nobody"]]
        return store.get_online_features(
            features=store.get_feature_service(names.FEATURE_SERVICE), entity_rows=rows
        ).to_df()

    got = online().set_index(names.CUSTOMER_ID)
    want = newest.set_index(names.CUSTOMER_ID).loc[ids]
    for column in ("purchases_count_30d", "engagement_days_since_last_activity", "profile_plan"):
        pd.testing.assert_series_equal(
            got.loc[ids, column].astype(want[column].dtype), want[column], check_names=False, check_index=False
        )
    ratio = want["purchases_days_since_last"] / want["purchases_gap_mean_90d"].where(want["purchases_gap_mean_90d"] > 0)
    pd.testing.assert_series_equal(got.loc[ids, "purchases_overdue_ratio"], ratio, check_names=False, check_index=False)
    assert got.loc["nobody", ["purchases_count_30d", "profile_tenure_days"]].isna().all()

    # New days arrive: rebuild, then materialize only what is new.
    for name in ("events.parquet", "customers.parquet"):
        shutil.copy(generated / name, tmp_path / "clean" / name)
    rebuilt = build_features(settings)
    materialize_incremental(settings)
    snapshots = pd.read_parquet(rebuilt.snapshots)
    newest = snapshots[snapshots[names.EVENT_TIMESTAMP] == snapshots[names.EVENT_TIMESTAMP].max()]
    want = newest.set_index(names.CUSTOMER_ID).reindex(ids)
    old_tenure = got.loc[ids, "profile_tenure_days"]
    got = online().set_index(names.CUSTOMER_ID)
    assert got.loc[ids, "profile_tenure_days"].tolist() == want["profile_tenure_days"].tolist()
    assert (got.loc[ids, "profile_tenure_days"] > old_tenure).all()  # the newer snapshot, not the old one


def test_feast_apply_inside_feature_repo(tmp_path: Path, generated: Path) -> None:
    """`feast apply` run in a copy of feature_repo/ registers what `churn features apply` does."""
    settings = _workspace(tmp_path / "workspace", generated)
    built = build_features(settings)
    repo = tmp_path / "feature_repo"
    shutil.copytree(REPO / "feature_repo", repo, ignore=shutil.ignore_patterns("__pycache__", "data"))
    feast = Path(sys.executable).with_name("feast")
    env = {**os.environ, "CHURN_SNAPSHOTS": str(built.snapshots)}
    done = subprocess.run([str(feast), "apply"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # The repo's paths are relative: ../workspace next to the copied feature_repo/.
    registry_settings = _settings(tmp_path / "workspace")
    store = open_store(registry_settings)
    assert {v.name for v in store.list_feature_views()} == {"purchases", "engagement", "service", "profile"}
    assert {s.name for s in store.list_feature_services()} == {names.FEATURE_SERVICE, names.FEATURE_SERVICE_BEHAVIOUR}
    behaviour = store.get_feature_service(names.FEATURE_SERVICE_BEHAVIOUR)
    features = {f.name for p in behaviour.feature_view_projections for f in p.features}
    assert "profile_tenure_days" in features and "profile_plan" not in features


def test_rhythm_view_function_is_the_ratio_with_missing_where_undefined() -> None:
    """`purchases_rhythm` divides days since the last purchase by a positive mean gap, row by row,
    whatever the frame holds (floats with NaN, objects with None, nullable floats), keeping its index."""
    frames = [
        pd.DataFrame(
            {
                "purchases_days_since_last": [30.0, 10.0, None, 5.0, 7.0],
                "purchases_gap_mean_90d": [10.0, 0.0, 4.0, -2.0, None],
            },
            index=[7, 3, 9, 1, 0],
        ),
        pd.DataFrame(
            {
                "purchases_days_since_last": pd.Series([30, None, 6], dtype=object),
                "purchases_gap_mean_30d": pd.Series([None, 2.0, 4], dtype=object),
            }
        ),
        pd.DataFrame(
            {
                "purchases_days_since_last": pd.array([3.0, None], dtype="Float64"),
                "purchases_gap_mean_90d": pd.array([1.5, 1.0], dtype="Float64"),
            }
        ),
    ]
    expected = [[3.0, None, None, None, None], [None, None, 1.5], [2.0, None]]
    for frame, want in zip(frames, expected, strict=True):
        got = purchases_rhythm(frame)
        assert list(got.columns) == ["purchases_overdue_ratio"] and got.index.equals(frame.index)
        values = got["purchases_overdue_ratio"].tolist()
        assert [None if pd.isna(v) else v for v in values] == want
        # Its NumPy twin, which online reads run, gives the same on the float columns they read.
        floats = {c: frame[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in frame.columns}
        twin = purchases_rhythm_columns(floats)["purchases_overdue_ratio"].tolist()
        assert [None if np.isnan(v) else v for v in twin] == want
