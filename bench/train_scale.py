"""Training benchmarks (the group `training` of `bench/run.py`): the platform beside bare XGBoost, in one run.

Run as the group `training` of `bench/run.py` (`--only training`, `--training-customers`,
`--training-days`, `--training-sizes`, `--training-budget`), which runs it in a fresh process as
`python bench/train_scale.py step ARGS_JSON RESULT_JSON_PATH` (the keyword arguments of `measure` in,
`{"rows": [...]}` out); or alone: `.venv/bin/python bench/train_scale.py [--customers 72000]
[--days 420] [--sizes 2500,5000] [--budget 120] [--workdir DIR]`. Every measurement below runs
in a fresh process of its own (`python bench/train_scale.py sub NAME ARGS_JSON RESULT_JSON_PATH`),
whose peak memory is its resident high-water mark (`VmHWM`) right after the timed part.

Data: the generator's customers x days (`--customers` x `--days`, seed 7: 72,000 x 420 gives
1,692,592 labelled rows over 48 weekly observation dates, about 1,000,000 of them training rows
after the out-of-time split), ingested, built (DuckDB) and
applied to Feast (SQLite registry, DuckDB offline store) in a workspace under
`<workdir>/training/` that a later run with the same sizes reuses.

Measured:

- end to end: `training.pipeline.train` (what `churn train` runs) with ONE fixed parameter set
  (the search space narrowed to it, `n_trials: 1`): Feast retrieval of the training set, the split,
  one Optuna trial (fit with early stopping, its MLflow run), the final model (trees, logistic
  regression for the blend, calibration), the test evaluation against the baselines, SHAP
  importance and report, the model bundle logged and registered, the gate. Each stage is timed
  by wrapping the function `train` calls (the notes give the breakdown). The baseline, in a
  fresh process on the same train and validation rows (written to Parquet by the platform's
  process after its timing): `xgboost.DMatrix` of both parts and `xgboost.train` with the same
  parameters, rounds, early stopping, seed and threads. Run `--pairs` times (default 5), each
  platform run followed by a baseline run, because one VM's figures vary by seconds between runs;
  the figures are the pair with the median ratio, every pair listed in its notes. Target: <= 1.5x.
- pruning: the Optuna study alone (the training set prepared first, untimed) on the workspace of
  the smallest `--sizes` entry, with the default search space, once with pruning and once without,
  each for `--budget` seconds of wall time (no trial starts after it): trials completed and
  pruned, and the best validation ROC AUC.
- Dask: `train` with `training.engine: dask` on a 2-worker `LocalCluster` (1 thread each) beside
  `training.engine: local`, both with the fixed parameter set on the smallest size's workspace:
  wall time and test ROC AUC. The Dask run writes the training set in Parquet parts of 20,000 rows
  (`training.dask.chunk_rows`), so each worker gets rows: with fewer parts than workers,
  `xgboost.dask` fails on the worker left without input when a feature is categorical.
- growth: generate, ingest, feature build (+ Feast apply), retrieval, training (the end-to-end run
  above without retrieval) and batch scoring (`crm.alerts.scored_features` of the registered
  model: Feast retrieval of the newest snapshot, probabilities, reasons for the top rows) at each
  of `--sizes` and `--customers`, with the fitted exponent b of time ~ customers^b per stage and a
  linear fit (fixed seconds + seconds per million customers), on CPU time where every size has it.

Each run of `train` uses a model name of its own, so the gate never loads an older champion.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

FIXED = {
    "eta": 0.1,
    "max_depth": 6,
    "min_child_weight": 5.0,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "lambda": 1.0,
}
"""The one parameter set of the end-to-end and Dask runs (scale_pos_weight: balanced)."""
TARGET_RATIO = 1.5
"""The platform's end-to-end run may take at most this many times bare xgboost.train."""
SEED = 7
STAGES = ("generate", "ingest", "build", "retrieval", "training", "scoring")


