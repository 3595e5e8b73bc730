"""Benchmark group `spark`: the feature build on the Spark engine beside the DuckDB engine, same events.

Usage (what `bench/run.py` does): `python bench/spark_build.py ENGINE ARGS_JSON RESULT_JSON_PATH`,
ENGINE `duckdb` or `spark`, one fresh process each. Both build the same spec as the `features`
group (the last `dates` weekly observation dates, windows 7/30/90 days, no BG/NBD: its fit is the
same Python on both engines) from the workspace's clean data, each into a file of its own.

Peak memory: the DuckDB engine runs in this process, so its figure is this process's `VmHWM`. The
Spark engine runs in a JVM this process starts (`local[N]`: driver and executors in one JVM); its
figure is the JVM's `VmHWM` beside this Python driver's, both read right after the build, before
the session stops. `compare` reads both files with DuckDB: rows, keys and values that differ.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any


def _vm_hwm_mib(pid: int | str) -> float:
    """A process's resident high-water mark (`VmHWM`, Linux), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mib() -> float:
    """This process's peak resident memory since `exec`, in MiB (as `bench/steps.py` measures it)."""
    return _vm_hwm_mib("self")


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (not its children: the JVM is measured apart)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _jvm_peak_mib() -> float:
    """The largest `VmHWM` among this process's child processes (the JVM Spark started)."""
    import psutil

    peaks = [_vm_hwm_mib(child.pid) for child in psutil.Process().children(recursive=True)]
    return max(peaks, default=0.0)


def build(engine: str, workdir: str, dates: int, memory_limit: str, master: str, driver_memory: str) -> dict[str, Any]:
    """Build the snapshots with `engine`; wall time, CPU time of this process, peak memory, rows."""
    import pyarrow.parquet as pq

    from core.settings import parse_settings
    from features.snapshots.inputs import data_shape, event_day_range
    from features.snapshots.spec import observation_grid, snapshot_spec

    settings = parse_settings({"workspace": workdir}, source="bench", env={})
    clean = settings.path(settings.data.clean_dir)
    events, customers = clean / "events.parquet", clean / "customers.parquet"
    out = Path(workdir) / "bench-spark" / f"snapshots-{engine}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    session = None
    startup = 0.0
    if engine == "spark":
        from core.feature_engine_settings import SparkSettings
        from features.spark.session import spark_session
        from features.spark.snapshots import write_snapshots as spark_write

        started = time.perf_counter()
        session = spark_session(SparkSettings(master=master, driver_memory=driver_memory, shuffle_partitions=8))
        startup = time.perf_counter() - started
    cpu = cpu_seconds()
    started = time.perf_counter()
    first, last = event_day_range(events)
    grid = observation_grid(first, last, 7, 0, include_latest=False)[-dates:]
    spec = snapshot_spec(grid, settings.features.windows_days, data_shape(events, customers))
    if session is not None:
        rows = spark_write(session, events, customers, spec, out)
    else:
        from features.snapshots.build import write_snapshots

        rows = write_snapshots(events, customers, spec, out, memory_limit=memory_limit)
    seconds = time.perf_counter() - started
    result = {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds() - cpu,
        "peak_rss_mib": peak_rss_mib(),
        "rows": rows,
        "dates": len(spec.observation_dates),
        "events": pq.read_metadata(events).num_rows,
        "features": len(pq.read_schema(out).names) - 2,
        "out": str(out),
        "startup_seconds": startup,
    }
    if session is not None:
        result["jvm_peak_rss_mib"] = _jvm_peak_mib()
        session.stop()
    return result


def compare(duckdb_out: str, spark_out: str) -> dict[str, Any]:
    """Rows of each file, keys in one only, and values differing by more than 1e-9 (relative) or in nullness."""
    import duckdb
    import pyarrow.parquet as pq

    columns = [c for c in pq.read_schema(duckdb_out).names if c not in ("customer_id", "event_timestamp")]
    con = duckdb.connect()
    lit = {k: "'" + v.replace("'", "''") + "'" for k, v in (("d", duckdb_out), ("s", spark_out))}
    diffs = " + ".join(
        f"(CASE WHEN d.{c} IS DISTINCT FROM s.{c} AND NOT (abs(d.{c} - s.{c}) <= 1e-9 * greatest(1, abs(d.{c})))"
        f" THEN 1 ELSE 0 END)"
        if pq.read_schema(duckdb_out).field(c).type != "string"
        else f"(CASE WHEN d.{c} IS DISTINCT FROM s.{c} THEN 1 ELSE 0 END)"
        for c in columns
    )
    row = con.execute(
        f"""SELECT count(*) FILTER (WHERE d.customer_id IS NULL OR s.customer_id IS NULL),
                   coalesce(sum({diffs}) FILTER (WHERE d.customer_id IS NOT NULL AND s.customer_id IS NOT NULL), 0),
                   count(*) FILTER (WHERE d.customer_id IS NOT NULL AND s.customer_id IS NOT NULL)
            FROM read_parquet({lit["d"]}) d FULL JOIN read_parquet({lit["s"]}) s
              ON d.customer_id = s.customer_id AND d.event_timestamp = s.event_timestamp"""
    ).fetchone()
    assert row is not None
    return {"key_mismatches": int(row[0]), "mismatches": int(row[1]), "compared_values": int(row[2]) * len(columns)}


def main(argv: list[str]) -> None:
    """`spark_build.py duckdb|spark|compare ARGS_JSON RESULT_JSON_PATH`."""
    step, kwargs, out = argv[0], json.loads(argv[1]), Path(argv[2])
    result = compare(**kwargs) if step == "compare" else build(step, **kwargs)
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
