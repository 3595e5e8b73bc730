"""Benchmark steps, each run in a fresh Python process by `bench/run.py`.

Usage (what `run.py` does): `python bench/steps.py STEP ARGS_JSON RESULT_JSON_PATH`. The step
reads its keyword arguments from ARGS_JSON and writes a JSON object to RESULT_JSON_PATH.

Why one process per step: the peak resident memory of a step must not include what earlier steps
(generation, ingestion) left behind. Each step reports `peak_rss_mib`, the process's resident
high-water mark (`VmHWM`) read right after the timed part, so checks done afterwards (comparing
outputs) do not count. `VmHWM` belongs to the process image started by `exec`, unlike
`ru_maxrss`, which Linux carries over from the parent across fork and exec.

Heavy imports (Feast, pandas, DuckDB) happen inside the steps that need them, so a step's peak
memory holds only what it uses.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core import names

SNAPSHOT_KEYS = (names.CUSTOMER_ID, names.EVENT_TIMESTAMP)


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB.

    Reads `VmHWM` from /proc/self/status (Linux), which starts from zero at `exec`; elsewhere falls
    back to `ru_maxrss` (KiB on Linux), which may include the parent's high-water mark.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process so far, all threads (DuckDB's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run `fn` once and return its result and wall time in seconds."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def measured(fn: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """Run `fn` once; return its result and {"seconds": wall time, "cpu_seconds": CPU time}.

    CPU time beside wall time shows how much other work on the machine slowed a figure: on an
    idle machine, wall time is about CPU time / cores for work that uses every core.
    """
    cpu = cpu_seconds()
    result, seconds = timed(fn)
    return result, {"seconds": seconds, "cpu_seconds": cpu_seconds() - cpu}


def _settings(workdir: str, feast: dict[str, Any] | None = None) -> Any:
    from core.settings import parse_settings

    raw: dict[str, Any] = {"workspace": workdir}
    if feast:
        raw["feast"] = feast
    return parse_settings(raw, source="bench", env={})


def _snapshots_path(workdir: str) -> Path:
    """Where the feature build writes: `FeaturePaths.of(settings).snapshots`, without importing Feast."""
    settings = _settings(workdir)
    return settings.path(settings.features.snapshots_dir) / "snapshots.parquet"


# --- generation and ingestion -------------------------------------------------------------------


def step_generate(workdir: str, customers: int, days: int, seed: int) -> dict[str, Any]:
    """Generate the synthetic CRM data in memory and write it as Parquet under `workdir/raw`."""
    import pyarrow.parquet as pq

    from features.generator.dataset import generate, write_generated

    (customers_path, events_path), timing = measured(
        lambda: write_generated(generate(customers, days, seed), Path(workdir) / "raw")
    )
    peak = peak_rss_mib()
    return {
        **timing,
        "peak_rss_mib": peak,
        "events": pq.read_metadata(events_path).num_rows,
        "customers_path": str(customers_path),
        "events_path": str(events_path),
    }


def step_read_parquet(path: str, repeats: int = 3) -> dict[str, Any]:
    """Best of `repeats` plain `pyarrow.parquet.read_table` calls on `path`."""
    import pyarrow.parquet as pq

    seconds = min(timed(lambda: pq.read_table(path))[1] for _ in range(repeats))
    return {"seconds": seconds, "peak_rss_mib": peak_rss_mib(), "rows": pq.read_metadata(path).num_rows}


def step_ingest(workdir: str, customers_path: str, events_path: str) -> dict[str, Any]:
    """Validate the raw exports and write the clean Parquet files (`workdir/clean`)."""
    from features.ingest import ingest

    settings = _settings(workdir)
    report, timing = measured(
        lambda: ingest(settings, customers_path=Path(customers_path), events_path=Path(events_path))
    )
    return {
        **timing,
        "peak_rss_mib": peak_rss_mib(),
        "rows": report.events.input_rows,
        "valid_events": report.events.valid_rows,
        "clean_events": str(report.events.clean_path),
        "clean_customers": str(report.customers.clean_path),
    }


# --- feature build ------------------------------------------------------------------------------


def step_features(workdir: str, dates: int, memory_limit: str) -> dict[str, Any]:
    """Build the snapshots for the last `dates` weekly observation dates into the Feast source path.

    Timed: reading the event day range and the data shape, and `write_snapshots` (DuckDB).
    """
    import pyarrow.parquet as pq

    from features.snapshots.build import write_snapshots
    from features.snapshots.inputs import data_shape, event_day_range
    from features.snapshots.spec import observation_grid, snapshot_spec

    settings = _settings(workdir)
    clean = settings.path(settings.data.clean_dir)
    events, customers = clean / "events.parquet", clean / "customers.parquet"
    out = _snapshots_path(workdir)
    out.parent.mkdir(parents=True, exist_ok=True)

    def build() -> tuple[int, int, int]:
        first, last = event_day_range(events)
        grid = observation_grid(first, last, 7, 0, include_latest=False)[-dates:]
        shape = data_shape(events, customers, settings.data.customers.attributes)
        spec = snapshot_spec(grid, settings.features.windows_days, shape)
        rows = write_snapshots(events, customers, spec, out, memory_limit=memory_limit)
        return rows, len(spec.observation_dates), len(spec.windows_days)

    (rows, n_dates, _), timing = measured(build)
    peak = peak_rss_mib()
    return {
        **timing,
        "peak_rss_mib": peak,
        "rows": rows,
        "dates": n_dates,
        "events": pq.read_metadata(events).num_rows,
        "features": len(pq.read_schema(out).names) - len(SNAPSHOT_KEYS),
    }


def step_scan_aggregate(workdir: str, memory_limit: str) -> dict[str, Any]:
    """Baseline: one DuckDB scan-and-aggregate pass (count and sum per customer and event type)."""
    import duckdb

    settings = _settings(workdir)
    events = str(settings.path(settings.data.clean_dir) / "events.parquet").replace("'", "''")

    def scan() -> int:
        con = duckdb.connect()
        con.execute(f"SET memory_limit = '{memory_limit}'")
        con.execute(
            "CREATE TEMP TABLE agg AS SELECT customer_id, event_type, count(*) AS n, sum(amount) AS amount"
            f" FROM read_parquet('{events}') GROUP BY ALL"
        )
        row = con.execute("SELECT count(*) FROM agg").fetchone()
        return int(row[0]) if row else 0

    groups, timing = measured(scan)
    return {**timing, "peak_rss_mib": peak_rss_mib(), "groups": groups}


# --- training-set retrieval ---------------------------------------------------------------------


def step_entities(workdir: str, rows: int, duplicates: int, seed: int, out: str) -> dict[str, Any]:
    """Write an entity frame of `rows` rows: snapshot keys shifted later by [0, 7) days, with
    `duplicates` of them exact copies of other rows (same customer and timestamp)."""
    import numpy as np
    import pandas as pd

    keys = pd.read_parquet(_snapshots_path(workdir), columns=list(SNAPSHOT_KEYS))
    rng = np.random.default_rng(seed)
    unique = rows - duplicates
    picked = keys.iloc[rng.integers(0, len(keys), unique)].reset_index(drop=True)
    shift = pd.to_timedelta(rng.integers(0, 7 * 86_400, unique), unit="s")
    # Microseconds, like the snapshots (DuckDB compares TIMESTAMPTZ_NS and TIMESTAMPTZ only with a cast).
    stamps = pd.to_datetime(picked[names.EVENT_TIMESTAMP], utc=True) + shift
    picked[names.EVENT_TIMESTAMP] = stamps.astype("datetime64[us, UTC]")
    copies = picked.iloc[rng.integers(0, unique, duplicates)]
    entity = pd.concat([picked, copies], ignore_index=True)
    entity = entity.iloc[rng.permutation(len(entity))].reset_index(drop=True)
    entity.to_parquet(out, index=False)
    return {
        "rows": len(entity),
        "duplicate_rows": int(entity.duplicated().sum()),
        "customers": int(entity["customer_id"].nunique()),
        "snapshot_rows": len(keys),
    }


def step_retrieval_feast(workdir: str, entities: str, service: str, out: str) -> dict[str, Any]:
    """Feast `get_historical_features` (DuckDB offline store) for the entity frame; writes the result."""
    import pandas as pd

    from features.feast_repo import RHYTHM_FEATURE, RHYTHM_GAP_PREFIX, RHYTHM_SINCE
    from features.pipeline import apply_features, historical_features, open_store

    settings = _settings(workdir)
    applied, apply_s = timed(lambda: apply_features(settings))
    store = open_store(settings)
    entity_df = pd.read_parquet(entities)
    frame, timing = measured(lambda: historical_features(store, entity_df, service))
    peak = peak_rss_mib()
    frame.to_parquet(out, index=False)
    return {
        **timing,
        "peak_rss_mib": peak,
        "rows": len(frame),
        "entity_rows": len(entity_df),
        "columns": len(frame.columns),
        "apply_seconds": apply_s,
        "applied": len(applied),
        "ttl_days": settings.feast.ttl_days,
        # For the baseline, which must not import Feast (its memory would count).
        "rhythm": [RHYTHM_FEATURE, RHYTHM_GAP_PREFIX, RHYTHM_SINCE],
    }


def asof_sql(snapshots: Path, entities: Path, columns: list[str], ttl_days: int, rhythm: Sequence[str]) -> str:
    """DuckDB ASOF join of the entity rows to the newest snapshot at or before each timestamp.

    Features of a snapshot older than `ttl_days` before the entity timestamp are null, as in
    Feast's point-in-time join. Also computes the on-demand `purchases_overdue_ratio` of the
    `churn_model_v1` service (days since the last purchase / mean purchase gap, when positive).

    Args:
        snapshots: The snapshots Parquet file.
        entities: The entity rows Parquet file (customer_id, event_timestamp).
        columns: The feature columns to select.
        ttl_days: Feast's TTL.
        rhythm: `features.feast_repo`'s RHYTHM_FEATURE, RHYTHM_GAP_PREFIX and RHYTHM_SINCE.
    """
    ratio_name, gap_prefix, since_name = rhythm

    def quote(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def literal(path: Path) -> str:
        return "'" + str(path).replace("'", "''") + "'"

    fresh = f"s.event_timestamp >= e.event_timestamp - INTERVAL {int(ttl_days)} DAY"
    select = [f"CASE WHEN {fresh} THEN s.{quote(c)} END AS {quote(c)}" for c in columns]
    gaps = sorted((c for c in columns if c.startswith(gap_prefix)), key=lambda c: int(c[len(gap_prefix) : -1]))
    if since_name in columns and gaps:
        since, gap = f"s.{quote(since_name)}", f"s.{quote(gaps[-1])}"
        select.append(f"CASE WHEN {fresh} AND {gap} > 0 THEN {since} / {gap} END AS {quote(ratio_name)}")
    return f"""