def peak_rss_mib() -> float:
    """This process's resident high-water mark (`VmHWM`), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def settings_for(workspace: Path, **training: Any) -> Any:
    """The embedded default profile on `workspace`, with `training` overrides."""
    from core.settings import parse_settings

    raw: dict[str, Any] = {"workspace": str(workspace)}
    if training:
        raw["training"] = training
    return parse_settings(raw, source="bench", env={})


def fixed_training(model_name: str, **extra: Any) -> dict[str, Any]:
    """Training overrides: one trial of the fixed parameter set."""
    search = {k if k != "lambda" else "reg_lambda": [v, v] for k, v in FIXED.items()}
    search["max_depth"] = [FIXED["max_depth"], FIXED["max_depth"]]
    return {"n_trials": 1, "model_name": model_name, "search": {**search, "scale_pos_weight": "balanced"}, **extra}


# --- sub-steps, each in a fresh process ------------------------------------------------------------


def sub_stage(workspace: str, stage: str, customers: int, days: int) -> dict[str, Any]:
    """One data stage on `workspace`: generate, ingest, or build (feature build + Feast apply)."""
    ws = Path(workspace)
    settings = settings_for(ws)
    started, cpu = time.perf_counter(), cpu_seconds()
    out: dict[str, Any] = {}
    if stage == "generate":
        from features.generator.dataset import generate, write_generated

        _, events = write_generated(generate(customers, days, SEED), ws / "raw")
        import pyarrow.parquet as pq

        out["events"] = pq.read_metadata(events).num_rows
    elif stage == "ingest":
        from features.ingest import ingest

        ingest(settings, customers_path=ws / "raw" / "customers.parquet", events_path=ws / "raw" / "events.parquet")
    else:
        from features.pipeline import apply_features, build_features

        build_features(settings, incremental=False)
        apply_features(settings)
    seconds, cpu_s = time.perf_counter() - started, cpu_seconds() - cpu
    peak = peak_rss_mib()
    if stage == "build":
        import pandas as pd

        from training.pipeline import configure_mlflow

        labels = pd.read_parquet(ws / "features" / "labels.parquet")
        out["label_rows"], out["dates"] = len(labels), int(labels["event_timestamp"].nunique())
        configure_mlflow(settings)  # the tracking store exists before any timed run, as in steady use
    return {"seconds": seconds, "cpu_seconds": cpu_s, "peak_rss_mib": peak, **out}


class StageClock:
    """Inclusive wall time of named functions, by wrapping module attributes."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, module: Any, attr: str, label: str) -> None:
        """Time every call of `module.attr` under `label`."""
        inner = getattr(module, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - started

        setattr(module, attr, timed)


TOP_STAGES = {
    "configure_mlflow": "MLflow setup",
    "labelled": "labels read",
    "historical_frame": "Feast retrieval",
    "out_of_time_split": "split",
    "fingerprint": "fingerprint",
    "git_commit": "git commit",
    "open_study": "Optuna study",
    "run_trials": "tuning (1 trial)",
    "best_of": "best trial",
    "final_model": "final model",
    "judge_on_test": "test evaluation + baselines",
    "_log_evaluation": "evaluation logging (SHAP, report)",
    "reference_sample": "drift reference",
    "log_bundle": "model bundle logged + registered",
    "_gate": "gate",
    "record_and_apply": "gate recorded",
}
"""Functions of `training.pipeline` that `train` calls -> their stage name."""


def sub_platform(workspace: str, model_name: str, dump: str | None = None, engine: str = "local") -> dict[str, Any]:
    """`training.pipeline.train` with the fixed parameter set, timed by stage; `dump`: write the
    train/valid rows and parameters there afterwards, for the bare baseline."""
    import training.fitting as fitting
    import training.pipeline as pipeline
    import training.tune as tune

    clock = StageClock()
    for attr, label in TOP_STAGES.items():
        clock.wrap(pipeline, attr, label)
    clock.wrap(tune, "fit", "  trial: xgboost fit")
    clock.wrap(fitting, "fit", "  final: xgboost fit")
    clock.wrap(pipeline, "fit_regression", "  logistic regression (beside the trial)")
    clock.wrap(pipeline, "held_out_importance", "  SHAP importance (beside the final model)")
    clock.wrap(pipeline, "write_artifacts", "  logging: plots and report")
    extra: dict[str, Any] = {"engine": engine}
    if engine == "dask":
        # parts of 20,000 labelled rows: at least one per worker (a worker without rows fails in xgboost.dask)
        extra["dask"] = {"workers": 2, "threads_per_worker": 1, "chunk_rows": 20_000}
    settings = settings_for(Path(workspace), **fixed_training(model_name, **extra))
    kept: dict[str, Any] = {}
    if dump:
        original = pipeline.out_of_time_split

        def keep(*args: Any, **kwargs: Any) -> Any:
            kept["split"] = original(*args, **kwargs)
            return kept["split"]

        pipeline.out_of_time_split = keep
    started, cpu = time.perf_counter(), cpu_seconds()
    result = pipeline.train(settings)
    seconds, cpu_s = time.perf_counter() - started, cpu_seconds() - cpu
    peak = peak_rss_mib()
    client = pipeline.MlflowClient(settings.mlflow_uri)
    params = client.get_run(result.run_id).data.params
    out = {
        "seconds": seconds,
        "cpu_seconds": cpu_s,
        "peak_rss_mib": peak,
        "stages": clock.seconds,
        "metrics": result.metrics,
        "version": result.version,
        "features": len(result.features),
        "params": params,
    }
    if dump and "split" in kept:
        split = kept["split"]
        folder = Path(dump)
        folder.mkdir(parents=True, exist_ok=True)
        for part in ("train", "valid"):
            x, y = split.xy(part)
            x.assign(__label__=y.to_numpy()).to_parquet(folder / f"{part}.parquet")
        from training.tune import negatives_per_positive

        pos_weight = negatives_per_positive(split.xy("train")[1])
        (folder / "params.json").write_text(json.dumps({**FIXED, "scale_pos_weight": pos_weight}))
        out["rows"] = {part: len(split.xy(part)[1]) for part in ("train", "valid", "test")}
    return out


def sub_bare(dump: str, max_rounds: int = 300, early_stopping_rounds: int = 30) -> dict[str, Any]:
    """Baseline: DMatrix of the train and valid rows + `xgboost.train`, the platform's parameters."""
    import pandas as pd
    import xgboost as xgb
    from sklearn.metrics import roc_auc_score

    folder = Path(dump)
    train, valid = pd.read_parquet(folder / "train.parquet"), pd.read_parquet(folder / "valid.parquet")
    fixed = json.loads((folder / "params.json").read_text())
    params = {"objective": "binary:logistic", "eval_metric": "auc", "tree_method": "hist", **fixed}
    started, cpu = time.perf_counter(), cpu_seconds()
    d_train = xgb.DMatrix(train.drop(columns="__label__"), label=train["__label__"], enable_categorical=True)
    d_valid = xgb.DMatrix(valid.drop(columns="__label__"), label=valid["__label__"], enable_categorical=True)
    built = time.perf_counter() - started
    booster = xgb.train(
        {**params, "seed": 42, "nthread": 2},
        d_train,
        num_boost_round=max_rounds,
        evals=[(d_valid, "valid")],
        early_stopping_rounds=early_stopping_rounds,
        verbose_eval=False,
    )
    seconds, cpu_s = time.perf_counter() - started, cpu_seconds() - cpu
    peak = peak_rss_mib()
    proba = booster.predict(d_valid, iteration_range=(0, booster.best_iteration + 1))
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_s,
        "peak_rss_mib": peak,
        "dmatrix_seconds": built,
        "rounds": booster.best_iteration + 1,
        "valid_auc": float(roc_auc_score(valid["__label__"], proba)),
        "features": train.shape[1] - 1,
    }


