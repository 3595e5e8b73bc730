"""The notebooks run top to bottom against small generated data, and draw what they promise.

Each notebook is executed once per module with nbclient, in a `python3` kernel whose environment
names its data: the workspace (`CHURN_WORKSPACE`) or a folder of monitoring summaries
(`CHURN_REPORTS_DIR`); the tests then read the executed cells' outputs. To add a notebook, list it in
`NOTEBOOKS` with the headings of its sections that must draw a figure, and in `KERNEL_ENV` with the
fixtures its kernel's environment names.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from jupyter_client.kernelspec import find_kernel_specs
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbformat import NotebookNode
from typer.testing import CliRunner

from core import names
from core.settings import parse_settings
from features.generator.dataset import generate, write_generated
from features.ingest import ingest
from features.paths import FeaturePaths
from features.pipeline import build_features, snapshot_schema
from monitoring.summary import (
    Decision,
    MonitorSummary,
    read_summaries,
    summary_path,
)

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
KERNEL = "python3"
EXPLORE_FEATURES = "01-explore-features.ipynb"
COMPARE_EXPERIMENTS = "02-compare-experiments.ipynb"
DRIFT_REVIEW = "03-drift-review.ipynb"

NOTEBOOKS: dict[str, tuple[str, ...]] = {
    EXPLORE_FEATURES: (
        "Churn rate over time",
        "Distributions of the strongest features",
        "Cohorts: churn rate per decile",
    ),
    COMPARE_EXPERIMENTS: (
        "Trials over time",
        "Champion against the baselines",
        "Calibration of the champion",
    ),
    DRIFT_REVIEW: (
        "Drift over time for the top features",
        "Prediction drift and performance",
    ),
}
"""Notebook file in notebooks/ -> headings of the sections that must each display at least one image."""

KERNEL_ENV: dict[str, dict[str, str]] = {
    EXPLORE_FEATURES: {"CHURN_WORKSPACE": "workspace"},
    COMPARE_EXPERIMENTS: {"CHURN_WORKSPACE": "trained_workspace"},
    DRIFT_REVIEW: {"CHURN_REPORTS_DIR": "monitoring_reports"},
}
"""Notebook -> environment variable of its kernel -> the fixture (a folder) it names; built only when needed."""

Runner = Callable[[str], NotebookNode]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with generated, ingested data and built feature snapshots and labels."""
    root = tmp_path_factory.mktemp("notebook-workspace")
    settings = parse_settings(
        {"workspace": str(root), "features": {"first_observation_after_days": 30}}, source="test", env={}
    )
    customers, events = write_generated(generate(400, 150, 3), root / "raw")
    ingest(settings, customers_path=customers, events_path=events)
    build_features(settings)
    return root


TRIALS = 8


@pytest.fixture(scope="module")
def trained_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with a tuning run of `TRIALS` trials (pruning on) and its champion."""
    from training_fixtures import build_workspace, settings_for

    from training.pipeline import train

    ws = tmp_path_factory.mktemp("trained")
    build_workspace(ws)
    result = train(settings_for(ws, n_trials=TRIALS, max_rounds=60))
    assert result.decision.promote, result.decision.reason
    return ws


MONITORED_ENDS = range(217, 267, 7)
"""Window ends (days of the drift scenario, `monitoring_fixtures`) of the weekly `churn monitor` runs.

Three weeks before the drift starts (day 240), then four into it: the features drift until the
policy retrains (the weak champion loses to a challenger) and the run after it is held back by the
cool-down.
"""


def _write_summaries(reports_dir: Path, runs: list[MonitorSummary]) -> Path:
    reports_dir.mkdir(parents=True, exist_ok=True)
    for run in runs:
        summary_path(reports_dir, run.run_id).write_text(run.model_dump_json(indent=2))
    return reports_dir


@pytest.fixture(scope="module")
def monitoring_reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reports folder of real `churn monitor --retrain-on-drift` runs over the drift scenario's weeks.

    The workspace is the drift scenario's (`monitoring_fixtures.build`: generated data with drift
    from day 240, a weak champion trained as of day 210); each run is the `churn` command itself,
    on a config file of that workspace, acting as of its window's end.
    """
    from monitoring_fixtures import build, day
    from training_fixtures import write_config

    from churn.cli import app

    ws = tmp_path_factory.mktemp("monitored")
    config = write_config(build(ws, drift=True), ws / "config.yaml")
    env = {**{k: None for k in os.environ if k.startswith("CHURN_")}, "COLUMNS": "200"}
    for end in MONITORED_ENDS:
        window = ["--start", f"{day(end - 7):%Y-%m-%d}", "--end", f"{day(end):%Y-%m-%d}"]
        args = ["monitor", *window, "--mode", "batch", "--retrain-on-drift", "--config", str(config)]
        result = CliRunner().invoke(app, args, env=env)
        assert result.exit_code == 0, result.output
    reports = ws / "reports"
    runs = read_summaries(reports)
    statuses = [r.status for r in runs]
    assert len(runs) == len(MONITORED_ENDS) and {"warning", "drift"} <= set(statuses), statuses
    assert sum(r.retraining is not None for r in runs) == 1, "one retraining, then a cool-down"
    assert any(r.decision.cooldown_until for r in runs), "one retraining, then a cool-down"
    return reports


