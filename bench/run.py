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
- [serving] The BentoML scoring service (`serving.service:ChurnService`) and batch scoring, on a
  300-tree XGBoost (depth 6) over the 43 features of a small workspace the step builds itself
  (600 customers x 220 days; independent of --customers/--days). Closed loop with wrk (needs the
  `wrk` binary; 1 and 8 connections, `--serving-connections`; 15 s per run after a 3 s warm-up):
  POST /score with one customer id, adaptive batching on and off, beside a minimal BentoML 1.4
  endpoint that only predicts the same customers' online features (target: /score keeps >= 70 %
  of its requests/s), that endpoint beside the same in FastAPI + uvicorn, and the /score path in
  process; batch sizes from the service's histogram. Open loop (aiohttp, requests sent on
  schedule, latency from the scheduled time): /score at 100 requests/s for 60 s, batching on
  beside off (target: no errors, p99 <= 50 ms). /score_features with 1,000 rows per request
  (30 sequential requests; requests of >= 256 rows skip the batching model service, so batching
  on and off both score them in the API process) beside in-process `Predictor.score` of the rows
  (the served explainer, `auto`: XGBoost's approximate contributions at this size; target: p50
  <= 50 ms), and that beside `Booster.inplace_predict` and `Predictor.score` with exact SHAP for
  every row (`explainer="shap"`), with the time per stage (`Predictor.matrix`, predict, SHAP, ...;
  XGBoost's approximate contributions and `Predictor.probabilities` in the notes).
  Batch scoring (`crm.alerts.score_alerts` after the Feast read) of 1,000,000 customers
  (`--serving-batch-rows`; workspace feature rows drawn with replacement, new ids) with reasons for
  the top 20,000 rows of the alert list (`serving.batch_reasons_top`, the default) beside a bare
  `Booster.predict` of the same rows, each in a fresh process with its peak memory (target: >= half
  the bare rows/s), with the time per stage; the same with reasons for no row (`reasons_top=0`)
  and with reasons for every row (`reasons_top=None`, on the first 100,000 rows only), each beside
  bare predict. Load generators share the cores with the servers. Script: `bench/serving.py`; its
  raw figures stay in `<workdir>/serving/result.json`.
- [drift] the drift report (`monitoring.drift.drift_report`, both engines) beside a SciPy `ks_2samp`
  loop over the same columns, and Evidently's `DataDriftPreset` (run and save_html) beside it, on seeded
  synthetic reference and current frames of `--drift-rows` rows (100,000) x `--drift-columns`
  columns (40), one column shifted by 0.2 sd (target: <= 5x the KS loop, flagging only that
  column); medians of 3 interleaved runs. Needs no generated data or workspace. Script:
  `bench/drift.py` (also runnable alone).

Each step runs in a fresh Python process (`bench/steps.py`; the serving and drift groups:
`bench/serving.py`, `bench/drift.py`), and its peak memory is that process's
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from core import names

STEPS_SCRIPT = Path(__file__).resolve().parent / "steps.py"
SERVING_SCRIPT = Path(__file__).resolve().parent / "serving.py"
DRIFT_SCRIPT = Path(__file__).resolve().parent / "drift.py"
SCRIPTS: dict[str, list[str]] = {"serving": [str(SERVING_SCRIPT)], "drift": [str(DRIFT_SCRIPT), "step"]}
"""Steps run by a script of their own (command line before ARGS_JSON RESULT_JSON_PATH); the rest: steps.py STEP."""
GROUPS = ("generate", "ingest", "features", "retrieval", "online", "serving", "drift")
NEEDS: dict[str, tuple[str, ...]] = {
    "generate": (),
    "ingest": ("generate",),
    "features": ("ingest",),
    "retrieval": ("features",),
    "online": ("features",),
    "serving": (),
    "drift": (),
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


REFERENCE = {
    "bento_rps": 260.0,
    "bento_p50_ms": 3.6,
    "fastapi_rps": 650.0,
    "fastapi_p50_ms": 1.5,
    "predict_ms": 0.35,
}
"""The serving issue's figures for its reference machine (2 cores, load generator on the same cores):
the minimal BentoML and FastAPI endpoints at 1 connection, and the bare in-process predict."""


def rate(res: dict[str, Any]) -> str:
    """'812 req/s, p50 1.234 ms / p99 5.678 ms' of a wrk result of `bench/serving.py`."""
    return f"{res['rps']:,.0f} req/s, {latency(res)}"


def open_figure(res: dict[str, Any]) -> str:
    """'p50 12.3 / p99 1,234 ms, 5 errors' of an open-loop result of `bench/serving.py`."""

    def ms(value: float) -> str:
        return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"

    return f"p50 {ms(res['p50'])} / p99 {ms(res['p99'])} ms, {sum(res['errors'].values()):,} errors"


def _errors(*results: dict[str, Any]) -> str:
    """'no errors', or the non-2xx answers and socket errors of wrk results."""
    bad = sum(r["non_2xx"] for r in results)
    sockets = sum(r["socket_errors"] for r in results)
    return "no errors" if bad + sockets == 0 else f"{bad} non-2xx answers, {sockets} socket errors"


def _batches(stats: dict[str, float]) -> str:
    """'1,234 model batches of 2.50 calls on average, 80% of them 2+ calls' (BentoML's histogram counts calls)."""
    return (
        f"{stats['batches']:,.0f} model batches of {stats['mean']:.2f} calls on average, "
        f"{stats['merged_share']:.0%} of them merging 2+ calls"
    )


STEPS = {
    "online": "online read (OnlineReader)",
    "matrix": "model input (float32 array)",
    "model": "model step (exact SHAP contributions from the TreeSHAP tables; probability from their sum)",
    "answers": "answers (reasons)",
    "crm": "CRM layers",
    "log": "prediction log",
}
"""Stages of the one-customer /score path `bench/serving.py` times, and their labels."""
BIG_STEPS = {
    "parse": "JSON parse + pydantic",
    "validate": "validate_feature_rows",
    "matrix": "model input (DMatrix)",
    "model": "model step (approx contributions; probability from their sum)",
    "answers": "answers (reasons)",
    "crm": "CRM layers",
    "log": "prediction log",
    "json": "JSON answer",
}
"""Stages of a /score_features request `bench/serving.py` times on 1,000 rows, and their labels."""


def agreement_text(agreement: dict[str, float]) -> str:
    """What `bench.serving.reasons_agreement` measured, in words."""
    return (
        f"on these {agreement['rows']:,} rows the approximation (explainer approx) names exact SHAP's first reason "
        f"for {agreement['top1']:.0%} of them, the same reasons for {agreement['same_set']:.0%} (in the same order "
        f"{agreement['same_list']:.0%}), and {agreement['overlap']:.0%} of exact SHAP's reasons on average"
    )


def stages(timed: dict[str, dict[str, float]], labels: dict[str, str]) -> str:
    """'model frame 5.1 ms (12%), ...': p50 of each stage and its share of their sum."""
    total = sum(timed[k]["p50"] for k in labels)
    return ", ".join(f"{label} {timed[k]['p50']:.1f} ms ({timed[k]['p50'] / total:.0%})" for k, label in labels.items())


def bench_serving(run: Runner, args: argparse.Namespace) -> list[Row]:
    """The scoring service over HTTP and batch scoring, beside their baselines (see the module docstring)."""
    res = run(
        "serving",
        workdir=str(run.workdir),
        seed=args.seed,
        connections=args.serving_connections,
        wrk_seconds=args.serving_seconds,
        open_rate=args.serving_open_rate,
        open_seconds=args.serving_open_seconds,
        big_requests=args.serving_big_requests,
        batch_rows=args.serving_batch_rows,
    )
    (run.workdir / "serving" / "result.json").write_text(json.dumps(res, indent=1))
    model, local = res["model"], res["in_process"]
    rows: list[Row] = []

    def p50_ratio(a: dict[str, Any], b: dict[str, Any]) -> float | None:
        return a["p50"] / b["p50"] if b["p50"] > 0 else None

    def score_row(
        name: str,
        scale: str,
        result: dict[str, Any],
        base: dict[str, Any],
        base_name: str,
        minimal: dict[str, Any],
        like: str = "",
        extra: str = "",
    ) -> Row:
        """A /score throughput row beside `base`, its target a share of the minimal endpoint's req/s."""
        share = result["rps"] / minimal["rps"]
        return Row(
            name,
            scale,
            rate(result),
            baseline=base_name,
            baseline_figure=rate(base),
            ratio=p50_ratio(result, base),
            target=f">= 70% of minimal BentoML req/s{like} (got {share:.0%})",
            met=share >= 0.7,
            notes=f"{result['requests']:,} requests, {_errors(result, base)}{extra}",
        )

    one = local["single"]["score_path"]
    for c in args.serving_connections:
        conn = f"{c} connection{'s' if c > 1 else ''}"
        on, off, bento, fast = (res[f"wrk_{k}_c{c}"] for k in ("score_on", "score_off", "bento", "fastapi"))
        scale = f"wrk, {c} conn., {off['seconds']:.0f} s"
        for mode, result, base, base_name in (
            ("off", off, bento, "minimal BentoML 1.4 endpoint (predict only, same customers' features)"),
            ("on", on, off, "same, batching off"),
        ):
            extra = ""
            if mode == "on":
                extra = f"; {_batches(result['batching'])}"
            elif c == 1:
                extra = (
                    f"; the same path in process, no HTTP (online read, exact SHAP contributions and the "
                    f"probability from them, reasons, CRM layers, log): {latency(one)}, "
                    f"~{1e3 / one['p50']:,.0f} calls/s on one thread (row below)"
                )
            name = f"POST /score, 1 customer per request, batching {mode}, {conn}"
            rows.append(score_row(name, scale, result, base, base_name, bento, extra=extra))
        approx = res[f"wrk_score_approx_c{c}"]
        rows.append(
            score_row(
                f"POST /score, 1 customer per request, batching off, explainer approx (not exact SHAP), {conn}",
                scale,
                approx,
                bento,
                "minimal BentoML 1.4 endpoint",
                bento,
                extra=f"; reasons from XGBoost's approximate contributions, which name exact SHAP's first reason "
                f"for {local['agreement']['top1']:.0%} of customers (row 'Predictor.score ... explainer shap'); "
                f"{approx['rps'] / off['rps']:.0%} of /score with exact SHAP",
            )
        )
        two, bento2 = res[f"wrk_score_off2_c{c}"], res[f"wrk_bento2_c{c}"]
        rows.append(
            score_row(
                f"POST /score, 1 customer per request, batching off, 2 API workers (serving.workers 2), {conn}",
                scale,
                two,
                bento2,
                "minimal BentoML 1.4 endpoint, 2 workers",
                bento2,
                like=", like for like",
                extra=f"; {two['rps'] / bento['rps']:.0%} of the minimal endpoint with its default single worker "
                f"({bento['rps']:,.0f} req/s), {two['rps'] / off['rps']:.0%} of /score with 1 worker",
            )
        )
        rows.append(
            Row(
                f"minimal BentoML 1.4 endpoint (predict only: float32 array, DMatrix, predict; 1 feature row per "
                f"request), {conn}",
                scale,
                rate(bento),
                baseline="same endpoint in FastAPI + uvicorn",
                baseline_figure=rate(fast),
                ratio=p50_ratio(bento, fast),
                notes=f"{bento['requests']:,} and {fast['requests']:,} requests, {_errors(bento, fast)}",
            )
        )
    if "wrk_bento_c1" in res:
        bento1, fast1, predict1 = res["wrk_bento_c1"], res["wrk_fastapi_c1"], local["single"]["predict"]
        speed = [bento1["rps"] / REFERENCE["bento_rps"], fast1["rps"] / REFERENCE["fastapi_rps"]]
        slower = [bento1["p50"] / REFERENCE["bento_p50_ms"], fast1["p50"] / REFERENCE["fastapi_p50_ms"]]
        rows.append(
            Row(
                "this machine against the serving issue's reference machine: the minimal endpoints, 1 connection",
                "wrk, 1 conn.",
                f"minimal BentoML {rate(bento1)}; minimal FastAPI {rate(fast1)}",
                baseline="the serving issue's figures for its reference machine (2 cores)",
                baseline_figure=f"{REFERENCE['bento_rps']:,.0f} req/s, p50 {REFERENCE['bento_p50_ms']} ms; "
                f"{REFERENCE['fastapi_rps']:,.0f} req/s, p50 {REFERENCE['fastapi_p50_ms']} ms",
                ratio=sum(slower) / len(slower),
                notes=f"ratio: the mean of the two p50 ratios ({slower[0]:.2f}x BentoML, {slower[1]:.2f}x FastAPI); "
                f"throughput {speed[0]:.0%} and {speed[1]:.0%} of the reference's. The issue's absolute targets "
                f"(open-loop p99 <= 50 ms, <= 50 ms per 1,000-row request) were set on the reference machine. "
                f"In-process predict of one JSON row as the minimal endpoints do it (array, DMatrix, predict): "
                f"{latency(predict1)}; the issue's bare predict on the reference machine: {REFERENCE['predict_ms']} ms",
            )
        )
    rows.append(
        Row(
            "/score path in process (online read, model input, exact SHAP contributions and the probability "
            "from their sum, reasons, CRM layers, log), no HTTP",
            "1 customer per call",
            latency(one),
            baseline="in-process predict of the JSON row as the minimal endpoints do (float32 array, DMatrix, predict)",
            baseline_figure=latency(local["single"]["predict"]),
            ratio=p50_ratio(one, local["single"]["predict"]),
            notes=f"p50 per stage: {stages(local['steps'], STEPS)}; the model step with XGBoost's pred_contribs "
            f"instead of the tables (DMatrix included, one thread) {latency(local['steps']['xgb_contribs'])}; "
            f"the same online read through Feast's client "
            f"(get_online_features(...).to_df(), what /score used before) {latency(local['steps']['feast_client'])}; "
            f"the whole path with the booster at nthread=1 {latency(local['single']['score_path_1thread'])}, with "
            f"explainer approx {latency(local['single']['score_path_approx'])}. "
            f"{model['trees']}-tree XGBoost (depth 6) on "
            f"{model['features']} features ({model['categorical']} categorical), trained on {model['train_rows']:,} "
            f"rows of a 600-customer x 220-day workspace, champion v{model['version']}; service startup until "
            f"ready: {res['startup_on']:.0f} s batching on (two processes), {res['startup_off']:.0f} s off; "
            f"workspace + training {res['setup_seconds']:.0f} s",
        )
    )

    for mode, other in (("on", "off"), ("off", "on")):
        loop, base = res[f"open_{mode}"], res[f"open_{other}"]
        ok = not loop["errors"] and loop["p99"] <= 50
        figure = open_figure(loop)
        notes = (
            f"{loop['requests']:,} requests sent at {loop['sent_rate']:.1f}/s (generator at most "
            f"{loop['max_send_lag_ms']:.1f} ms late), {loop['ok_rate']:.1f} answers 200/s; "
            f"errors: {loop['errors'] or 'none'}; latency (of the answered requests, max {loop['max']:,.0f} ms) "
            "from each request's scheduled send time; "
            f"the server then took {loop['settle_seconds']:.0f} s to answer a request within 0.5 s again"
        )
        if mode == "on":
            notes += f"; {_batches(loop['batching'])}"
        rows.append(
            Row(
                f"POST /score open loop, 1 customer per request, batching {mode}",
                f"{args.serving_open_rate:g} req/s x {args.serving_open_seconds:g} s",
                figure,
                baseline=f"same, batching {other}",
                baseline_figure=open_figure(base),
                ratio=p50_ratio(loop, base),
                target="no errors, p99 <= 50 ms",
                met=ok,
                notes=notes,
            )
        )

    big, n = local["big"], local["big_rows"]
    for mode, other in (("on", "off"), ("off", "on")):
        http = res[f"big_{mode}"]
        notes = (
            f"{args.serving_big_requests} sequential requests, 1 connection; statuses {http['statuses']}; "
            f"request {res['big_body_bytes'] / 1e6:.1f} MB (within the default serving.max_request_bytes, "
            f"{res['max_request_bytes'] / 1e6:g} MB), answer {http['answer_bytes'] / 1e6:.1f} MB; batching "
            f"{other}: {latency(res[f'big_{other}'])}"
        )
        if mode == "on":
            notes += (
                f"; requests of >= {res['max_batch_size']} rows (serving.batching.max_batch_size) skip the model "
                f"service and score in the API process: {_batches(http['batching'])}"
            )
        rows.append(
            Row(
                f"POST /score_features, {n:,} rows per request, batching {mode}",
                f"{n:,} rows/request",
                latency(http),
                baseline="in-process Predictor.score of the same rows (served explainer auto: approx at this size)",
                baseline_figure=latency(big["score"]),
                ratio=p50_ratio(http, big["score"]),
                target="p50 <= 50 ms",
                met=http["p50"] <= 50,
                notes=notes,
            )
        )
    for name, what in (("bento", "BentoML 1.4"), ("fastapi", "FastAPI + uvicorn")):
        minimal = res.get(f"big_{name}")
        if minimal is None:  # a result from before these figures
            continue
        rows.append(
            Row(
                f"minimal {what} endpoint, POST /predict, the same {n:,}-row body",
                f"{n:,} rows/request",
                latency(minimal),
                baseline="POST /score_features of the same body, batching off",
                baseline_figure=latency(res["big_off"]),
                ratio=p50_ratio(minimal, res["big_off"]),
                notes=f"parses the body and predicts (DMatrix, predict), answers the {n:,} probabilities only: no "
                f"validation, reasons, CRM layers or log; statuses {minimal['statuses']}",
            )
        )
    total = sum(big[p]["p50"] for p in BIG_STEPS)
    rows.append(
        Row(
            f"in-process Predictor.score, {n:,} rows (explainer auto, the default: approx_contribs at this size)",
            f"{n:,} rows/call",
            latency(big["score"]),
            baseline="Booster.inplace_predict of the same rows (prepared frame)",
            baseline_figure=latency(big["inplace"]),
            ratio=p50_ratio(big["score"], big["inplace"]),
            notes=f"where a {n:,}-row /score_features request goes in process (p50 per stage, {total:.0f} ms in all): "
            f"{stages(big, BIG_STEPS)}; with the model service (requests under {res['max_batch_size']} rows), its "
            f"input (model_rows) {big['model_rows']['p50']:.1f} ms more. Alternatives: XGBoost approx_contribs "
            f"{big['approx_contribs']['p50']:.1f} ms instead of exact SHAP: XGBoost pred_contribs "
            f"{big['contribs']['p50']:.1f} ms (2 threads), the TreeSHAP tables {big['table_contribs']['p50']:.1f} ms "
            f"(1 thread); "
            f"Predictor.score with exact SHAP (explainer shap) {latency(big['score_shap'])} (row below); "
            f"Predictor.probabilities (no reasons) {latency(big['probabilities'])}",
        )
    )
    rows.append(
        Row(
            f"in-process Predictor.score, {n:,} rows, explainer shap (exact TreeSHAP for every row)",
            f"{n:,} rows/call",
            latency(big["score_shap"]),
            baseline="Booster.inplace_predict of the same rows (prepared frame)",
            baseline_figure=latency(big["inplace"]),
            ratio=p50_ratio(big["score_shap"], big["inplace"]),
            notes=f"{big['score_shap']['p50'] / big['score_approx']['p50']:.1f}x slower than explainer approx at p50; "
            f"{agreement_text(local['agreement'])}; "
            f"Predictor.probabilities (matrix, predict, calibration; no reasons) {latency(big['probabilities'])}",
        )
    )

    alerts, bare, profile = res["batch_alerts"], res["batch_bare"], res["batch_profile"]
    none, every = res["batch_alerts_none"], res["batch_alerts_all"]
    n = alerts["rows"]
    bare_rate = n / bare["seconds"]

    def bare_share(result: dict[str, Any]) -> float:
        """Rows/s of a batch figure as a share of bare predict's rows/s."""
        return (result["rows"] / result["seconds"]) / bare_rate

    def per_row_ratio(result: dict[str, Any]) -> float:
        """Seconds per row of a batch figure / bare predict's seconds per row."""
        return (result["seconds"] / result["rows"]) / (bare["seconds"] / n)

    frame = res["batch_frame"]
    spent = profile["stages"]
    us = {s: spent[s] / profile["rows"] * 1e6 for s in spent}
    every_row = ("probabilities", "tiers", "early_warning", "sort")
    total = sum(spent[s] for s in every_row)
    parts = {s: f"{s} {us[s]:.1f} us ({spent[s] / total:.0%})" for s in every_row}
    parts["probabilities"] += f" (Predictor.matrix {us['matrix']:.1f} us, predict {us['predict']:.1f} us)"
    parts["early_warning"] += (
        f" (evaluate_rules {us['evaluate_rules']:.1f} us, choose_actions {us['choose_actions']:.1f} us)"
    )
    where = ", ".join(parts.values())
    explain = (
        f"exact SHAP pred_contribs {us['contribs']:.1f} us + Predictor.reasons {us['reasons']:.1f} us; "
        f"XGBoost approx_contribs instead of SHAP {us['approx_contribs']:.1f} us"
    )
    rows.append(
        Row(
            f"batch scoring: crm.alerts.score_alerts after the Feast read (probability, tier, CRM layers, "
            f"expected loss, sorted alert list; reasons ({alerts.get('reasons_method') or 'shap'}) for the top "
            f"{alerts['explained']:,} rows, "
            f"serving.batch_reasons_top {alerts['reasons_top']})",
            f"{n:,} customers",
            throughput(alerts["seconds"], n, "rows"),
            alerts["peak_rss_mib"],
            "bare Booster.predict of the same rows (DMatrix built beforehand)",
            throughput(bare["seconds"], n, "rows"),
            bare["peak_rss_mib"],
            alerts["seconds"] / bare["seconds"],
            f">= 50% of bare predict's rows/s (got {bare_share(alerts):.1%})",
            bare_share(alerts) >= 0.5,
            f"rows drawn with replacement from the {frame['source_rows']:,} Feast feature rows of the workspace's "
            f"{frame['dates']} snapshot dates, given new customer ids, one date; {alerts['unique_customers']:,} "
            f"customers in the alert list, sorted by expected loss: {alerts['sorted']}; risk tiers "
            f"{', '.join(f'{t} {v:.0%}' for t, v in alerts['tiers'].items())}; CPU time "
            f"{alerts['cpu_seconds']:.0f} s (bare {bare['cpu_seconds']:.1f} s; its DMatrix took "
            f"{bare['dmatrix_seconds']:.1f} s); reasons for no row (reasons_top=0): "
            f"{throughput(none['seconds'], none['rows'], 'rows')} ({bare_share(none):.1%} of bare); for every row "
            f"(reasons_top=None, first {every['rows']:,} rows): {throughput(every['seconds'], every['rows'], 'rows')} "
            f"({bare_share(every):.1%} of bare; rows below). Per row on the first {profile['rows']:,} rows, every row: "
            f"{where}; per explained row: {explain}",
        )
    )
    rows.append(
        Row(
            "batch scoring, reasons for no row (score_alerts with reasons_top=0)",
            f"{none['rows']:,} customers",
            throughput(none["seconds"], none["rows"], "rows"),
            none["peak_rss_mib"],
            "bare Booster.predict of the same rows (DMatrix built beforehand)",
            throughput(bare["seconds"], n, "rows"),
            bare["peak_rss_mib"],
            per_row_ratio(none),
            notes=f"{bare_share(none):.1%} of bare predict's rows/s; {none['explained']:,} rows with reasons; CPU time "
            f"{none['cpu_seconds']:.1f} s; sorted by expected loss: {none['sorted']}",
        )
    )
    rows.append(
        Row(
            f"batch scoring, reasons ({every.get('reasons_method') or 'shap'}) for every row "
            "(score_alerts with reasons_top=None)",
            f"{every['rows']:,} customers",
            throughput(every["seconds"], every["rows"], "rows"),
            every["peak_rss_mib"],
            f"bare Booster.predict ({n:,} rows, rows/s compared)",
            throughput(bare["seconds"], n, "rows"),
            bare["peak_rss_mib"],
            per_row_ratio(every),
            notes=(
                f"only the first {every['rows']:,} rows of the frame (exact SHAP of all {n:,} would take many "
                "minutes); "
                if every["rows"] < n
                else "the whole frame; "
            )
            + f"x baseline is time per row / bare's; {bare_share(every):.1%} of bare predict's rows/s; "
            f"{every['explained']:,} rows with reasons; CPU time {every['cpu_seconds']:.0f} s",
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
    parser.add_argument("--entity-rows", type=int, default=500_000, help="entity rows of the retrieval benchmark")
    parser.add_argument("--repeats", type=int, default=200, help="timed online lookups per figure")
    parser.add_argument("--warmup", type=int, default=20, help="untimed online lookups before timing")
    parser.add_argument("--redis", default="127.0.0.1:6379", help="host:port of the Redis online store")
    parser.add_argument(
        "--serving-connections",
        type=lambda text: [int(c) for c in text.split(",") if c.strip()],
        default=[1, 8],
        help="comma-separated wrk connection counts of the closed-loop serving figures",
    )
    parser.add_argument(
        "--serving-seconds", type=float, default=15, help="timed seconds per wrk run (after 3 s warm-up)"
    )
    parser.add_argument(
        "--serving-open-rate", type=float, default=100, help="requests/s of the open-loop /score figure"
    )
    parser.add_argument("--serving-open-seconds", type=float, default=60, help="duration of the open-loop figure")
    parser.add_argument("--serving-big-requests", type=int, default=30, help="timed 1,000-row /score_features requests")
    parser.add_argument(
        "--serving-batch-rows", type=int, default=1_000_000, help="customers in the batch-scoring figure"
    )
    parser.add_argument("--drift-rows", type=int, default=100_000, help="rows per frame of the drift benchmark")
    parser.add_argument("--drift-columns", type=int, default=40, help="feature columns of the drift benchmark")
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
    data = f"{args.customers:,} customers x {args.days} days, " if set(args.only) - {"serving", "drift"} else ""
    title = (
        f"churn bench: {data}seed {args.seed}, "
        f"{len(os.sched_getaffinity(0))} cores, {', '.join(g for g in GROUPS if g in args.only)}"
    )
    stolen = steal_share(started, cpu_times())
    Console(width=max(200, shutil.get_terminal_size().columns)).print(render(rows, title, stolen))


if __name__ == "__main__":
    main()
