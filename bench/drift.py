"""Benchmark of the drift report (`monitoring.drift.drift_report`) beside a SciPy KS loop, in one run.

Run with `.venv/bin/python bench/drift.py [--rows 100000] [--columns 40] [--seed 7] [--repeats 3]
[--before REV]`, or as the group `drift` of `bench/run.py` (`--only drift`, `--drift-rows`,
`--drift-columns`), which runs it in a fresh process as `python bench/drift.py step ARGS_JSON
RESULT_JSON_PATH` (the keyword arguments of `measure` in, `{"rows": [...], "peak_rss_mib": ...}`
out) and adds its rows to its table.

Data: seeded synthetic reference and current frames of `--rows` rows each and `--columns` feature
columns shaped like churn features: normal, log-normal (spend), Poisson (event counts), exponential
(days since) and uniform (ratios) numeric columns, plus 3 categorical ones (a `category` plan, an
object-dtype region, a bool flag). Both frames come from the same distributions except ONE normal
numeric column, whose current mean is 0.2 standard deviations higher.

Measured, interleaved `--repeats` times (each figure is the median, so every contender sees the
same background load; the notes give the best):

- `drift_report(reference, current)` with the platform defaults (normed Wasserstein 0.15 for
  numeric, Jensen-Shannon 0.1 for categorical columns), once per engine: `fast` (the default, the
  metrics of `monitoring.evidently_adapter`) and `public` (Evidently's own `ValueDrift` and
  `DriftedColumnsCount`). Each figure is building the datasets, `Report.run` and reading the
  verdicts back; `snapshot.save_html` is timed separately.
- with `--before REV`: `drift_report` of `monitoring/drift.py` as it was at git revision REV
  (loaded from `git show`, imported as a module of its own), to compare a change of the engine
  with what it replaces in the same run.
- Evidently `Report([DataDriftPreset()]).run(current, reference)` with its defaults, and its
  `save_html`.
- the baseline: a SciPy loop of `scipy.stats.ks_2samp(reference[c], current[c])` over the same
  columns (categorical ones as integer codes of the shared categories, prepared outside the timing),
  flagging p < 0.05.

Checked: which columns each flags. Target: each `drift_report` <= 5x the KS loop, flagging exactly
the shifted column. CPU time (this process) is in the notes: on a busy machine wall times grow,
CPU times less. `measure()` returns the rows as dicts with the fields of `bench.run.Row`.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import numpy as np
import pandas as pd

TARGET_RATIO = 5.0
"""The drift report may take at most this many times the KS loop."""

SHIFT_SD = 0.2
"""Mean shift of the one drifted column, in standard deviations."""

T = TypeVar("T")


def make_data(rows: int, columns: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Seeded reference and current frames, identical in distribution but for one column.

    Args:
        rows: Rows per frame.
        columns: Feature columns (at least 2; 3 of them categorical from 6 on, else 1).
        seed: Seed of the generator.

    Returns:
        The reference frame, the current frame and the name of the shifted column.
    """
    if columns < 2:
        raise ValueError("need at least 2 columns (one numeric to shift, one categorical)")
    rng = np.random.default_rng(seed)
    n_categorical = 3 if columns >= 6 else 1
    kinds = ("normal", "lognormal", "poisson", "exponential", "uniform")
    numeric = [f"{kinds[i % len(kinds)]}_{i:02d}" for i in range(columns - n_categorical)]
    shifted = numeric[0]
    params = {name: (1.0 + i % 7, 0.5 + (i % 5) * 0.75) for i, name in enumerate(numeric)}  # location, scale

    def draw(name: str, n: int) -> np.ndarray:
        loc, scale = params[name]
        kind = name.rsplit("_", 1)[0]
        if kind == "normal":
            return rng.normal(loc * 10, scale, n)
        if kind == "lognormal":
            return rng.lognormal(np.log(loc * 20), scale / 3, n)
        if kind == "poisson":
            return rng.poisson(loc, n)
        if kind == "exponential":
            return rng.exponential(loc * 15, n)
        return rng.uniform(0.0, 1.0, n)

    def frame() -> pd.DataFrame:
        data: dict[str, Any] = {name: draw(name, rows) for name in numeric}
        plans = pd.Categorical(rng.choice(["basic", "plus", "pro", "family"], rows, p=[0.45, 0.3, 0.15, 0.1]))
        data["plan"] = plans
        if n_categorical > 1:
            regions = [f"region_{i}" for i in range(8)]
            data["region"] = rng.choice(regions, rows, p=np.full(8, 1 / 8)).astype(object)
            data["auto_renew"] = rng.random(rows) < 0.62
        return pd.DataFrame(data)

    reference, current = frame(), frame()
    current[shifted] += SHIFT_SD * params[shifted][1]
    return reference, current, shifted


