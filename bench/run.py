"""Benchmarks: one table, every figure beside a baseline measured in the same run.

Run with `make bench` (or `.venv/bin/python bench/run.py --customers 100000 --days 365`).
Rows so far:
- generator throughput (events/s, generate + write Parquet) beside `pyarrow.parquet.read_table`
  of the same file;
- ingestion + validation throughput (rows/s) beside `pyarrow.parquet.read_table` of the same file.
Peak memory is the process's resident high-water mark after each step.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from churn.settings import parse_settings
from features.generator import generate, write_generated
from features.ingest import ingest


@dataclass(frozen=True)
class Row:
    """One benchmark figure and its baseline."""

    name: str
    items: int
    unit: str
    seconds: float
    baseline_name: str
    baseline_seconds: float
    peak_rss_mib: float


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run `fn` once and return its result and wall time in seconds."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def peak_rss_mib() -> float:
    """The process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_baseline(path: Path) -> float:
    """Best of three plain `pyarrow.parquet.read_table` calls on `path`."""
    return min(timed(lambda: pq.read_table(path))[1] for _ in range(3))


def run(customers: int, days: int, seed: int, workdir: Path) -> list[Row]:
    """Measure every row on data generated in `workdir`."""
    raw = workdir / "raw"
    data, gen_s = timed(lambda: write_generated(generate(customers, days, seed), raw))
    customers_path, events_path = data
    n_events = pq.read_metadata(events_path).num_rows
    rows = [
        Row(
            "generate + write Parquet",
            n_events,
            "events",
            gen_s,
            "pyarrow read_table (same file)",
            read_baseline(events_path),
            peak_rss_mib(),
        )
    ]
    settings = parse_settings({"workspace": str(workdir)}, source="bench", env={})
    report, ingest_s = timed(lambda: ingest(settings, customers_path=customers_path, events_path=events_path))
    rows.append(
        Row(
            "ingest + validate events and customers",
            n_events,
            "rows",
            ingest_s,
            "pyarrow read_table (same file)",
            read_baseline(events_path),
            peak_rss_mib(),
        )
    )
    del report
    return rows


def render(rows: list[Row], title: str) -> Table:
    """The single results table."""
    table = Table(title=title)
    for col in (
        "benchmark",
        "items",
        "time (s)",
        "throughput",
        "baseline",
        "baseline (s)",
        "baseline throughput",
        "x baseline",
        "peak RSS (MiB)",
    ):
        table.add_column(col, justify="left" if col in ("benchmark", "baseline") else "right")
    for r in rows:
        table.add_row(
            r.name,
            f"{r.items:,}",
            f"{r.seconds:.2f}",
            f"{r.items / r.seconds:,.0f} {r.unit}/s",
            r.baseline_name,
            f"{r.baseline_seconds:.2f}",
            f"{r.items / r.baseline_seconds:,.0f} {r.unit}/s",
            f"{r.seconds / r.baseline_seconds:.1f}",
            f"{r.peak_rss_mib:,.0f}",
        )
    return table


def main() -> None:
    """Parse arguments, run the benchmarks, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="churn-bench-") as tmp:
        rows = run(args.customers, args.days, args.seed, Path(tmp))
    Console(width=200).print(
        render(rows, f"churn bench: {args.customers:,} customers x {args.days} days, seed {args.seed}")
    )


if __name__ == "__main__":
    main()
