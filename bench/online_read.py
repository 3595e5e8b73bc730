"""Feast's public online lookup beside the request path's read through `features.feast_adapter`.

Run with `.venv/bin/python bench/online_read.py [--workspace DIR] [--customers 3000] [--redis]`.
Without `--workspace` it generates, ingests, builds, applies and materializes a small workspace
in a temporary folder (3,000 customers x 220 days: more than 1,000 customers online). `--redis`
also measures a Redis online store at 127.0.0.1:6379 (a throwaway project with its own registry
file, torn down afterwards).

For 1 and 1,000 customer ids per call, interleaved (every contender sees the same background
load) after warm-up calls, with feature service `churn_model_v1`:

- public to_dict: `FeatureStore.get_online_features(features=service, entity_rows=...).to_dict()`;
- public to_dict + ts: the same with `include_event_timestamps=True`, which a reader built on the
  public API needs for the snapshot time `OnlineRows.snapshot_at` gives;
- public to_arrow: the same call, `.to_arrow()`;
- adapter: `features.online.OnlineReader.read` (the online store's `online_read` through the
  adapter, values to Python, the on-demand view, snapshot times): what /score calls.

Prints p50 and best milliseconds per call, and checks on the 1,000-id batch that the adapter's
values equal the public call's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if __name__ == "__main__":
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

SIZES = {1: 300, 1_000: 15}
"""Ids per call -> timed calls per contender."""


def build_workspace(ws: Path, customers: int, days: int, seed: int) -> None:
    """Generate, ingest, build, apply and materialize a workspace in `ws`."""
    from core.settings import parse_settings
    from features.generator.dataset import generate, write_generated
    from features.ingest import ingest
    from features.pipeline import apply_features, build_features, materialize

    settings = parse_settings({"workspace": str(ws)}, source="bench", env={})
    customers_path, events_path = write_generated(generate(customers, days, seed=seed), ws / "raw")
    ingest(settings, customers_path=customers_path, events_path=events_path)
    build_features(settings)
    apply_features(settings)
    materialize(settings)


def interleaved(contenders: dict[str, Callable[[], Any]], calls: int, warmup: int = 5) -> dict[str, list[float]]:
    """Milliseconds per call of each contender, the contenders taking turns call by call."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(calls):
        for name, fn in contenders.items():
            started = time.perf_counter_ns()
            fn()
            samples[name].append((time.perf_counter_ns() - started) / 1e6)
    return samples


def measure(store: Any, label: str, ids: list[str], seed: int) -> list[list[str]]:  # noqa: ANN401
    """Table rows (store, ids per call, contender, p50, best, x adapter) for one online store."""
    import random

    from bench.steps import check_online
    from core import names
    from features.online import OnlineReader

    service = store.get_feature_service(names.FEATURE_SERVICE)
    reader = OnlineReader(store, service)
    rng = random.Random(seed)
    rows: list[list[str]] = []
    for size, calls in SIZES.items():
        batch = rng.sample(ids, size)
        entity_rows = [{names.CUSTOMER_ID: c} for c in batch]

        def public(entity_rows: list[dict[str, str]] = entity_rows) -> Any:  # noqa: ANN401
            return store.get_online_features(features=service, entity_rows=entity_rows)

        samples = interleaved(
            {
                "public to_dict": lambda: public().to_dict(),
                "public to_dict + ts": lambda: public().to_dict(include_event_timestamps=True),
                "public to_arrow": lambda: public().to_arrow(),
                "adapter": lambda batch=batch: reader.read(batch),
            },
            calls,
        )
        base = statistics.median(samples["adapter"])
        for name, ms in samples.items():
            p50 = statistics.median(ms)
            rows.append([label, f"{size:,}", name, f"{p50:.3f}", f"{min(ms):.3f}", f"{p50 / base:.1f}x"])
        if size > 1:
            got = reader.read(batch).columns
            adapter_rows = {cid: {f: got[f][i] for f in reader.features} for i, cid in enumerate(batch)}
            compared, differing = check_online(public().to_dict(), adapter_rows)
            rows.append([label, f"{size:,}", f"values differing of {compared:,}", str(differing), "", ""])
    return rows


def online_ids(ws: Path) -> list[str]:
    """The customers of the newest snapshot date (what the online store holds)."""
    import pandas as pd

    from core import names

    snapshots = pd.read_parquet(ws / "features" / "snapshots.parquet", columns=[names.CUSTOMER_ID, "event_timestamp"])
    newest = snapshots[snapshots["event_timestamp"] == snapshots["event_timestamp"].max()]
    return sorted(newest[names.CUSTOMER_ID].astype(str).unique())


def redis_store(ws: Path) -> tuple[Any, Callable[[], None]]:
    """The workspace applied and materialized to Redis under a throwaway project, and its teardown."""
    from core.settings import parse_settings
    from features.pipeline import apply_features, materialize, open_store

    project = f"churn_bench_{uuid.uuid4().hex[:8]}"
    feast = {
        "project": project,
        "registry": f"feast/registry_{project}.db",
        "online_store": {"type": "redis", "connection_string": "127.0.0.1:6379"},
    }
    settings = parse_settings({"workspace": str(ws), "feast": feast}, source="bench", env={})
    apply_features(settings)
    materialize(settings)
    store = open_store(settings)

    def teardown() -> None:
        store.teardown()  # its own registry file: no other project is in it
        settings.path(settings.feast.registry).unlink(missing_ok=True)

    return store, teardown


def main(argv: Sequence[str] | None = None) -> None:
    """Build or reuse a workspace, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="a workspace with features materialized (else built)")
    parser.add_argument("--customers", type=int, default=3_000)
    parser.add_argument("--days", type=int, default=220)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--redis", action="store_true", help="also measure Redis at 127.0.0.1:6379")
    args = parser.parse_args(argv)

    from core.settings import parse_settings
    from features.pipeline import open_store

    console = Console(width=110)
    with tempfile.TemporaryDirectory(prefix="online-read-") as temp:
        ws = args.workspace or Path(temp)
        if args.workspace is None:
            started = time.perf_counter()
            build_workspace(ws, args.customers, args.days, args.seed)
            console.print(f"workspace built in {time.perf_counter() - started:.0f} s")
        ids = online_ids(ws)
        if len(ids) < max(SIZES):
            raise SystemExit(f"{len(ids)} customers online, fewer than {max(SIZES)}: use more --customers")
        rows = measure(open_store(parse_settings({"workspace": str(ws)}, source="bench", env={})), "sqlite", ids, 0)
        if args.redis:
            store, teardown = redis_store(ws)
            try:
                rows += measure(store, "redis", ids, 0)
            finally:
                teardown()
    table = Table(title=f"Online lookup, ms per call ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)")
    for column in ("store", "ids", "call", "p50 ms", "best ms", "p50 / adapter"):
        table.add_column(column, justify="left" if column in ("store", "call") else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