def _execute(name: str, env: dict[str, str]) -> NotebookNode:
    """Run a notebook of notebooks/ in a kernel started with `env` added to this process's environment."""
    nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name=KERNEL, resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
    # The kernel is a child process: it inherits this process's environment.
    with pytest.MonkeyPatch.context() as patch:
        for variable, value in {**env, "MPLBACKEND": "Agg"}.items():
            patch.setenv(variable, value)
        client.execute()
    return nb


@pytest.fixture(scope="module")
def executed(request: pytest.FixtureRequest) -> Runner:
    """Executes a notebook on its data (`KERNEL_ENV`) the first time it is asked for; returns the executed notebook.

    A notebook that fails is not run again: every test asking for it gets the same error.
    """
    runs: dict[str, NotebookNode | Exception] = {}

    def run(name: str) -> NotebookNode:
        if name not in runs:
            try:
                env = {var: str(request.getfixturevalue(fixture)) for var, fixture in KERNEL_ENV[name].items()}
                runs[name] = _execute(name, env)
            except Exception as exc:
                runs[name] = exc
        result = runs[name]
        if isinstance(result, Exception):
            raise result
        return result

    return run


def _heading(cell: NotebookNode) -> str | None:
    """The text of the first Markdown heading in a cell, if it is a Markdown cell with one."""
    if cell.cell_type != "markdown":
        return None
    for line in cell.source.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return None


def _section_outputs(nb: NotebookNode) -> dict[str, list[NotebookNode]]:
    """Heading -> outputs of the code cells between it and the next heading."""
    sections: dict[str, list[NotebookNode]] = {}
    current = sections.setdefault("", [])
    for cell in nb.cells:
        heading = _heading(cell)
        if heading is not None:
            current = sections.setdefault(heading, [])
        elif cell.cell_type == "code":
            current.extend(cell.outputs)
    return sections


def _images(outputs: list[NotebookNode]) -> int:
    return sum(1 for o in outputs if o.output_type in ("display_data", "execute_result") and "image/png" in o.data)


def _text(outputs: list[NotebookNode]) -> str:
    """Printed text and the plain-text form of displayed objects."""
    parts = [o.text if o.output_type == "stream" else o.get("data", {}).get("text/plain", "") for o in outputs]
    return "\n".join(parts)


def test_python3_kernel_runs_this_interpreter() -> None:
    """The `python3` kernelspec starts the interpreter running the tests (the venv's), not another Python."""
    assert KERNEL in find_kernel_specs()
    command = KernelManager(kernel_name=KERNEL).format_kernel_cmd()
    assert command[0] == sys.executable, f"the {KERNEL} kernel would run {command[0]}, not {sys.executable}"


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_notebook_is_saved_without_outputs(name: str) -> None:
    """Notebooks are committed with outputs cleared and the `python3` kernel."""
    nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == KERNEL
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, f"{name} has no code cells"
    assert all(not cell.outputs and cell.execution_count is None for cell in code), f"{name} has stored outputs"


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_notebook_runs_and_draws_each_section(executed: Runner, name: str) -> None:
    """Every code cell runs without error, and each plotting section displays an image."""
    nb = executed(name)
    assert all(cell.execution_count is not None for cell in nb.cells if cell.cell_type == "code")
    sections = _section_outputs(nb)
    for heading in NOTEBOOKS[name]:
        assert heading in sections, f"{name} has no section headed {heading!r}; it has {sorted(sections)}"
        assert _images(sections[heading]) >= 1, f"section {heading!r} of {name} displayed no image"


def test_explore_features_tables_show_the_workspace(executed: Runner, workspace: Path) -> None:
    """The churn-rate table has one row per labelled date with its counts; rankings and cohorts name real features."""
    sections = _section_outputs(executed(EXPLORE_FEATURES))
    paths = FeaturePaths.of(parse_settings({"workspace": str(workspace)}, source="test", env={}))
    labels = pd.read_parquet(paths.labels)
    per_date = labels.groupby(labels[names.EVENT_TIMESTAMP].dt.date)[names.LABEL].agg(["size", "sum"])
    observed = pd.read_parquet(paths.snapshots, columns=[names.EVENT_TIMESTAMP])[names.EVENT_TIMESTAMP]
    snapshot_dates = set(observed.dt.date)
    unlabelled = snapshot_dates - set(per_date.index)
    assert len(per_date) >= 5 and unlabelled, "the fixture should have several labelled dates and some unlabelled"

    churn_table = _text(sections["Churn rate over time"])
    rows = {tokens[0]: tokens[1:] for line in churn_table.splitlines() if (tokens := line.split())}
    for date, (customers, churners) in per_date.iterrows():
        assert rows.get(str(date), [])[:2] == [str(customers), str(churners)], f"{date} in:\n{churn_table}"
    assert not {str(d) for d in unlabelled} & set(rows), "dates without labels belong to no churn rate"

    schema = snapshot_schema(paths.snapshots)
    numeric = {f for f, kind in schema.items() if kind == "double"}
    strings = {f for f, kind in schema.items() if kind == "string"}
    ranking = _text(sections["Which features separate churners from stayers?"])
    assert sum(f in ranking for f in numeric) >= 6, ranking
    assert not any(f in ranking for f in strings), "string features are not ranked"
    cohorts = _text(sections["Cohorts: churn rate per decile"])
    assert "churn_rate" in cohorts
    assert sum(f in cohorts for f in numeric) >= 2, cohorts