SELECT e.customer_id, e.event_timestamp, {", ".join(select)}
FROM read_parquet({literal(entities)}) e
ASOF LEFT JOIN read_parquet({literal(snapshots)}) s
  ON s.customer_id = e.customer_id AND e.event_timestamp >= s.event_timestamp
ORDER BY e.event_timestamp, e.customer_id
"""


def step_retrieval_asof(
    workdir: str, entities: str, ttl_days: int, rhythm: list[str], feast_result: str | None
) -> dict[str, Any]:
    """Baseline: the DuckDB ASOF join to a pandas frame; then compares it with Feast's result."""
    import duckdb
    import pyarrow.parquet as pq

    snapshots = _snapshots_path(workdir)
    columns = [c for c in pq.read_schema(snapshots).names if c not in SNAPSHOT_KEYS]
    sql = asof_sql(snapshots, Path(entities), columns, ttl_days, rhythm)

    def join() -> Any:
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(sql).df()

    frame, timing = measured(join)
    result: dict[str, Any] = {**timing, "peak_rss_mib": peak_rss_mib(), "rows": len(frame)}
    if feast_result is not None and Path(feast_result).exists():
        import pandas as pd

        result.update(compare_frames(pd.read_parquet(feast_result), frame))
    return result


def compare_frames(feast: Any, baseline: Any) -> dict[str, Any]:
    """Cell-by-cell comparison of two training frames sorted by (event_timestamp, customer_id).

    Exact-duplicate entity rows tie in that order but carry the same features, so rows align.

    Returns:
        compared_values, mismatches (cells that differ; NaN equals NaN, floats to 1e-9 relative),
        key_mismatches (rows whose customer or timestamp differ), and the columns only one side has.
    """
    import numpy as np
    import pandas as pd

    keys = list(SNAPSHOT_KEYS)
    a = feast.sort_values(keys, kind="stable").reset_index(drop=True)
    b = baseline.sort_values(keys, kind="stable").reset_index(drop=True)
    out: dict[str, Any] = {
        "only_feast": sorted(set(a.columns) - set(b.columns)),
        "only_baseline": sorted(set(b.columns) - set(a.columns)),
    }
    if len(a) != len(b):
        out.update(compared_values=0, mismatches=None, key_mismatches=None)
        return out
    ts_a = pd.to_datetime(a["event_timestamp"], utc=True).astype("datetime64[ns, UTC]")
    ts_b = pd.to_datetime(b["event_timestamp"], utc=True).astype("datetime64[ns, UTC]")
    key_bad = (ts_a.to_numpy() != ts_b.to_numpy()) | (
        a["customer_id"].astype(str).to_numpy() != b["customer_id"].astype(str).to_numpy()
    )
    compared = mismatches = 0
    for col in a.columns:
        if col in keys or col not in b.columns:
            continue
        x, y = a[col], b[col]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            xv, yv = x.to_numpy(dtype=float), y.to_numpy(dtype=float)
            same = (np.isnan(xv) & np.isnan(yv)) | np.isclose(xv, yv, rtol=1e-9, atol=0.0)
        else:
            same = (x.isna().to_numpy() & y.isna().to_numpy()) | (
                x.astype(object).where(x.notna(), None).to_numpy() == y.astype(object).where(y.notna(), None).to_numpy()
            )
        compared += len(same)
        mismatches += int((~same).sum())
    out.update(compared_values=compared, mismatches=mismatches, key_mismatches=int(key_bad.sum()))
    return out