def sub_study(workspace: str, pruning: bool, budget: float) -> dict[str, Any]:
    """The Optuna study alone for `budget` seconds (default search space), pruning on or off."""
    import mlflow
    from optuna.trial import TrialState

    from training.pipeline import configure_mlflow, prepare
    from training.tune import PARENT_RUN, open_study, run_trials

    settings = settings_for(Path(workspace), pruning=pruning, n_trials=10_000, timeout_s=budget)
    experiment = configure_mlflow(settings)
    prepared = prepare(settings)
    name = f"bench-{'pruned' if pruning else 'unpruned'}-{time.time_ns()}"
    cfg = settings.training
    with mlflow.start_run(experiment_id=experiment, run_name=name) as run:
        study = open_study(name, settings.optuna_uri, cfg.metric, cfg.seed, pruning)
        study.set_user_attr(PARENT_RUN, run.info.run_id)
        started, cpu = time.perf_counter(), cpu_seconds()
        run_trials(study, prepared.split, cfg, storage=settings.optuna_uri, total_trials=10_000, timeout_s=budget)
        seconds, cpu_s = time.perf_counter() - started, cpu_seconds() - cpu
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_s,
        "peak_rss_mib": peak_rss_mib(),
        "complete": len(done),
        "pruned": len(pruned),
        "best": max((t.value for t in done if t.value is not None), default=float("nan")),
        "rows": len(prepared.split.xy("train")[1]),
    }