def test_compare_experiments_shows_every_trial_and_the_runs_verdict(executed: Runner, trained_workspace: Path) -> None:
    """The trials table has every trial of the run, complete or pruned; the verdict is the run's own."""
    import mlflow

    sections = _section_outputs(executed(COMPARE_EXPERIMENTS))
    trials = _text(sections["Trials over time"])
    rows = [line.split() for line in trials.splitlines() if line.split() and line.split()[0].isdigit()]
    assert sorted(int(r[1]) for r in rows) == list(range(TRIALS)), trials
    assert {r[2] for r in rows} <= {"complete", "pruned"} and "complete" in {r[2] for r in rows}
    settings = parse_settings({"workspace": str(trained_workspace)}, source="test", env={})
    mlflow.set_tracking_uri(settings.mlflow_uri)
    verdict = mlflow.search_runs(experiment_names=["churn"], filter_string="tags.mlflow.runName LIKE 'train-%'")
    assert verdict.iloc[0]["tags.baselines.verdict"] in _text(sections["Champion against the baselines"])
    assert "test rows, churn rate" in _text(sections["Calibration of the champion"])


def test_drift_review_lists_every_run_and_decision(executed: Runner, monitoring_reports: Path) -> None:
    """The runs table has a row per run with its status; the ranking and decisions name what happened."""
    summaries = read_summaries(monitoring_reports)
    sections = _section_outputs(executed(DRIFT_REVIEW))

    runs_table = _text(sections["Runs"])
    rows = {tokens[0]: tokens[1:] for line in runs_table.splitlines() if (tokens := line.split())}
    for run in summaries:
        row = rows.get(run.run_id, [])
        assert f"{run.created:%Y-%m-%d}" in row and run.status in row, f"{run.run_id} in:\n{runs_table}"
    listed = [token for token in rows if re.fullmatch(r"\d{8}T\d{6}\d*Z", token)]
    assert sorted(listed) == sorted(run.run_id for run in summaries), runs_table

    ranking = _text(sections["Drift over time for the top features"])
    times_drifted: dict[str, int] = {}
    for c in (c for s in summaries for c in s.features.columns):
        times_drifted[c.column] = times_drifted.get(c.column, 0) + c.drifted
    ranked = [line.split()[0] for line in ranking.splitlines() if line.split() and line.split()[0] in times_drifted]
    # The ten features that drifted in the most runs, most first.
    assert [times_drifted[name] for name in ranked] == sorted(times_drifted.values(), reverse=True)[:10], ranking

    decisions = _text(sections["Retraining decisions"])
    [retraining] = [(s.run_id, s.retraining) for s in summaries if s.retraining is not None]
    run_id, started = retraining
    assert run_id in decisions and f"{started.training_run_id}" in decisions, decisions
    assert "cool-down until" in decisions and f"retrainings: 1, promoted: {int(started.promoted)}" in decisions
    quiet = [s.run_id for s in summaries if not s.decision.reasons and s.retraining is None]
    assert quiet and not any(run_id in decisions for run_id in quiet), "runs where no rule fired are left out"


def test_drift_review_without_predictions_labels_or_retraining(monitoring_reports: Path, tmp_path: Path) -> None:
    """Runs without prediction drift, matured labels or any decision still give every section its figure.

    The first real runs, with what a run may lack taken out: the prediction (a window without
    scored rows), the performance (before labels mature) and any decision or retraining.
    """
    runs = [
        run.model_copy(
            update={
                "prediction": None,
                "performance": None,
                "retraining": None,
                "decision": Decision(retrain=False, reasons=[]),
            }
        )
        for run in read_summaries(monitoring_reports)[:3]
    ]
    nb = _execute(DRIFT_REVIEW, {"CHURN_REPORTS_DIR": str(_write_summaries(tmp_path / "reports", runs))})
    sections = _section_outputs(nb)
    for heading in NOTEBOOKS[DRIFT_REVIEW]:
        assert _images(sections[heading]) >= 1, heading
    assert "no rule of the drift policy fired" in _text(sections["Retraining decisions"])
