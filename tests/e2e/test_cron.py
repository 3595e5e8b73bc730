"""The README's cron lines as cron runs them, and `mlflow run` as the README documents it.

Each runs under `env -i` with cron's variables only (`PATH=/usr/bin:/bin`, `SHELL=/bin/sh`, a
`HOME`), in a copy of the repository (its tracked files and the venv) standing in for
/srv/churn-platform. The cron lines run on the trained workspace of the service tests, copied into
the copy's `workspace/`: a moved workspace, which `churn workspace relocate` points at its new place
first. Nothing may land in the repository root (no `mlflow.db`, no `mlruns/`) or in the original
workspace.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient
from repo_copy import REPO, copy_repository

README_ROOT = "/srv/churn-platform"
"""The repository's place in the README's cron lines."""


def _cron_lines() -> list[str]:
    blocks = re.findall(r"```cron\n(.*?)```", (REPO / "README.md").read_text(), flags=re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def _command(line: str) -> str:
    """The command of a crontab line (after the five schedule fields)."""
    return line.split(maxsplit=5)[5]


def _as_cron(command: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    home.mkdir(exist_ok=True)
    return subprocess.run(
        ["env", "-i", "SHELL=/bin/sh", "PATH=/usr/bin:/bin", f"HOME={home}", "LOGNAME=cron", "sh", "-c", command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _files(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*") if p.is_file()}


def test_the_readme_has_cron_lines() -> None:
    lines = _cron_lines()
    assert len(lines) == 2
    assert all(line.startswith("0 6 * * 1  cd /srv/churn-platform && ") for line in lines)


@pytest.mark.slow
@pytest.mark.parametrize("line", _cron_lines(), ids=["churn", "mlflow-run"])
def test_a_readme_cron_line_runs_under_crons_environment(line: str, served_workspace: Path, tmp_path: Path) -> None:
    srv = copy_repository(tmp_path / "churn-platform")
    ws = srv / "workspace"
    # The prediction log is left behind: the window is then empty and the run decides nothing,
    # whatever the service tests scored before this one.
    shutil.copytree(served_workspace, ws, ignore=shutil.ignore_patterns("predictions", "logs"))
    original = _files(served_workspace)

    moved = _as_cron(".venv/bin/churn monitor", srv, tmp_path / "home")
    assert moved.returncode == 1
    assert moved.stdout.strip().splitlines()[-1].startswith("next: run `churn workspace relocate`"), moved.stdout
    relocated = _as_cron(".venv/bin/churn workspace relocate", srv, tmp_path / "home")
    assert relocated.returncode == 0, relocated.stdout + relocated.stderr
    assert "artifact locations moved" in relocated.stdout and "Feast: applied" in relocated.stdout

    done = _as_cron(_command(line).replace(README_ROOT, str(srv)), tmp_path, tmp_path / "home")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "decision:" in done.stdout and "Traceback" not in done.stdout + done.stderr
    assert list((ws / "reports").glob("monitor-*.json"))

    assert not (srv / "mlflow.db").exists() and not (srv / "mlruns").exists()
    assert _files(served_workspace) == original  # nothing read through, or written to, the old place
    if "mlflow run" in line:
        client = MlflowClient(f"sqlite:///{ws / 'mlflow' / 'mlflow.db'}")
        runs = client.search_runs(
            [e.experiment_id for e in client.search_experiments()],
            filter_string="tags.`mlflow.project.entryPoint` = 'monitor_and_retrain'",
        )
        assert [r.info.status for r in runs] == ["FINISHED"]


@pytest.mark.slow
def test_mlflow_run_records_in_the_configs_store_from_a_fresh_copy(tmp_path: Path) -> None:
    """The README's `mlflow run` line (entry point `generate`) in a fresh copy: no stray mlflow.db."""
    srv = copy_repository(tmp_path / "churn-platform")
    readme = (REPO / "README.md").read_text()
    documented = re.search(r"^PATH=\$PWD/\.venv/bin.*?--env-manager local$", readme, flags=re.M | re.S)
    assert documented, "the README's mlflow run line"
    command = documented.group(0).replace("\\\n", " ")
    command = command.replace("-e quickstart", "-e generate -P customers=60 -P days=40")
    done = _as_cron(command, srv, tmp_path / "home")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (srv / "workspace" / "raw" / "events.parquet").exists()
    assert not (srv / "mlflow.db").exists() and not (srv / "mlruns").exists()
    client = MlflowClient(f"sqlite:///{srv / 'workspace' / 'mlflow' / 'mlflow.db'}")
    runs = client.search_runs(["0"], filter_string="tags.`mlflow.project.entryPoint` = 'generate'")
    assert [r.info.status for r in runs] == ["FINISHED"]
