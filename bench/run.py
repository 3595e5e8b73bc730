"""Benchmarks: one table, every figure beside a baseline measured in the same run.

Run with `make bench` (`.venv/bin/python bench/run.py`: 100,000 customers x 365 days, about 10 M
events). Quick check: `.venv/bin/python bench/run.py --customers 5000 --days 200`. Subsets:
`--only features,retrieval,online` (the steps they need still run, unreported).

Rows (group in brackets, for `--only`):

- [generate] generate + write Parquet: events/s, beside `pyarrow.parquet.read_table` of the same
  file (best of three).
- [ingest] ingest + validate events and customers: rows/s, beside `pyarrow.parquet.read_table` of
  the events file (best of three).
- [features] feature build (`features.snapshots.build.write_snapshots`, plus reading the event day range
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
- [serving] The BentoML scoring service (`serving.service:ChurnService`, default serving settings,
  one worker), each figure beside a minimal BentoML 1.4 endpoint started in the same run
  (`bench.serving:MinimalBento`: parses the same JSON feature rows and predicts with the champion's
  booster; no validation, reasons, CRM layers or log), on the champion of a small workspace the
  step builds itself (600 customers x 220 days; independent of --customers/--days). Closed loop
  (aiohttp, `--serving-connections` 1 and 8, `--serving-seconds` 15 s after 3 s warm-up): POST
  /score with one customer id per request beside the minimal endpoint with that customer's online
  features (target at 8 connections: >= 70 % of its requests/s). Open loop (requests sent on
  schedule, latency from the scheduled time): /score at 100 requests/s for 60 s, and the minimal
  endpoint (target: no errors, p99 <= 50 ms). 1,000 feature rows per request, one connection
  (`--serving-big-requests` 30, taking turns): /score_features with the JSON body (target: p50 <=
  1.5x the minimal endpoint's p50 for the same body) and with the same rows as an Arrow IPC stream,
  reasons and all (target: p50 <= the minimal endpoint's JSON p50). The notes give the time per
  stage of both paths in process. The load generator shares the cores with the servers. Script:
  `bench/serving.py`; its raw figures stay in `<workdir>/serving/result.json`.
- [spark] the feature build on the Spark engine (`features.spark.snapshots.write_snapshots`,
  `--spark-master`, default local[2], driver memory `--spark-driver-memory` 6g) beside the DuckDB
  engine, same spec as [features] (no BG/NBD), same events, each in a fresh process: wall time and
  peak memory of both, the Spark JVM's `VmHWM` beside its Python driver's; the notes give the JVM's
  start-up (untimed) and how many values differ between the two files. Script: `bench/spark_build.py`.
- [drift] the drift report (`monitoring.drift.drift_report`, both engines) beside a SciPy `ks_2samp`
  loop over the same columns, and Evidently's `DataDriftPreset` (run and save_html) beside it, on seeded
  synthetic reference and current frames of `--drift-rows` rows (100,000) x `--drift-columns`
  columns (40), one column shifted by 0.2 sd (target: <= 5x the KS loop, flagging only that
  column); medians of 3 interleaved runs. Needs no generated data or workspace. Script:
  `bench/drift.py` (also runnable alone).
- [training] on its own generated workspaces (`--training-customers` x `--training-days`, 72,000
  x 420: about 1,000,000 training rows x 63 features after the split; independent of
  --customers/--days): `churn
  train`'s job (`training.pipeline.train`: Feast retrieval, one fixed parameter set, MLflow
  logging, registration, gate) beside bare `xgboost.train` (DMatrix + train, same parameters and
  rows), target <= 1.5x, the median ratio of `--training-pairs` (5) interleaved pairs, with the
  time per stage in the notes; Optuna with pruning beside without,
  same wall-clock budget (`--training-budget`); the Dask engine on a 2-worker `LocalCluster`
  beside the local engine (time, test AUC); and the growth of each stage (generate, ingest,
  build, retrieval, training, scoring) over `--training-sizes` customers. Script:
  `bench/train_scale.py` (also runnable alone); raw figures in `<workdir>/training/last-result.json`.
- [stream] event-to-alert latency p50 / p99 at 100 events/s for 60 s, over HTTP (POST /events on
  the scoring service, 1 and 10 events per request) and through Redis (XADD -> `churn stream`), timed
  by a local webhook receiver (event sent -> alert received), and event -> features written (the
  stream's freshness log); 30 % complaints, 2 % repeated event ids; lost and double-counted events
  counted in the event log (target: p99 <= 1 s, 0 lost, 0 double-counted), beside the wall time
  of one batch build (features + materialize + scoring) of the same 1,000-customer workspace.
  Script: `bench/stream.py`.

Each step runs in a fresh Python process (`bench/steps.py`; the serving and drift groups:
`bench/serving.py`, `bench/drift.py`), and its peak memory is that process's
resident high-water mark (`VmHWM`) right after the timed part: earlier steps do not count, and
neither do the checks that follow. "x baseline" is time / baseline time (p50 / p50 for latency).
The notes under the table give the CPU time of the feature build and the retrieval, and the caption
the load average: on a busy machine wall times grow, CPU times much less.

`--workdir DIR` keeps the data; a later run with the same --customers/--days/--seed reuses the
generated, ingested and built data for the groups `--only` does not select.

The table is printed and also written to `--results DIR` (`bench/results/`, git-ignored) as
`bench-<groups>-<UTC time>.txt`, with its rows as JSON beside it (`.json`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from core import names

STEPS_SCRIPT = Path(__file__).resolve().parent / "steps.py"
SERVING_SCRIPT = Path(__file__).resolve().parent / "serving.py"
DRIFT_SCRIPT = Path(__file__).resolve().parent / "drift.py"
SPARK_SCRIPT = Path(__file__).resolve().parent / "spark_build.py"
STREAM_SCRIPT = Path(__file__).resolve().parent / "stream.py"
TRAINING_SCRIPT = Path(__file__).resolve().parent / "train_scale.py"
SCRIPTS: dict[str, list[str]] = {
    "serving": [str(SERVING_SCRIPT)],
    "drift": [str(DRIFT_SCRIPT), "step"],
    "spark_duckdb": [str(SPARK_SCRIPT), "duckdb"],
    "spark_spark": [str(SPARK_SCRIPT), "spark"],
    "spark_compare": [str(SPARK_SCRIPT), "compare"],
    "training": [str(TRAINING_SCRIPT), "step"],
    "stream": [str(STREAM_SCRIPT)],
}
"""Steps run by a script of their own (command line before ARGS_JSON RESULT_JSON_PATH); the rest: steps.py STEP."""
GROUPS = ("generate", "ingest", "features", "retrieval", "online", "serving", "drift", "spark", "training", "stream")
NEEDS: dict[str, tuple[str, ...]] = {
    "generate": (),
    "ingest": ("generate",),
    "features": ("ingest",),
    "retrieval": ("features",),
    "online": ("features",),
    "serving": (),
    "drift": (),
    "spark": ("ingest",),
    "training": (),
    "stream": (),
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
        """Run `step` of bench/steps.py (steps "serving", "drift": their scripts) with `kwargs`; return its JSON result.

        Raises:
            RuntimeError: The step failed; the message holds the end of its output.
        """
        result_path = self.workdir / f".bench-{step}-{time.monotonic_ns()}.json"
        started = time.perf_counter()
        command = SCRIPTS.get(step, [str(STEPS_SCRIPT), step])
        proc = subprocess.run(
            [sys.executable, *command, json.dumps(kwargs), str(result_path)],
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


def rate(res: dict[str, Any]) -> str:
    """'812 req/s, p50 1.234 ms / p99 5.678 ms' of a closed-loop result of `bench/serving.py`."""
    return f"{res['rps']:,.0f} req/s, {latency(res)}"


def open_figure(res: dict[str, Any]) -> str:
    """'p50 12.3 / p99 1,234 ms, 5 errors' of an open-loop result of `bench/serving.py`."""

    def ms(value: float) -> str:
        return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"

    return f"p50 {ms(res['p50'])} / p99 {ms(res['p99'])} ms, {sum(res['errors'].values()):,} errors"


def _errors(*results: dict[str, Any]) -> str:
    """'no errors', or the errors of load-generator results (status or exception -> count)."""
    merged: dict[str, int] = {}
    for r in results:
        for key, n in r["errors"].items():
            merged[key] = merged.get(key, 0) + n
    return "no errors" if not merged else "errors " + ", ".join(f"{k}: {n}" for k, n in sorted(merged.items()))


STEPS = {
    "online": "online read",
    "rows": "feature columns",
    "model": "model (exact SHAP contributions, probability from their sum)",
    "answers": "answers (calibration, tier, reasons)",
    "crm": "CRM layers",
    "log": "prediction log",
    "json": "JSON answer",
}
"""Stages of the one-customer /score path `bench/serving.py` times, and their labels."""
BIG_STEPS = {
    "parse": "JSON parse (request model)",
    "validate": "validate_feature_rows",
    "model": "model",
    "answers": "answers (calibration, tier, reasons)",
    "crm": "CRM layers",
    "log": "prediction log",
    "json": "JSON answer",
}
"""Stages of a /score_features request `bench/serving.py` times on 1,000 rows, and their labels."""


def stages(timed: dict[str, dict[str, float]], labels: dict[str, str]) -> str:
    """'model frame 5.1 ms (12%), ...': p50 of each stage and its share of their sum."""
    total = sum(timed[k]["p50"] for k in labels)
    return ", ".join(f"{label} {timed[k]['p50']:.2f} ms ({timed[k]['p50'] / total:.0%})" for k, label in labels.items())


def bench_serving(run: Runner, args: argparse.Namespace) -> list[Row]:
    """The scoring service over HTTP, each figure beside a minimal BentoML endpoint (see the module docstring)."""
    res = run(
        "serving",
        workdir=str(run.workdir),
        seed=args.seed,
        connections=args.serving_connections,
        seconds=args.serving_seconds,
        open_rate=args.serving_open_rate,
        open_seconds=args.serving_open_seconds,
        big_requests=args.serving_big_requests,
    )
    (run.workdir / "serving" / "result.json").write_text(json.dumps(res, indent=1))
    model, local = res["model"], res["in_process"]
    minimal_name = "minimal BentoML 1.4 endpoint: same customers' online features as JSON rows, parse + predict"
    rows: list[Row] = []

    def p50_ratio(a: dict[str, Any], b: dict[str, Any]) -> float | None:
        return a["p50"] / b["p50"] if b["p50"] > 0 else None

    one = local["single"]
    for c in args.serving_connections:
        score, minimal = res[f"closed_score_c{c}"], res[f"closed_minimal_c{c}"]
        share = score["rps"] / minimal["rps"]
        notes = (
            f"{score['requests']:,} and {minimal['requests']:,} timed requests, {_errors(score, minimal)}; "
            f"{share:.0%} of the minimal endpoint's req/s; the load generator (aiohttp, same cores) used "
            f"{score['generator_cpu']:.0%} and {minimal['generator_cpu']:.0%} of a core"
        )
        if c == min(args.serving_connections):
            notes += (
                f"; in process, no HTTP: the /score path (ChurnService._score_ids) {latency(one['path'])}, p50 per "
                f"stage: {stages(one, STEPS)}"
            )
        rows.append(
            Row(
                f"POST /score, 1 customer id per request, closed loop, {c} connection{'s' if c > 1 else ''}",
                f"{args.serving_seconds:g} s after 3 s warm-up",
                rate(score),
                baseline=minimal_name,
                baseline_figure=rate(minimal),
                ratio=p50_ratio(score, minimal),
                target=f">= 70% of the minimal endpoint's req/s (got {share:.0%})" if c >= 8 else "",
                met=share >= 0.7 if c >= 8 else None,
                notes=notes,
            )
        )

    loop, base = res["open_score"], res["open_minimal"]
    rows.append(
        Row(
            "POST /score open loop, 1 customer id per request",
            f"{args.serving_open_rate:g} req/s x {args.serving_open_seconds:g} s",
            open_figure(loop),
            baseline=f"{minimal_name}, same schedule",
            baseline_figure=open_figure(base),
            ratio=p50_ratio(loop, base),
            target="0 errors, p99 <= 50 ms",
            met=not loop["errors"] and loop["p99"] <= 50,
            notes=f"{loop['requests']:,} requests sent at {loop['sent_rate']:.1f}/s (generator at most "
            f"{loop['max_send_lag_ms']:.1f} ms late), {loop['ok_rate']:.1f} answers 200/s, max latency "
            f"{loop['max']:,.0f} ms; errors: {loop['errors'] or 'none'} (minimal: {base['errors'] or 'none'}); "
            "latency from each request's scheduled send time",
        )
    )

    big, n = res["big"], local["big_rows"]
    js, arrow, minimal = big["json"], big["arrow"], big["minimal"]
    method = local["method"]
    ratio = p50_ratio(js, minimal)
    rows.append(
        Row(
            f"POST /score_features, {n:,} rows per request, JSON (reasons: {method})",
            f"{args.serving_big_requests} requests, 1 conn.",
            latency(js),
            baseline=f"minimal BentoML endpoint, the same {n:,}-row JSON body (parse + predict)",
            baseline_figure=latency(minimal),
            ratio=ratio,
            target="p50 <= 1.5x the minimal endpoint's",
            met=ratio is not None and ratio <= 1.5,
            notes=f"request {res['big_json_bytes'] / 1e6:.2f} MB, answer {js['answer_bytes'] / 1e6:.2f} MB (minimal: "
            f"{minimal['answer_bytes'] / 1e3:.0f} kB of probabilities); statuses {js['statuses']}, minimal "
            f"{minimal['statuses']}; the three 1,000-row requests take turns; in process, no HTTP: the handler's "
            f"work (_score_feature_rows) {latency(local['big']['path'])}, p50 per stage: "
            f"{stages(local['big'], BIG_STEPS)}",
        )
    )
    ratio = p50_ratio(arrow, minimal)
    rows.append(
        Row(
            f"POST /score_features, {n:,} rows per request, Arrow IPC stream (reasons: {method})",
            f"{args.serving_big_requests} requests, 1 conn.",
            latency(arrow),
            baseline=f"minimal BentoML endpoint, the same {n:,} rows as JSON (parse + predict)",
            baseline_figure=latency(minimal),
            ratio=ratio,
            target="p50 <= the minimal endpoint's (JSON)",
            met=ratio is not None and ratio <= 1,
            notes=f"request {res['big_arrow_bytes'] / 1e6:.2f} MB; answers identical to the JSON body's "
            f"(tests/e2e/test_service_http.py); statuses {arrow['statuses']}; in process: reading and validating "
            f"the stream {latency(local['big']['arrow'])} where JSON parse + validate_feature_rows take "
            f"{local['big']['parse']['p50'] + local['big']['validate']['p50']:.1f} ms at p50. Model: "
            f"{model['trees']} trees (max depth {model['max_depth']}) on {model['features']} features "
            f"({model['categorical']} categorical), champion v{model['version']} of a 600-customer x 220-day "
            f"workspace; service ready after {res['startup_service']:.0f} s; workspace + training "
            f"{res['setup_seconds']:.0f} s",
        )
    )
    return rows


def bench_drift(run: Runner, args: argparse.Namespace) -> list[Row]:
    """The drift report's engines beside a SciPy KS loop and Evidently's DataDriftPreset (`bench/drift.py`)."""
    res = run("drift", rows=args.drift_rows, columns=args.drift_columns, seed=args.seed)
    rows = [Row(**row) for row in res["rows"]]
    note = f"; peak RSS of the process (all contenders) {res['peak_rss_mib']:,.0f} MiB"
    rows[0] = replace(rows[0], notes=rows[0].notes + note)
    return rows


def bench_spark(run: Runner, args: argparse.Namespace) -> list[Row]:
    """The Spark engine's feature build beside the DuckDB engine's on the same events (`bench/spark_build.py`)."""
    common = {"workdir": str(run.workdir), "dates": args.dates, "memory_limit": args.memory_limit}
    spark_args = {"master": args.spark_master, "driver_memory": args.spark_driver_memory}
    duck = run("spark_duckdb", **common, **spark_args)
    spark = run("spark_spark", **common, **spark_args)
    same = run("spark_compare", duckdb_out=duck["out"], spark_out=spark["out"])
    n = duck["events"]
    jvm, driver = spark["jvm_peak_rss_mib"], spark["peak_rss_mib"]
    return [
        Row(
            f"feature build on Spark ({args.spark_master}): {spark['dates']} weekly dates x windows 7/30/90 d",
            f"{n:,} events",
            throughput(spark["seconds"], n, "events"),
            jvm + driver,
            "the DuckDB engine, same spec and events",
            throughput(duck["seconds"], n, "events"),
            duck["peak_rss_mib"],
            spark["seconds"] / duck["seconds"],
            notes=f"Spark peak RSS = JVM {jvm:,.0f} MiB + Python driver {driver:,.0f} MiB (driver memory "
            f"{args.spark_driver_memory}); JVM start-up {spark['startup_seconds']:.0f} s (untimed); CPU time of "
            f"the Python processes: Spark driver {spark['cpu_seconds']:.0f} s, DuckDB {duck['cpu_seconds']:.0f} s; "
            f"{spark['rows']:,} and {duck['rows']:,} rows x {spark['features']} features; {same['mismatches']:,} of "
            f"{same['compared_values']:,} values differ, {same['key_mismatches']:,} keys in one file only",
        )
    ]


def bench_training(run: Runner, args: argparse.Namespace) -> list[Row]:
    """Training end to end, pruning, Dask and growth, each beside its baseline (`bench/train_scale.py`)."""
    res = run(
        "training",
        customers=args.training_customers,
        days=args.training_days,
        sizes=args.training_sizes,
        budget=args.training_budget,
        pairs=args.training_pairs,
    )
    return [Row(**row) for row in res["rows"]]


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
        elif group == "online":
            new = bench_online(run, args)
        elif group == "serving":
            new = bench_serving(run, args)
        elif group == "spark":
            new = bench_spark(run, args)
        elif group == "training":
            new = bench_training(run, args)
        elif group == "stream":
            res = run("stream", workdir=str(run.workdir), seed=args.seed, rate=100, seconds=60, redis=args.redis)
            new = [Row(**row) for row in res["rows"]]
        else:
            new = bench_drift(run, args)
        rows += new
        ran.add(group)
        marker.write_text(json.dumps({"params": params, "result": gen if group == "generate" else {}}))
    return rows


def render(rows: Sequence[Row], title: str, stolen: float | None = None) -> Table:
    """The single results table; each row's notes are numbered footnotes under it.

    Args:
        rows: The figures, in order.
        title: The table's title.
        stolen: The share of CPU time stolen from this VM during the run (`steal_share`), if known.
    """
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
        "other work on the machine lengthens wall times, CPU times much less."
        + ("" if stolen is None else f" CPU steal during the run (time the VM's host ran other work): {stolen:.1%}."),
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
    parser.add_argument("--spark-master", default="local[2]", help="Spark master of the spark group")
    parser.add_argument("--spark-driver-memory", default="6g", help="Spark driver memory of the spark group")
    parser.add_argument("--entity-rows", type=int, default=500_000, help="entity rows of the retrieval benchmark")
    parser.add_argument("--repeats", type=int, default=200, help="timed online lookups per figure")
    parser.add_argument("--warmup", type=int, default=20, help="untimed online lookups before timing")
    parser.add_argument("--redis", default="127.0.0.1:6379", help="host:port of the Redis online store")
    parser.add_argument(
        "--serving-connections",
        type=lambda text: [int(c) for c in text.split(",") if c.strip()],
        default=[1, 8],
        help="comma-separated connection counts of the closed-loop serving figures",
    )
    parser.add_argument(
        "--serving-seconds", type=float, default=15, help="timed seconds per closed-loop run (after 3 s warm-up)"
    )
    parser.add_argument(
        "--serving-open-rate", type=float, default=100, help="requests/s of the open-loop /score figure"
    )
    parser.add_argument("--serving-open-seconds", type=float, default=60, help="duration of the open-loop figure")
    parser.add_argument("--serving-big-requests", type=int, default=30, help="timed 1,000-row /score_features requests")
    parser.add_argument("--drift-rows", type=int, default=100_000, help="rows per frame of the drift benchmark")
    parser.add_argument("--drift-columns", type=int, default=40, help="feature columns of the drift benchmark")
    parser.add_argument("--training-customers", type=int, default=72_000, help="customers of the training runs")
    parser.add_argument("--training-days", type=int, default=420, help="days of the training workspaces")
    parser.add_argument(
        "--training-sizes",
        type=lambda text: [int(c) for c in text.split(",") if c.strip()],
        default=[2_500, 5_000],
        help="comma-separated customer counts of the growth (the smallest: pruning and Dask)",
    )
    parser.add_argument("--training-budget", type=float, default=120, help="wall seconds per Optuna arm")
    parser.add_argument(
        "--training-pairs", type=int, default=5, help="end-to-end training runs, each beside a bare run (median ratio)"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=Path(__file__).resolve().parent / "results",
        help="where the table goes as text and JSON (default bench/results)",
    )
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


def cpu_times() -> tuple[int, int] | None:
    """The machine's CPU time so far, (stolen, all) in clock ticks, from /proc/stat (None elsewhere).

    Steal is time a virtual machine's CPUs wanted to run but the host ran something else: a share
    of it during a run makes every figure of that run slower, baselines included.
    """
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    ticks = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return ticks[7], sum(ticks)


def steal_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of CPU time stolen between two `cpu_times` readings."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, run the benchmarks, print the table."""
    args = parse_args(argv)
    progress = Console(stderr=True)
    started = cpu_times()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        rows = run_all(args, args.workdir.resolve(), progress, reuse=True)
    else:
        with tempfile.TemporaryDirectory(prefix="churn-bench-") as tmp:
            rows = run_all(args, Path(tmp), progress)
    data = (
        f"{args.customers:,} customers x {args.days} days, "
        if set(args.only) - {"serving", "drift", "training"}
        else ""
    )
    title = (
        f"churn bench: {data}seed {args.seed}, "
        f"{len(os.sched_getaffinity(0))} cores, {', '.join(g for g in GROUPS if g in args.only)}"
    )
    stolen = steal_share(started, cpu_times())
    table = render(rows, title, stolen)
    Console(width=max(200, shutil.get_terminal_size().columns)).print(table)
    save(table, rows, args)


def save(table: Table, rows: Sequence[Row], args: argparse.Namespace) -> Path:
    """Write the table as plain text and its rows as JSON to `args.results`; return the text file's path."""
    args.results.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = args.results / f"bench-{'-'.join(g for g in GROUPS if g in args.only)}-{stamp}.txt"
    recorder = Console(record=True, width=200, file=io.StringIO())
    recorder.print(table)
    path.write_text(recorder.export_text())
    path.with_suffix(".json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    print(f"table written to {path}", file=sys.stderr)
    return path


if __name__ == "__main__":
    main()