def sub_score(workspace: str, model_name: str, version: str) -> dict[str, Any]:
    """Batch scoring of the newest snapshot by one registered version (`churn score`'s work)."""
    from crm.alerts import scored_features
    from model.champion import load_version
    from model.predictor import predictor_of

    settings = settings_for(Path(workspace))
    started, cpu = time.perf_counter(), cpu_seconds()
    predictor = predictor_of(load_version(settings.mlflow_uri, model_name, version), settings.serving)
    alerts, _ = scored_features(settings, predictor)
    seconds, cpu_s = time.perf_counter() - started, cpu_seconds() - cpu
    return {"seconds": seconds, "cpu_seconds": cpu_s, "peak_rss_mib": peak_rss_mib(), "customers": len(alerts)}


SUBS: dict[str, Callable[..., dict[str, Any]]] = {
    "stage": sub_stage,
    "platform": sub_platform,
    "bare": sub_bare,
    "study": sub_study,
    "score": sub_score,
}


def run_sub(name: str, **kwargs: Any) -> dict[str, Any]:
    """Run sub-step `name` in a fresh process; return its JSON result."""
    result = Path.cwd() / f".bench-training-{name}-{time.monotonic_ns()}.json"
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "sub", name, json.dumps(kwargs), str(result)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise RuntimeError(f"training sub-step '{name}' failed (exit {proc.returncode}):\n{tail}")
    out: dict[str, Any] = json.loads(result.read_text())
    result.unlink()
    print(
        f"  training/{name:<9} {kwargs.get('stage', '')}{'':<2}done in {time.perf_counter() - started:6.1f} s",
        file=sys.stderr,
    )
    return out


# --- the group: every measurement, then the rows -------------------------------------------------


def workspace(root: Path, customers: int, days: int) -> tuple[Path, dict[str, Any]]:
    """The built workspace of `customers` x `days` under `root` (built now unless an earlier run left it);
    returns it and each data stage's result (`reused`: built by an earlier run)."""
    ws = root / f"ws-{customers}x{days}-seed{SEED}"
    marker = ws / ".bench-stages.json"
    if marker.exists():
        return ws, {**json.loads(marker.read_text()), "reused": True}
    ws.mkdir(parents=True, exist_ok=True)
    stages = {s: run_sub("stage", workspace=str(ws), stage=s, customers=customers, days=days) for s in STAGES[:3]}
    marker.write_text(json.dumps(stages))
    return ws, {**stages, "reused": False}


def growth_exponent(sizes: Sequence[float], seconds: Sequence[float | None]) -> float | None:
    """b of seconds ~ a * sizes^b, least squares in log-log; None with fewer than 2 usable points."""
    pairs = [(x, y) for x, y in zip(sizes, seconds, strict=True) if x > 0 and y is not None and y > 0]
    if len({x for x, _ in pairs}) < 2:
        return None
    logs = np.log(np.array(pairs, dtype=float))
    return float(np.polyfit(logs[:, 0], logs[:, 1], 1)[0])


def marginal_cost(sizes: Sequence[float], seconds: Sequence[float]) -> tuple[float, float] | None:
    """(fixed seconds a, seconds per customer c) of seconds ~ a + c * sizes, least squares; None below 2 sizes."""
    if len(set(sizes)) < 2:
        return None
    c, a = np.polyfit(np.asarray(sizes, dtype=float), np.asarray(seconds, dtype=float), 1)
    return float(a), float(c)