# --- online lookups -----------------------------------------------------------------------------


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    import numpy as np

    return {"p50": float(np.percentile(samples_ms, 50)), "p99": float(np.percentile(samples_ms, 99))}


def _latencies(fn: Callable[[list[str]], Any], batches: list[list[str]], warmup: int) -> list[float]:
    """Milliseconds per call of `fn` on each batch, after `warmup` untimed calls."""
    for batch in batches[:warmup]:
        fn(batch)
    samples = []
    for batch in batches:
        started = time.perf_counter_ns()
        fn(batch)
        samples.append((time.perf_counter_ns() - started) / 1e6)
    return samples


def _redis_unreachable(address: str) -> str | None:
    """Why Redis at host:port cannot be used, or None when it answers PING."""
    import redis

    host, _, port = address.rpartition(":")
    try:
        redis.Redis(host=host or "127.0.0.1", port=int(port or 6379), socket_connect_timeout=1).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "skip this row"
        return f"{type(exc).__name__}: {exc}"
    return None


def _redis_keys_left(address: str, project: str) -> int:
    """Keys whose name ends with the Feast project (how the Redis online store names them)."""
    import redis

    host, _, port = address.rpartition(":")
    client = redis.Redis(host=host or "127.0.0.1", port=int(port or 6379))
    return sum(1 for _ in client.scan_iter(match=b"*" + project.encode(), count=10_000))


