"""Benchmarks: one table, every figure beside a baseline measured in the same run.

Run with `make bench` (`.venv/bin/python bench/run.py`: 100,000 customers x 365 days, about 10 M
events). Quick check: `.venv/bin/python bench/run.py --customers 5000 --days 200`. Subsets:
`--only features,retrieval,online` (the steps they need still run, unreported).

Rows (group in brackets, for `--only`):

- [generate] generate + write Parquet: events/s, beside `pyarrow.parquet.read_table` of the same
  file (best of three).
- [ingest] ingest + validate events and customers: rows/s, beside `pyarrow.parquet.read_table` of
  the events file (best of three).
- [features] feature build (`features.compute.write_snapshots`, plus reading the event day range
  and data shape) for the last 52 weekly observation dates and windows 7/30/90 days: wall time and
  peak memory, beside one DuckDB scan-and-aggregate pass over the same events (count and sum of
  amount per customer and event type). Target: <= 60 s and <= 8 GiB on 2 cores.
- [retrieval] training-set retrieval through Feast (`features.pipeline.historical_features`,
  service `churn_model_v1`, DuckDB offline store) for 500,000 entity rows, beside a DuckDB
  `ASOF LEFT JOIN` of the same entity rows to the snapshots Parquet with Feast's TTL rule and the
  on-demand `purchases_overdue_ratio` computed in SQL, so both produce the same columns. Entity
  rows are snapshot keys sampled with replacement, shifted later by a random [0, 7) days (a real
  as-of match), with 10 % exact duplicate rows on purpose. Both results are pandas frames sorted
  by time and customer. Target: Feast <= 5x the ASOF join, and exactly one output row per entity
  row; the notes give the row count and how many values differ between the two results.
- [online] online lookup latency p50 / p99 through `FeatureStore.get_online_features(...).to_dict()`
  with service `churn_model_v1`, for 1 and for 100 random customers per call, on the SQLite online
  store and on Redis (`--redis`, default 127.0.0.1:6379; skipped when unreachable), beside an
  in-process dict lookup (customer_id -> feature row) of the same customers. Only the newest
  snapshot date is materialized. 200 timed calls after 20 warm-up calls. The Redis rows use a
  throwaway Feast project and registry file, torn down afterwards.

Each step runs in a fresh Python process (`bench/steps.py`), and its peak memory is that process's
resident high-water mark (`VmHWM`) right after the timed part: earlier steps do not count, and
neither do the checks that follow. "x baseline" is time / baseline time (p50 / p50 for latency).
The notes under the table give the CPU time of the feature build and the retrieval, and the caption
the load average: on a busy machine wall times grow, CPU times much less.

`--workdir DIR` keeps the data; a later run with the same --customers/--days/--seed reuses the
generated, ingested and built data for the groups `--only` does not select.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from churn import names

STEPS_SCRIPT = Path(__file__).resolve().parent / "steps.py"
GROUPS = ("generate", "ingest", "features", "retrieval", "online")
NEEDS: dict[str, tuple[str, ...]] = {
    "generate": (),
    "ingest": ("generate",),
    "features": ("ingest",),
    "retrieval": ("features",),
    "online": ("features",),
}
"""Group -> groups whose output it reads."""
GIB = 1024.0


@dataclass(frozen=True)
class Row:
    """One line of the table: a measured figure, its baseline, and how they compare.

    Attributes:
        name: What is measured.
        scale: How much work (e.g. "10,012,345 events").
        figure: The measurement as text (time and throughput, or latency percentiles).
        peak_rss_mib: Peak resident memory of the process that did the work, if measured.
        baseline: What the baseline is.
        baseline_figure: The baseline's measurement, in the same form as `figure`.
        baseline_rss_mib: Peak resident memory of the baseline's process, if measured.
        ratio: `figure` / `baseline_figure` on the main metric (time, or p50 latency).
        target: The goal, if any (e.g. "<= 60 s, <= 8 GiB").
        met: Whether the target was met; None when there is no target or nothing was measured.
        notes: Checks and context (row counts, mismatches, what was skipped).
    """

    name: str
    scale: str
    figure: str
    peak_rss_mib: float | None = None
    baseline: str = ""
    baseline_figure: str = ""
    baseline_rss_mib: float | None = None
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    notes: str = ""


def throughput(seconds: float, items: int, unit: str) -> str:
    """'12.34 s (810,000 unit/s)'."""
    return f"{seconds:.2f} s ({items / seconds:,.0f} {unit}/s)" if seconds > 0 else f"{seconds:.2f} s"


def latency(p: dict[str, float]) -> str:
    """'p50 1.234 ms / p99 5.678 ms' with precision that suits sub-microsecond dict lookups too."""

    def ms(value: float) -> str:
        return f"{value:.3f}" if value >= 0.01 else f"{value:.5f}"

    return f"p50 {ms(p['p50'])} ms / p99 {ms(p['p99'])} ms"


class Runner:
    """Runs steps in fresh processes inside the work directory and prints progress to stderr.

    Args:
        workdir: The workspace every step reads and writes (also the steps' working directory,
            so DuckDB spill files land there).
        console: Where progress lines go.
    """

    def __init__(self, workdir: Path, console: Console) -> None:
        self.workdir = workdir
        self.console = console

    def __call__(self, step: str, **kwargs: Any) -> dict[str, Any]:
        """Run `step` of bench/steps.py with `kwargs` and return its JSON result.

        Raises:
            RuntimeError: The step failed; the message holds the end of its output.
        """
        result_path = self.workdir / f".bench-{step}-{time.monotonic_ns()}.json"
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(STEPS_SCRIPT), step, json.dumps(kwargs), str(result_path)],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
            raise RuntimeError(f"bench step '{step}' failed (exit {proc.returncode}):\n{tail}")
        result: dict[str, Any] = json.loads(result_path.read_text())
        result_path.unlink()
        self.console.print(f"  {step:<16} done in {elapsed:6.1f} s (process total)")
        return result


def bench_generate(run: Runner, args: argparse.Namespace, report: bool) -> tuple[list[Row], dict[str, Any]]:
    """Generate the raw data; the row compares it with reading the events file back."""
    gen = run("generate", workdir=str(run.workdir), customers=args.customers, days=args.days, seed=args.seed)
    if not report:
        return [], gen
    base = run("read_parquet", path=gen["events_path"])
    n = gen["events"]
    row = Row(
        "generate + write Parquet",
        f"{n:,} events",
        throughput(gen["seconds"], n, "events"),
        gen["peak_rss_mib"],
        "pyarrow read_table (same file, best of 3)",
        throughput(base["seconds"], n, "events"),
        base["peak_rss_mib"],
        gen["seconds"] / base["seconds"],
    )
    return [row], gen


def bench_ingest(run: Runner, gen: dict[str, Any], report: bool) -> list[Row]:
    """Ingest the raw data into `clean/`; the row compares it with reading the raw events file."""
    ing = run("ingest", workdir=str(run.workdir), customers_path=gen["customers_path"], events_path=gen["events_path"])
    if not report:
        return []
    base = run("read_parquet", path=gen["events_path"])
    n = ing["rows"]
    return [
        Row(
            "ingest + validate events and customers",
            f"{n:,} events",
            throughput(ing["seconds"], n, "rows"),
            ing["peak_rss_mib"],
            "pyarrow read_table (same file, best of 3)",
            throughput(base["seconds"], n, "rows"),
            base["peak_rss_mib"],
            ing["seconds"] / base["seconds"],
            notes=f"{ing['rows'] - ing['valid_events']:,} events quarantined",
        )
    ]


def bench_features(run: Runner, args: argparse.Namespace, report: bool) -> list[Row]:
    """Build the snapshots at the Feast source path; the row compares with one DuckDB aggregate pass."""
    build = run("features", workdir=str(run.workdir), dates=args.dates, memory_limit=args.memory_limit)
    if not report:
        return []
    base = run("scan_aggregate", workdir=str(run.workdir), memory_limit=args.memory_limit)
    n = build["events"]
    gib = build["peak_rss_mib"] / GIB
    return [
        Row(
            f"feature build: {build['dates']} weekly dates x windows 7/30/90 d",
            f"{n:,} events",
            throughput(build["seconds"], n, "events"),
            build["peak_rss_mib"],
            "DuckDB scan + GROUP BY customer, event type",
            throughput(base["seconds"], n, "events"),
            base["peak_rss_mib"],
            build["seconds"] / base["seconds"],
            "<= 60 s, <= 8 GiB",
            build["seconds"] <= 60 and gib <= 8,
            f"{build['rows']:,} snapshot rows x {build['features']} features; CPU time {build['cpu_seconds']:.0f} s "
            f"(baseline {base['cpu_seconds']:.1f} s); DuckDB memory_limit {args.memory_limit}; "
            f"{base['groups']:,} groups in the baseline",
        )
    ]


def bench_retrieval(run: Runner, args: argparse.Namespace) -> list[Row]:
    """Feast historical retrieval beside the DuckDB ASOF join, with row-count and value checks."""
    entities = run.workdir / "bench-entities.parquet"
    feast_out = run.workdir / "bench-feast-training.parquet"
    duplicates = args.entity_rows // 10
    ent = run(
        "entities",
        workdir=str(run.workdir),
        rows=args.entity_rows,
        duplicates=duplicates,
        seed=args.seed,
        out=str(entities),
    )
    feast = run(
        "retrieval_feast",
        workdir=str(run.workdir),
        entities=str(entities),
        service=names.FEATURE_SERVICE,
        out=str(feast_out),
    )
    base = run(
        "retrieval_asof",
        workdir=str(run.workdir),
        entities=str(entities),
        ttl_days=feast["ttl_days"],
        rhythm=feast["rhythm"],
        feast_result=str(feast_out),
    )
    n = ent["rows"]
    ratio = feast["seconds"] / base["seconds"]
    one_per_row = feast["rows"] == n
    notes = [
        f"Feast {feast['rows']:,} rows, ASOF {base['rows']:,} rows for {n:,} entity rows "
        f"({ent['duplicate_rows']:,} duplicates, {ent['customers']:,} customers)",
    ]
    if base.get("mismatches") is None:
        notes.append("values not compared (row counts differ)")
    else:
        notes.append(
            f"{base['mismatches']:,} of {base['compared_values']:,} values differ, "
            f"{base['key_mismatches']:,} keys differ"
        )
    for side in ("only_feast", "only_baseline"):
        if base.get(side):
            notes.append(f"{side.replace('_', ' ')}: {', '.join(base[side])}")
    notes.append(
        f"CPU time {feast['cpu_seconds']:.0f} s (ASOF {base['cpu_seconds']:.0f} s); TTL {feast['ttl_days']} d; "
        f"apply_features {feast['apply_seconds']:.1f} s (untimed)"
    )
    return [
        Row(
            f"training set via Feast ({names.FEATURE_SERVICE}, {feast['columns'] - 2} features)",
            f"{n:,} entity rows",
            throughput(feast["seconds"], n, "rows"),
            feast["peak_rss_mib"],
            "DuckDB ASOF LEFT JOIN + TTL, same columns",
            throughput(base["seconds"], n, "rows"),
            base["peak_rss_mib"],
            ratio,
            "<= 5x, 1 row per entity row",
            ratio <= 5 and one_per_row,
            "; ".join(notes),
        )
    ]


def bench_online(run: Runner, args: argparse.Namespace) -> list[Row]:
    """Online lookup latency on SQLite and Redis, each beside a dict lookup of the same customers."""
    rows: list[Row] = []
    for store in ("sqlite", "redis"):
        res = run(
            "online",
            workdir=str(run.workdir),
            store_type=store,
            redis_address=args.redis,
            repeats=args.repeats,
            warmup=args.warmup,
            batch_sizes=[1, 100],
            seed=args.seed,
        )
        label = "SQLite" if store == "sqlite" else "Redis"
        if "skipped" in res:
            rows.append(Row(f"online lookup, {label}", "-", "skipped", notes=res["skipped"]))
            continue
        notes = (
            f"{res['customers_online']:,} customers materialized in {res['materialize_seconds']:.1f} s; "
            f"{res['mismatches']:,} of {res['checked_values']:,} checked values differ"
        )
        if store == "redis":
            notes += f"; Redis {args.redis}, project {res['project']} torn down, {res['redis_keys_left']} keys left"
        for size in (1, 100):
            feast, base = res[f"feast_{size}"], res[f"dict_{size}"]
            rows.append(
                Row(
                    f"online lookup, {label}, {size} customer{'s' if size > 1 else ''}/call",
                    f"{args.repeats} calls",
                    latency(feast),
                    baseline="dict lookup, same customers",
                    baseline_figure=latency(base),
                    ratio=feast["p50"] / base["p50"] if base["p50"] > 0 else None,
                    notes=notes if size == 1 else "",
                )
            )
    return rows


def run_all(args: argparse.Namespace, workdir: Path, console: Console, reuse: bool = False) -> list[Row]:
    """Run the selected groups (and the groups they need, unreported) and return the table rows.

    Args:
        args: The parsed command line.
        workdir: The workspace.
        console: Where progress goes.
        reuse: Skip a group that is only needed (not selected) when `workdir` holds its output
            from a run with the same data parameters and none of the groups it needs ran again.
    """
    selected = set(args.only)
    needed = set(selected)
    for group in reversed(GROUPS):
        if group in needed:
            needed.update(NEEDS[group])
    params = {k: getattr(args, k) for k in ("customers", "days", "seed", "dates", "memory_limit")}
    run = Runner(workdir, console)
    rows: list[Row] = []
    gen: dict[str, Any] = {}
    ran: set[str] = set()
    for group in GROUPS:
        if group not in needed:
            continue
        marker = workdir / f".bench-done-{group}.json"
        report = group in selected
        if reuse and not report and not ran & set(NEEDS[group]) and marker.exists():
            done = json.loads(marker.read_text())
            if done["params"] == params:
                console.print(f"[bold]{group}[/bold] (needed by a later step): reusing the output in {workdir}")
                gen = done["result"] if group == "generate" else gen
                continue
        console.print(f"[bold]{group}[/bold]{'' if report else ' (needed by a later step)'}")
        marker.unlink(missing_ok=True)
        if group == "generate":
            new, gen = bench_generate(run, args, report)
        elif group == "ingest":
            new = bench_ingest(run, gen, report)
        elif group == "features":
            new = bench_features(run, args, report)
        elif group == "retrieval":
            new = bench_retrieval(run, args)
        else:
            new = bench_online(run, args)
        rows += new
        ran.add(group)
        marker.write_text(json.dumps({"params": params, "result": gen if group == "generate" else {}}))
    return rows


def render(rows: Sequence[Row], title: str) -> Table:
    """The single results table; each row's notes are numbered footnotes under it."""
    table = Table(title=title, show_lines=True, caption_justify="left")
    right = {"#", "peak RSS", "baseline RSS", "x baseline"}
    unbroken = right | {"scale", "figure", "baseline figure"}
    for col in (
        "#",
        "benchmark",
        "scale",
        "figure",
        "peak RSS",
        "baseline",
        "baseline figure",
        "baseline RSS",
        "x baseline",
        "target",
    ):
        table.add_column(col, justify="right" if col in right else "left", overflow="fold", no_wrap=col in unbroken)

    def mib(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f} MiB"

    def times(ratio: float | None) -> str:
        if ratio is None:
            return "-"
        return f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.1f}x"

    notes = []
    for number, r in enumerate(rows, start=1):
        target = r.target
        if r.met is not None:
            target = f"{target}: [green]met[/green]" if r.met else f"{target}: [red]MISSED[/red]"
        table.add_row(
            str(number),
            r.name,
            r.scale,
            r.figure,
            mib(r.peak_rss_mib),
            r.baseline,
            r.baseline_figure,
            mib(r.baseline_rss_mib),
            times(r.ratio),
            target,
        )
        if r.notes:
            notes.append(f"{number}. {r.notes}")
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    footer = [
        "peak RSS: resident high-water mark of the process that did the work (one fresh process per step); "
        "x baseline: time / baseline time, p50 / p50 for latency.",
        f"Load average (1/5/15 min) at the end: {load} on {len(os.sched_getaffinity(0))} cores; "
        "other work on the machine lengthens wall times, CPU times much less.",
        *notes,
    ]
    table.caption = "\n".join(footer)
    return table


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--only",
        type=lambda text: [g.strip() for g in text.split(",") if g.strip()],
        default=list(GROUPS),
        help=f"comma-separated groups to report, from {','.join(GROUPS)} (default: all)",
    )
    parser.add_argument("--dates", type=int, default=52, help="weekly observation dates in the feature build")
    parser.add_argument("--memory-limit", default="6GB", help="DuckDB memory_limit of the feature build")
    parser.add_argument("--entity-rows", type=int, default=500_000, help="entity rows of the retrieval benchmark")
    parser.add_argument("--repeats", type=int, default=200, help="timed online lookups per figure")
    parser.add_argument("--warmup", type=int, default=20, help="untimed online lookups before timing")
    parser.add_argument("--redis", default="127.0.0.1:6379", help="host:port of the Redis online store")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep the data here instead of in a temporary directory; a later run with the same "
        "--customers/--days/--seed reuses it for the steps --only does not select",
    )
    args = parser.parse_args(argv)
    unknown = set(args.only) - set(GROUPS)
    if unknown or not args.only:
        parser.error(f"--only takes groups from {','.join(GROUPS)}, got {','.join(args.only) or 'nothing'}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, run the benchmarks, print the table."""
    args = parse_args(argv)
    progress = Console(stderr=True)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        rows = run_all(args, args.workdir.resolve(), progress, reuse=True)
    else:
        with tempfile.TemporaryDirectory(prefix="churn-bench-") as tmp:
            rows = run_all(args, Path(tmp), progress)
    title = (
        f"churn bench: {args.customers:,} customers x {args.days} days, seed {args.seed}, "
        f"{len(os.sched_getaffinity(0))} cores, {', '.join(g for g in GROUPS if g in args.only)}"
    )
    Console(width=max(200, shutil.get_terminal_size().columns)).print(render(rows, title))


if __name__ == "__main__":
    main()