def median_pair(pairs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The pair of platform and bare runs whose time ratio is the median (the lower middle of an even count)."""
    ranked = sorted(pairs, key=lambda pair: pair["platform"]["seconds"] / pair["bare"]["seconds"])
    return ranked[(len(ranked) - 1) // 2]


def measure(customers: int, days: int, sizes: Sequence[int], budget: float, pairs: int = 5) -> dict[str, Any]:
    """Run every training measurement under `./training` (see the module docstring); return the raw results.

    The end-to-end figure is `pairs` runs of the platform, each followed by the bare baseline."""
    root = Path.cwd() / "training"
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    points = [customers, *sorted(set(sizes) - {customers})]  # the end-to-end figure first
    middle = min(sizes)  # pruning and Dask: the smallest size, so a budget holds several trials
    out: dict[str, Any] = {"sizes": points, "middle": middle, "budget": budget, "days": days, "growth": {}}
    for n in points:
        ws, stages = workspace(root, n, days)
        dump = str(root / f"bare-{n}") if n == customers else None
        platform = run_sub("platform", workspace=str(ws), model_name=f"bench-{n}-{stamp}", dump=dump)
        score = run_sub("score", workspace=str(ws), model_name=f"bench-{n}-{stamp}", version=platform["version"])
        if n == customers:
            out["pairs"] = [{"platform": platform, "bare": run_sub("bare", dump=dump)}]
            for again in range(1, pairs):
                name = f"bench-{n}-{stamp}-{again + 1}"
                again_platform = run_sub("platform", workspace=str(ws), model_name=name)
                out["pairs"].append({"platform": again_platform, "bare": run_sub("bare", dump=dump)})
            median = median_pair(out["pairs"])
            platform = {**median["platform"], "rows": platform["rows"]}
            out["bare"] = median["bare"]
        out["growth"][n] = {**stages, "platform": platform, "scoring": score}
        if n == middle:
            out["local"] = platform
            out["dask"] = run_sub("platform", workspace=str(ws), model_name=f"bench-dask-{stamp}", engine="dask")
            out["pruned"] = run_sub("study", workspace=str(ws), pruning=True, budget=budget)
            out["unpruned"] = run_sub("study", workspace=str(ws), pruning=False, budget=budget)
        (root / "partial-result.json").write_text(json.dumps(out, indent=1))  # what a failure later leaves
    return out


def stage_seconds(point: dict[str, Any]) -> dict[str, tuple[float | None, float | None, float | None]]:
    """Stage -> (wall s, CPU s, peak RSS MiB) of one size; retrieval and training split the platform's run."""
    plat = point["platform"]
    retrieval = plat["stages"].get("Feast retrieval", 0.0)
    out = {s: (point[s]["seconds"], point[s]["cpu_seconds"], point[s]["peak_rss_mib"]) for s in STAGES[:3]}
    out["retrieval"] = (retrieval, None, None)
    out["training"] = (plat["seconds"] - retrieval, plat["cpu_seconds"], plat["peak_rss_mib"])
    out["scoring"] = (point["scoring"]["seconds"], point["scoring"]["cpu_seconds"], point["scoring"]["peak_rss_mib"])
    return out


def rows_of(res: dict[str, Any], customers: int) -> list[dict[str, Any]]:
    """The table rows (the fields of `bench.run.Row`) from `measure`'s results."""
    growth = {int(k): v for k, v in res["growth"].items()}
    big, bare = growth[customers]["platform"], res["bare"]
    n_rows = sum(big["rows"].values())
    ratio = big["seconds"] / bare["seconds"]
    pairs = res.get("pairs") or [{"platform": big, "bare": bare}]
    each = ", ".join(
        f"{p['platform']['seconds']:.1f} / {p['bare']['seconds']:.1f} s = "
        f"{p['platform']['seconds'] / p['bare']['seconds']:.2f}x"
        for p in pairs
    )
    top = [(k, v) for k, v in big["stages"].items() if not k.startswith(" ")]
    nested = [(k.strip(), v) for k, v in big["stages"].items() if k.startswith(" ")]
    accounted = sum(v for _, v in top)
    breakdown = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(top, key=lambda kv: -kv[1]) if v >= 0.05)
    inner = ", ".join(f"{k} {v:.1f} s" for k, v in nested)
    fit = big["stages"].get("  trial: xgboost fit", 0.0)
    retrieval = big["stages"].get("Feast retrieval", 0.0)
    rows = [
        {
            "name": "training end to end (Feast retrieval, 1 fixed parameter set, MLflow, registry, gate), "
            "median of pairs",
            "scale": f"{n_rows:,} rows x {big['features']} features ({big['rows']['train']:,} train)",
            "figure": f"{big['seconds']:.1f} s (CPU {big['cpu_seconds']:.0f} s)",
            "peak_rss_mib": big["peak_rss_mib"],
            "baseline": "bare xgboost: DMatrix (train + valid) + xgboost.train, same params, early stopping",
            "baseline_figure": f"{bare['seconds']:.1f} s (CPU {bare['cpu_seconds']:.0f} s)",
            "baseline_rss_mib": bare["peak_rss_mib"],
            "ratio": ratio,
            "target": f"<= {TARGET_RATIO}x",
            "met": ratio <= TARGET_RATIO,
            "notes": f"{len(pairs)} pairs, each the platform then the baseline (platform / baseline): {each}; the "
            f"figures are the pair of median ratio. Its platform stages (wall): {breakdown}; not in a stage "
            f"{big['seconds'] - accounted:.1f} s. Inside: "
            f"{inner}. Without retrieval the platform takes {(big['seconds'] - retrieval) / bare['seconds']:.1f}x "
            f"the baseline; its one xgboost fit (trial, reused as the final trees) {fit / bare['seconds']:.2f}x. "
            f"CPU ratio {big['cpu_seconds'] / bare['cpu_seconds']:.1f}x. Baseline: {bare['rounds']} rounds, DMatrix "
            f"{bare['dmatrix_seconds']:.1f} s, valid ROC AUC {bare['valid_auc']:.4f} (platform "
            f"{big['metrics']['valid_roc_auc']:.4f}, test {big['metrics']['test_roc_auc']:.4f})",
        }
    ]
    pruned, unpruned = res["pruned"], res["unpruned"]

    def study(r: dict[str, Any]) -> str:
        return (
            f"{r['complete']} complete + {r['pruned']} pruned, best valid AUC {r['best']:.4f} in {r['seconds']:.0f} s"
        )

    rows.append(
        {
            "name": "Optuna with pruning (MedianPruner, 3 startup trials, 10 warm-up rounds)",
            "scale": f"{res['budget']:g} s budget, {pruned['rows']:,} train rows",
            "figure": study(pruned),
            "peak_rss_mib": pruned["peak_rss_mib"],
            "baseline": "the same study without pruning, same budget, same seed",
            "baseline_figure": study(unpruned),
            "baseline_rss_mib": unpruned["peak_rss_mib"],
            "notes": f"{res['middle']:,}-customer workspace, default search space, TPE seed 42; no trial starts "
            f"after the budget (the last may overrun it); CPU {pruned['cpu_seconds']:.0f} s vs "
            f"{unpruned['cpu_seconds']:.0f} s",
        }
    )
    local, dask = res["local"], res["dask"]
    auc = "test_roc_auc"
    rows.append(
        {
            "name": "training end to end, Dask engine (2-worker LocalCluster, 1 thread each)",
            "scale": f"{growth[res['middle']]['build']['label_rows']:,} labelled rows",
            "figure": f"{dask['seconds']:.1f} s, test AUC {dask['metrics'][auc]:.4f}",
            "peak_rss_mib": dask["peak_rss_mib"],
            "baseline": "the local engine, same workspace and parameters",
            "baseline_figure": f"{local['seconds']:.1f} s, test AUC {local['metrics'][auc]:.4f}",
            "baseline_rss_mib": local["peak_rss_mib"],
            "ratio": dask["seconds"] / local["seconds"],
            "notes": f"{res['middle']:,}-customer workspace; Dask stages: "
            + ", ".join(f"{k.strip()} {v:.1f} s" for k, v in sorted(dask["stages"].items(), key=lambda kv: -kv[1])[:6])
            + f"; peak RSS is this process's (the workers' not counted); CPU {dask['cpu_seconds']:.0f} s "
            f"(with finished children) vs {local['cpu_seconds']:.0f} s",
        }
    )
    sizes = sorted(growth)
    per_size = {n: stage_seconds(growth[n]) for n in sizes}
    for stage in STAGES:
        wall = {n: per_size[n][stage][0] for n in sizes}
        cpu = {n: per_size[n][stage][1] for n in sizes if per_size[n][stage][1] is not None}
        basis, used = ("CPU", cpu) if len(cpu) >= 2 else ("wall", wall)
        b = growth_exponent(list(used), list(used.values()))
        line = marginal_cost(list(used), [float(v or 0.0) for v in used.values()])
        per_million = f"; fixed {line[0]:.1f} s + {line[1] * 1e6:,.0f} s per million customers" if line else ""
        figure = ", ".join(
            f"{n / 1000:g}k: {wall[n]:.1f} s" + (f" (CPU {cpu[n]:.1f})" if n in cpu else "") for n in sizes
        )
        mem = ", ".join(f"{n / 1000:g}k: {per_size[n][stage][2]:,.0f}" for n in sizes if per_size[n][stage][2])
        rows.append(
            {
                "name": f"growth: {stage}",
                "scale": f"{len(sizes)} sizes x {res['days']} days",
                "figure": figure,
                "baseline": "linear growth (exponent 1)",
                "baseline_figure": f"time ~ customers^{b:.2f} ({basis} time, {len(used)} sizes){per_million}"
                if b
                else "",
                "ratio": b,
                "notes": (f"peak RSS MiB {mem}; " if mem else "")
                + "label rows per size: "
                + ", ".join(f"{n / 1000:g}k: {growth[n]['build'].get('label_rows', 0):,}" for n in sizes)
                + (
                    "; the sizes without CPU time were built outside this bench, by the same functions"
                    if cpu and len(cpu) < len(sizes)
                    else ""
                ),
            }
        )
    return rows


