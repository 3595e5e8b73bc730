"""The `churn` command: help lists every command with an example; failures say what to do next."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from churn.cli import app

runner = CliRunner()

COMMANDS = ["quickstart", "train", "serve", "monitor", "data", "features", "config", "workspace"]
SUBCOMMANDS = {
    "data": ["generate", "ingest"],
    "features": ["build", "apply", "materialize"],
    "config": ["show", "tracking-uri"],
    "workspace": ["relocate"],
}


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output
    # ... and an example of each, subcommands included.
    examples = result.output.split("Examples, one per command:")[1]
    for name in ["quickstart", "train", "serve", "monitor", "config show"]:
        assert f"churn {name}" in examples
    for group, subs in SUBCOMMANDS.items():
        for sub in subs:
            assert f"churn {group} {sub}" in examples


@pytest.mark.parametrize("path", [[c] for c in COMMANDS] + [[g, s] for g, subs in SUBCOMMANDS.items() for s in subs])
def test_every_command_help_has_an_example(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("trainig:\n  n_trials: 3\n")
    result = runner.invoke(app, ["config", "show", "--config", str(cfg)], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "unknown key 'trainig'" in result.output
    assert str(cfg) in result.output.replace("\n", "")


def test_features_build_without_data_says_what_to_do(tmp_path: Path) -> None:
    result = runner.invoke(app, ["features", "build"], env={"CHURN_WORKSPACE": str(tmp_path), "COLUMNS": "200"})
    assert result.exit_code == 1
    assert "churn data ingest" in result.output


def test_generate_then_ingest(tmp_path: Path) -> None:
    env = {"CHURN_WORKSPACE": str(tmp_path), "COLUMNS": "200"}
    result = runner.invoke(app, ["data", "generate", "--customers", "50", "--days", "30", "--seed", "1"], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "raw/events.parquet").exists()
    result = runner.invoke(app, ["data", "ingest"], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "clean/events.parquet").exists()
    assert "events" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", "7 days"], "--window: window '7 days'"),
        (["--window", "0d"], "--window"),
        (["--start", "2025-09-08", "--end", "2025-09-01"], "is not before the window's end"),
        (["--mode", "stream"], "--mode 'stream'"),
    ],
)
def test_monitor_bad_options_are_clear_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["monitor", *args], env={"CHURN_WORKSPACE": str(tmp_path), "COLUMNS": "200"})
    assert result.exit_code == 1
    assert message in result.output.replace("\n", "")


def test_monitor_without_a_champion_says_what_to_do(tmp_path: Path) -> None:
    result = runner.invoke(app, ["monitor"], env={"CHURN_WORKSPACE": str(tmp_path), "COLUMNS": "200"})
    assert result.exit_code == 1
    assert "no MLflow registry at" in result.output and "run `churn train`" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["logs"]  # no empty store, no reports folder


def test_version_is_the_package_version() -> None:
    churn = Path(sys.executable).with_name("churn")
    done = subprocess.run([str(churn), "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"churn-platform {importlib.metadata.version('churn-platform')}"