def ks_loop(reference: pd.DataFrame, current: pd.DataFrame) -> list[str]:
    """The baseline: `scipy.stats.ks_2samp` per column; the columns with p < 0.05."""
    from scipy import stats

    return [c for c in reference.columns if stats.ks_2samp(reference[c], current[c]).pvalue < 0.05]


def as_codes(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both frames with every non-numeric column replaced by integer codes of the shared categories."""
    reference, current = reference.copy(), current.copy()
    for column in reference.columns:
        if pd.api.types.is_numeric_dtype(reference[column]) and not pd.api.types.is_bool_dtype(reference[column]):
            continue
        codes, _ = pd.factorize(pd.concat([reference[column], current[column]], ignore_index=True).astype(str))
        reference[column], current[column] = codes[: len(reference)], codes[len(reference) :]
    return reference, current


def _timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _preset_flags(snapshot: Any, reference: pd.DataFrame) -> list[str]:
    """Columns flagged by a `DataDriftPreset` snapshot, read from its `ValueDrift` metrics."""
    from monitoring.drift import read_columns
    from monitoring.drift_methods import ColumnTest

    tests = [ColumnTest(str(c), "numeric", "", 0.0) for c in reference.columns]
    return [r.column for r in read_columns(snapshot.dict(), tests) if r.drifted]


def load_before(revision: str) -> ModuleType:
    """`monitoring/drift.py` as it was at git `revision`, imported as the module `drift_before`.

    Raises:
        subprocess.CalledProcessError: Not a git checkout, or no such file at `revision`.
    """
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "-C", str(root), "show", f"{revision}:monitoring/drift.py"], check=True, capture_output=True, text=True
    ).stdout
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "drift_before.py")
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("drift_before", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    return module


def measure(rows: int, columns: int, seed: int, repeats: int = 3, before: str | None = None) -> list[dict[str, object]]:
    """Time the drift report's engines, Evidently's preset and the KS loop on the same data.

    See the module docstring.

    Args:
        rows: Rows per frame (reference and current).
        columns: Feature columns.
        seed: Seed of the data.
        repeats: Timed runs of each contender (interleaved); figures are medians.
        before: A git revision whose `monitoring/drift.py` is measured too; None: not measured.

    Returns:
        Table rows with the fields of `bench.run.Row` (name, scale, figure, baseline, baseline_figure,
        ratio, target, met, notes).
    """
    from evidently import Report
    from evidently.presets import DataDriftPreset

    from monitoring.drift import drift_report

    reference, current, shifted = make_data(rows, columns, seed)
    ref_codes, cur_codes = as_codes(reference, current)
    reports: dict[str, Callable[[], tuple[Any, list[str]]]] = {
        "fast": functools.partial(_report_flags, drift_report, reference, current, engine="fast"),
        "public": functools.partial(_report_flags, drift_report, reference, current, engine="public"),
    }
    if before is not None:
        reports["before"] = functools.partial(_report_flags, load_before(before).drift_report, reference, current)

    def preset() -> tuple[Any, list[str]]:
        snapshot = Report([DataDriftPreset()]).run(current, reference)
        return snapshot, _preset_flags(snapshot, reference)

    reports["preset"] = preset
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in ("ks", *reports, *(f"{k}_html" for k in reports))}
    flags: dict[str, list[str]] = {}
    html_bytes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            flags["ks"], wall, cpu = _timed(functools.partial(ks_loop, ref_codes, cur_codes))
            times["ks"].append((wall, cpu))
            for key, report in reports.items():
                (snapshot, flags[key]), wall, cpu = _timed(report)
                times[key].append((wall, cpu))
                path = Path(tmp, f"{key}.html")
                _, wall, cpu = _timed(functools.partial(snapshot.save_html, str(path)))
                times[f"{key}_html"].append((wall, cpu))
                html_bytes[key] = path.stat().st_size

    def median(key: str) -> float:
        return statistics.median(w for w, _ in times[key])

    def detail(key: str) -> str:
        return (
            f"{key}: best {min(w for w, _ in times[key]):.2f} s, "
            f"median CPU {statistics.median(c for _, c in times[key]):.2f} s"
        )

    def flagged(key: str) -> str:
        return ", ".join(flags[key]) or "nothing"

    scale = f"{rows:,} x {rows:,} rows x {columns} columns"
    ks = {"baseline": "SciPy ks_2samp loop, same columns", "baseline_figure": f"{median('ks'):.2f} s"}
    names = {
        "fast": "drift_report, engine 'fast' (default: monitoring.evidently_adapter)",
        "public": "drift_report, engine 'public' (Evidently's ValueDrift + DriftedColumnsCount)",
        "before": f"drift_report before: monitoring/drift.py at {before}",
    }
    out: list[dict[str, object]] = []
    for key in (k for k in reports if k != "preset"):
        ratio = median(key) / median("ks")
        out.append(
            {
                "name": names[key],
                "scale": scale,
                "figure": f"{median(key):.2f} s",
                **ks,
                "ratio": ratio,
                "target": f"<= {TARGET_RATIO:g}x, flags only {shifted}",
                "met": ratio <= TARGET_RATIO and flags[key] == [shifted],
                "notes": (
                    f"flags {flagged(key)} (shifted: {shifted}, +{SHIFT_SD} sd); KS p<0.05 flags {flagged('ks')}; "
                    f"{detail(key)}; {detail('ks')}; DataDriftPreset takes {median('preset') / median(key):.1f}x "
                    f"as long; medians of {repeats}"
                ),
            }
        )
    out.append(
        {
            "name": "drift_report 'fast': snapshot.save_html",
            "scale": f"{html_bytes['fast'] / 2**20:.1f} MiB HTML",
            "figure": f"{median('fast_html'):.2f} s",
            "baseline": "engine 'public': save_html",
            "baseline_figure": f"{median('public_html'):.2f} s ({html_bytes['public'] / 2**20:.1f} MiB)",
            "ratio": median("fast_html") / median("public_html"),
            "target": "",
            "met": None,
            "notes": "; ".join(
                f"{detail(f'{key}_html')} ({html_bytes[key] / 2**20:.1f} MiB)" for key in reports if key != "fast"
            ),
        }
    )
    out.append(
        {
            "name": "Evidently DataDriftPreset(): Report.run",
            "scale": scale,
            "figure": f"{median('preset'):.2f} s",
            **ks,
            "ratio": median("preset") / median("ks"),
            "target": "",
            "met": None,
            "notes": f"preset flags {flagged('preset')}; {detail('preset')}",
        }
    )
    return out


def _report_flags(
    report: Callable[..., tuple[Any, Any]], reference: pd.DataFrame, current: pd.DataFrame, **kwargs: Any
) -> tuple[Any, list[str]]:
    """A `drift_report`'s snapshot and the columns it flags."""
    snapshot, result = report(reference, current, **kwargs)
    return snapshot, [c.column for c in result.columns if c.drifted]


def render(rows: Sequence[dict[str, object]], title: str) -> Any:
    """The rows as a rich table, notes numbered under it."""
    from rich.table import Table

    table = Table(title=title, show_lines=True, caption_justify="left")
    for col in ("#", "benchmark", "scale", "figure", "baseline", "baseline figure", "x baseline", "target"):
        table.add_column(col, justify="right" if col in {"#", "x baseline"} else "left", overflow="fold")
    notes = []
    for number, row in enumerate(rows, start=1):
        ratio = row.get("ratio")
        target = str(row.get("target") or "")
        if row.get("met") is not None:
            target = f"{target}: [green]met[/green]" if row["met"] else f"{target}: [red]MISSED[/red]"
        table.add_row(
            str(number),
            str(row["name"]),
            str(row["scale"]),
            str(row["figure"]),
            str(row.get("baseline") or ""),
            str(row.get("baseline_figure") or ""),
            f"{ratio:.2f}x" if isinstance(ratio, float) else "-",
            target,
        )
        if row.get("notes"):
            notes.append(f"{number}. {row['notes']}")
    table.caption = "\n".join(notes)
    return table


def peak_rss_mib() -> float:
    """This process's resident high-water mark (`VmHWM`, Linux) in MiB; NaN where unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def step(args_json: str, result_path: str) -> None:
    """`drift.py step ARGS_JSON RESULT_JSON_PATH`: `measure(**ARGS)` for `bench/run.py`, as JSON."""
    rows = measure(**json.loads(args_json))
    Path(result_path).write_text(json.dumps({"rows": rows, "peak_rss_mib": peak_rss_mib()}))


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line, measure, print the table (or run as a `bench/run.py` step)."""
    from rich.console import Console

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["step"]:
        step(*argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="rows per frame (reference and current)")
    parser.add_argument("--columns", type=int, default=40, help="feature columns")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic data")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each contender")
    parser.add_argument("--before", metavar="REV", help="also measure monitoring/drift.py of this git revision")
    args = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(f"drift bench: {args.rows:,} rows x {args.columns} columns, seed {args.seed}, {args.repeats} repeats")
    rows = measure(args.rows, args.columns, args.seed, args.repeats, args.before)
    console.print(render(rows, "Drift report: its engines vs Evidently DataDriftPreset vs SciPy KS loop"))


if __name__ == "__main__":
    main()