def step(args_json: str, result_path: str) -> None:
    """bench/run.py's entry: `measure(**ARGS_JSON)` into RESULT_JSON_PATH as {"rows": [...], "raw": ...}."""
    kwargs = json.loads(args_json)
    res = measure(**kwargs)
    (Path.cwd() / "training" / "last-result.json").write_text(json.dumps(res, indent=1))
    Path(result_path).write_text(json.dumps({"rows": rows_of(res, kwargs["customers"]), "raw": res}))


def main(argv: Sequence[str] | None = None) -> None:
    """`sub NAME ARGS_JSON OUT`, `step ARGS_JSON OUT` (bench/run.py), or standalone with options."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sub"]:
        result = SUBS[argv[1]](**json.loads(argv[2]))
        Path(argv[3]).write_text(json.dumps(result))
        return
    if argv[:1] == ["rows"]:  # re-render the rows of a saved result: rows RESULT_JSON CUSTOMERS
        for row in rows_of(json.loads(Path(argv[1]).read_text()), int(argv[2])):
            print(json.dumps(row, indent=1))
        return
    if argv[:1] == ["step"]:
        step(argv[1], argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=72_000)
    parser.add_argument("--days", type=int, default=420)
    parser.add_argument("--sizes", default="2500,5000", help="comma-separated customer counts of the growth")
    parser.add_argument("--budget", type=float, default=120, help="wall seconds of each Optuna arm")
    parser.add_argument("--pairs", type=int, default=5, help="end-to-end runs, each beside a bare run")
    parser.add_argument("--workdir", type=Path, default=Path("bench-training"))
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(args.workdir)
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    res = measure(args.customers, args.days, sizes, args.budget, args.pairs)
    (Path.cwd() / "training" / "last-result.json").write_text(json.dumps(res, indent=1))
    for row in rows_of(res, args.customers):
        print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