def step_online(
    workdir: str, store_type: str, redis_address: str, repeats: int, warmup: int, batch_sizes: list[int], seed: int
) -> dict[str, Any]:
    """Online lookup latency through Feast (SQLite or Redis) beside a dict of the same rows.

    Materializes only the newest snapshot date. For Redis, uses a throwaway project with its own
    file registry and tears it down afterwards (keys removed from Redis, registry file deleted).
    """
    import datetime as dt

    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from features.pipeline import apply_features, materialize, open_store

    feast: dict[str, Any] | None = None
    project = ""
    if store_type == "redis":
        why = _redis_unreachable(redis_address)
        if why is not None:
            return {"skipped": f"Redis at {redis_address} unreachable ({why})"}
        project = f"churn_bench_{uuid.uuid4().hex[:8]}"
        feast = {
            "project": project,
            "registry": f"feast/registry_{project}.db",
            "online_store": {"type": "redis", "connection_string": redis_address},
        }
    settings = _settings(workdir, feast)
    snapshots = _snapshots_path(workdir)
    stamps = pq.read_table(snapshots, columns=[names.EVENT_TIMESTAMP]).column(0)
    last = pc.max(stamps).as_py()
    # Only the newest date's rows, and as Arrow: the Feast timings run before the dict exists, so
    # its millions of Python objects do not slow the garbage collector during them.
    latest = pq.read_table(snapshots, filters=[(names.EVENT_TIMESTAMP, "==", last)])
    ids = [str(cid) for cid in latest.column(names.CUSTOMER_ID).to_pylist()]
    second = dt.timedelta(seconds=1)
    result: dict[str, Any] = {"customers_online": len(ids), "project": project or settings.feast.project}
    rng = np.random.default_rng(seed)

    def sample(size: int) -> list[str]:
        return [ids[i] for i in rng.choice(len(ids), size, replace=False)]

    batches = {size: [sample(size) for _ in range(repeats)] for size in batch_sizes}
    check = sample(min(100, len(ids)))
    store = None
    try:
        apply_features(settings)
        store = open_store(settings)
        _, result["materialize_seconds"] = timed(lambda: materialize(settings, last - second, last + second))
        service = store.get_feature_service(names.FEATURE_SERVICE)

        def feast_lookup(batch: list[str]) -> dict[str, Any]:
            rows = [{names.CUSTOMER_ID: cid} for cid in batch]
            return store.get_online_features(features=service, entity_rows=rows).to_dict()

        for size in batch_sizes:
            result[f"feast_{size}"] = _percentiles(_latencies(feast_lookup, batches[size], warmup))
        online = feast_lookup(check)
    finally:
        if store is not None and store_type == "redis":
            # Its own registry file: Feast's teardown deletes every project of the registry it uses.
            store.teardown()
            settings.path(settings.feast.registry).unlink(missing_ok=True)
            result["redis_keys_left"] = _redis_keys_left(redis_address, project)
    table: dict[str, dict[str, Any]] = {
        row.pop(names.CUSTOMER_ID): row for row in latest.drop_columns([names.EVENT_TIMESTAMP]).to_pylist()
    }

    def dict_lookup(batch: list[str]) -> list[dict[str, Any] | None]:
        return [table.get(cid) for cid in batch]

    for size in batch_sizes:
        result[f"dict_{size}"] = _percentiles(_latencies(dict_lookup, batches[size], warmup))
    result["checked_values"], result["mismatches"] = check_online(online, table)
    return result


