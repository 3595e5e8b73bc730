"""The notebooks run top to bottom against small generated data, and draw what they promise.

Each notebook is executed once per module with nbclient, in a `python3` kernel whose environment
names its data: the workspace (`CHURN_WORKSPACE`) or a folder of monitoring summaries
(`CHURN_REPORTS_DIR`); the tests then read the executed cells' outputs. To add a notebook, list it in
`NOTEBOOKS` with the headings of its sections that must draw a figure, and in `KERNEL_ENV` with the
fixtures its kernel's environment names.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from jupyter_client.kernelspec import find_kernel_specs
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbformat import NotebookNode

from core import names
from core.settings import parse_settings
from features.generator.dataset import generate, write_generated
from features.ingest import ingest
from features.paths import FeaturePaths
from features.pipeline import build_features, snapshot_schema
from monitoring.summary import (
    ColumnResult,
    Decision,
    FeatureDrift,
    MonitorSummary,
    Performance,
    PredictionDrift,
    Retraining,
    read_summaries,
    summary_path,
)

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
KERNEL = "python3"
EXPLORE_FEATURES = "01-explore-features.ipynb"
DRIFT_REVIEW = "03-drift-review.ipynb"

NOTEBOOKS: dict[str, tuple[str, ...]] = {
    EXPLORE_FEATURES: (
        "Churn rate over time",
        "Distributions of the strongest features",
        "Cohorts: churn rate per decile",
    ),
    DRIFT_REVIEW: (
        "Drift over time for the top features",
        "Prediction drift and performance",
    ),
}
"""Notebook file in notebooks/ -> headings of the sections that must each display at least one image."""

KERNEL_ENV: dict[str, dict[str, str]] = {
    EXPLORE_FEATURES: {"CHURN_WORKSPACE": "workspace"},
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


MONITORED: dict[str, tuple[str, float]] = {
    "purchases_count_30d": ("wasserstein", 1.0),
    "purchases_spend_30d": ("wasserstein", 0.8),
    "purchases_frequency_change": ("wasserstein", 0.6),
    "engagement_change": ("wasserstein", 0.5),
    "engagement_days_since_last_activity": ("wasserstein", 0.2),
    "profile_tenure_days": ("ks", 0.3),
    "purchases_days_since_last": ("wasserstein", 0.0),
    "profile_plan": ("jensenshannon", 0.0),
    "profile_region": ("jensenshannon", 0.0),
}
"""Feature -> drift test, and how strongly it follows the drift episode of `monitoring_runs`."""

EPISODE = (0.0, 0.02, 0.08, 0.35, 0.3, 0.04, 0.0, 0.0)
"""Strength of the drift in each weekly run: it builds up, a retraining answers it, it fades."""

POLICY_SHARE, POLICY_AUC_DROP, COOLDOWN, LABEL_HORIZON = 0.3, 0.05, dt.timedelta(days=14), dt.timedelta(days=7)
"""The drift policy the runs follow (share of drifted features, prediction drift, AUC drop, cool-down), and the
label horizon."""


def _column(name: str, strength: float, rng: np.random.Generator) -> ColumnResult:
    """One feature's drift test: a p-value (`ks`) that falls with the drift, or a distance that grows."""
    method, weight = MONITORED[name]
    if method == "ks":
        value = float(rng.uniform(0.2, 0.9) * 10.0 ** (-40 * strength * weight))
        return ColumnResult(
            column=name, kind="numeric", method=method, threshold=0.05, value=value, drifted=value < 0.05
        )
    value = float(rng.uniform(0.01, 0.06) + strength * weight)
    kind = "categorical" if method == "jensenshannon" else "numeric"
    return ColumnResult(column=name, kind=kind, method=method, threshold=0.1, value=value, drifted=value >= 0.1)


