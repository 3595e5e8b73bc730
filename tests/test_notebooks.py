"""The notebooks run top to bottom against a small generated workspace, and draw what they promise.

Each notebook is executed once per module with nbclient, in a `python3` kernel whose environment
names the workspace (`CHURN_WORKSPACE`); the tests then read the executed cells' outputs. To add a
notebook, list it in `NOTEBOOKS` with the headings of its sections that must draw a figure.
"""

from __future__ import annotations

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

from churn import names
from churn.settings import parse_settings
from features.generator import generate, write_generated
from features.ingest import ingest
from features.pipeline import FeaturePaths, build_features, snapshot_schema

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL = "python3"
EXPLORE_FEATURES = "01-explore-features.ipynb"

NOTEBOOKS: dict[str, tuple[str, ...]] = {
    EXPLORE_FEATURES: (
        "Churn rate over time",
        "Distributions of the strongest features",
        "Cohorts: churn rate per decile",
    ),
}
"""Notebook file in notebooks/ -> headings of the sections that must each display at least one image."""

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


@pytest.fixture(scope="module")
def executed(workspace: Path) -> Runner:
    """Executes a notebook on `workspace` the first time it is asked for; returns the executed notebook.

    A notebook that fails is not run again: every test asking for it gets the same error.
    """
    runs: dict[str, NotebookNode | Exception] = {}

    def run(name: str) -> NotebookNode:
        if name not in runs:
            nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
            client = NotebookClient(
                nb, timeout=600, kernel_name=KERNEL, resources={"metadata": {"path": str(NOTEBOOKS_DIR)}}
            )
            # The kernel is a child process: it inherits this process's environment.
            with pytest.MonkeyPatch.context() as env:
                env.setenv("CHURN_WORKSPACE", str(workspace))
                env.setenv("MPLBACKEND", "Agg")
                try:
                    client.execute()
                    runs[name] = nb
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