def check_online(online: dict[str, list[Any]], table: dict[str, dict[str, Any]]) -> tuple[int, int]:
    """Compare Feast's online values with the dict rows (features both have): (compared, differing).

    Missing values (None or NaN) on both sides count as equal; floats compare to 1e-9 relative.
    """
    import math

    def missing(value: Any) -> bool:
        return value is None or (isinstance(value, float) and math.isnan(value))

    compared = differing = 0
    for i, cid in enumerate(online[names.CUSTOMER_ID]):
        expected = table[cid]
        for name, values in online.items():
            if name == names.CUSTOMER_ID or name not in expected:
                continue
            got, want = values[i], expected[name]
            compared += 1
            if missing(got) or missing(want):
                differing += not (missing(got) and missing(want))
            elif isinstance(want, float):
                differing += not math.isclose(got, want, rel_tol=1e-9)
            else:
                differing += got != want
    return compared, differing


STEPS: dict[str, Callable[..., dict[str, Any]]] = {
    "generate": step_generate,
    "read_parquet": step_read_parquet,
    "ingest": step_ingest,
    "features": step_features,
    "scan_aggregate": step_scan_aggregate,
    "entities": step_entities,
    "retrieval_feast": step_retrieval_feast,
    "retrieval_asof": step_retrieval_asof,
    "online": step_online,
}


def main(argv: list[str]) -> None:
    """Run one step: `steps.py STEP ARGS_JSON RESULT_JSON_PATH`."""
    step, args, result_path = argv
    result = STEPS[step](**json.loads(args))
    Path(result_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