def monitoring_runs(seed: int) -> list[MonitorSummary]:
    """Eight weekly runs through a drift episode, oldest first, decided as the drift policy does.

    Labels mature a horizon (a week) after a window, so the first run has no performance; run 6 is a
    batch run without prediction drift. The first run where a rule fires retrains, and its
    challenger (v4) is promoted; a rule firing within the cool-down after it retrains nothing.
    """
    rng = np.random.default_rng(seed)
    start = dt.datetime(2025, 6, 2, tzinfo=dt.UTC)
    runs: list[MonitorSummary] = []
    for i, strength in enumerate(EPISODE):
        window_end = start + dt.timedelta(weeks=i)
        created = window_end + dt.timedelta(hours=6, minutes=int(rng.integers(0, 30)))
        retrained = [r for r in runs if r.retraining is not None]
        version = str(3 + len(retrained))
        columns = [_column(name, strength, rng) for name in MONITORED]
        features = FeatureDrift(
            n_columns=len(columns),
            drifted_columns=sum(c.drifted for c in columns),
            drifted_share=sum(c.drifted for c in columns) / len(columns),
            columns=columns,
        )
        prediction = None
        if i != 6:
            value = float(rng.uniform(0.01, 0.04) + 0.5 * strength)
            means = (0.2, 0.2 + strength / 2)
            prediction = PredictionDrift(
                method="wasserstein",
                threshold=0.1,
                value=value,
                drifted=value >= 0.1,
                reference_mean=means[0],
                current_mean=means[1],
            )
        performance = None
        if i >= 1:
            labelled = EPISODE[i - 1] if version == "3" else 0.0
            reference = 0.81 if version == "3" else 0.8  # the challengers are trained on drifted data
            auc = float(reference - 0.6 * labelled + rng.normal(0, 0.005))
            performance = Performance(
                window_start=window_end - dt.timedelta(days=7) - LABEL_HORIZON,
                window_end=window_end - LABEL_HORIZON,
                labelled_rows=int(rng.integers(700, 900)),
                positives=int(rng.integers(80, 120)),
                roc_auc=auc,
                pr_auc=auc - 0.45,
                log_loss=0.4,
                reference_roc_auc=reference,
                auc_drop=reference - auc,
            )
        reasons = []
        if features.drifted_share >= POLICY_SHARE:
            reasons.append(f"{features.drifted_columns} of {features.n_columns} features drifted")
        if prediction is not None and prediction.drifted:
            reasons.append(f"prediction drift: wasserstein {prediction.value:.3g} (threshold 0.1)")
        if performance is not None and performance.auc_drop is not None and performance.auc_drop >= POLICY_AUC_DROP:
            reasons.append(f"ROC AUC on matured labels {performance.auc_drop:.3f} below the champion's test AUC")
        until = retrained[-1].window_end + COOLDOWN if retrained else None
        cooldown = until if reasons and until is not None and window_end < until else None
        decision = Decision(retrain=bool(reasons) and cooldown is None, reasons=reasons, cooldown_until=cooldown)
        retraining = None
        if decision.retrain:
            retraining = Retraining(
                training_run_id=f"{rng.integers(16**11, 16**12):x}",
                challenger_version=str(int(version) + 1),
                promoted=True,
                gate_reason="challenger test AUC 0.800 beats the champion's 0.712 on the newest window by 0.088",
                champion_before=version,
                champion_after=str(int(version) + 1),
            )
        drifted = features.drifted_columns or (prediction is not None and prediction.drifted)
        run_id = created.strftime("%Y%m%dT%H%M%SZ")
        runs.append(
            MonitorSummary(
                run_id=run_id,
                created=created,
                mode="batch" if i == 6 else "serving",
                window_start=window_end - dt.timedelta(days=7),
                window_end=window_end,
                model_version=version,
                reference_rows=5_000,
                current_rows=int(rng.integers(900, 1_300)),
                status="drift" if reasons else "warning" if drifted else "ok",
                features=features,
                prediction=prediction,
                performance=performance,
                decision=decision,
                retraining=retraining,
                html=f"monitor-{run_id}.html",
            )
        )
    return runs


def _write_summaries(reports_dir: Path, runs: list[MonitorSummary]) -> Path:
    reports_dir.mkdir(parents=True, exist_ok=True)
    for run in runs:
        summary_path(reports_dir, run.run_id).write_text(run.model_dump_json(indent=2))
    return reports_dir


@pytest.fixture(scope="module")
def monitoring_reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reports folder holding the JSON summaries of `monitoring_runs` (no Evidently reports: not read)."""
    runs = monitoring_runs(seed=11)
    statuses = [r.status for r in runs]
    assert {"ok", "warning", "drift"} <= set(statuses), f"the episode should give every status, got {statuses}"
    assert sum(r.retraining is not None for r in runs) == 1, "one retraining, then a cool-down"
    assert any(r.decision.cooldown_until for r in runs), "one retraining, then a cool-down"
    return _write_summaries(tmp_path_factory.mktemp("monitoring-reports"), runs)


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


def test_drift_review_lists_every_run_and_decision(executed: Runner, monitoring_reports: Path) -> None:
    """The runs table has a row per run with its status; the ranking and decisions name what happened."""
    summaries = read_summaries(monitoring_reports)
    sections = _section_outputs(executed(DRIFT_REVIEW))

    runs_table = _text(sections["Runs"])
    rows = {tokens[0]: tokens[1:] for line in runs_table.splitlines() if (tokens := line.split())}
    for run in summaries:
        row = rows.get(run.run_id, [])
        assert f"{run.created:%Y-%m-%d}" in row and run.status in row, f"{run.run_id} in:\n{runs_table}"
    assert sum(1 for token in rows if token.startswith("2025")) == len(summaries), runs_table

    ranking = _text(sections["Drift over time for the top features"])
    ranked = [line.split()[0] for line in ranking.splitlines() if line.split() and line.split()[0] in MONITORED]
    times_drifted = {
        name: sum(c.drifted for s in summaries for c in s.features.columns if c.column == name) for name in MONITORED
    }
    assert sorted(ranked) == sorted(MONITORED), ranking
    assert [times_drifted[name] for name in ranked] == sorted(times_drifted.values(), reverse=True), ranking

    decisions = _text(sections["Retraining decisions"])
    [retraining] = [(s.run_id, s.retraining) for s in summaries if s.retraining is not None]
    run_id, started = retraining
    assert run_id in decisions and f"{started.training_run_id}" in decisions, decisions
    assert "cool-down until" in decisions and "retrainings: 1, promoted: 1" in decisions, decisions
    quiet = [s.run_id for s in summaries if not s.decision.reasons and s.retraining is None]
    assert quiet and not any(run_id in decisions for run_id in quiet), "runs where no rule fired are left out"


def test_drift_review_without_predictions_labels_or_retraining(tmp_path: Path) -> None:
    """Runs without prediction drift, matured labels or any decision still give every section its figure."""
    runs = [
        run.model_copy(
            update={
                "prediction": None,
                "performance": None,
                "retraining": None,
                "decision": Decision(retrain=False, reasons=[]),
            }
        )
        for run in monitoring_runs(seed=3)[:3]
    ]
    nb = _execute(DRIFT_REVIEW, {"CHURN_REPORTS_DIR": str(_write_summaries(tmp_path / "reports", runs))})
    sections = _section_outputs(nb)
    for heading in NOTEBOOKS[DRIFT_REVIEW]:
        assert _images(sections[heading]) >= 1, heading
    assert "no rule of the drift policy fired" in _text(sections["Retraining decisions"])
