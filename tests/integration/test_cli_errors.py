"""Every `churn` command on an empty workspace fails in a line saying what to run, never a traceback,
and a config error ends a command before Feast, MLflow or BentoML is imported.

The commands are enumerated from the Typer app, so a new command is walked without touching this
file; `ARGS` gives those with required arguments what they need.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from churn.cli import app, main

ARGS: dict[tuple[str, ...], list[str]] = {
    ("promote",): ["1", "--reason", "test"],
    ("tune-worker",): ["--study", "churn-xgb-20250101T000000"],
    ("score",): ["--out", "alerts.csv"],
    ("features", "training-set"): ["--out", "training_set.parquet"],
    ("data", "generate"): ["--customers", "30", "--days", "20"],
    ("data", "fetch"): ["telco", "--wheel", "missing.whl"],
    ("campaigns", "import-actions"): ["--campaign", "2025-06-30-v1"],
}
"""Required arguments (and, for `data generate`, a small size) of the commands that take some."""

SUCCEEDS = {("config", "show"), ("config", "tracking-uri"), ("data", "generate")}
"""Commands with nothing to fail on in an empty workspace."""

CREATES = {("train",): {"mlflow"}, ("data", "generate"): {"raw"}}
"""What a command may leave in the workspace besides its log: `train` opens the tracking store
before it reads the training set."""

WALK_SKIPS = {("quickstart",): "runs the whole loop on data it generates: tests/e2e/test_quickstart.py"}

HEAVY = ("feast", "mlflow", "bentoml", "xgboost", "optuna", "evidently", "duckdb", "pandas", "sklearn", "dask")
"""The stack's packages: seconds to import, so nothing of them loads before the config is valid."""

COMMAND_HINT = re.compile(r"`(CHURN_\w+=\S+ )?churn [^`]+`")
"""A command to run, in backquotes."""


def _commands(group: object = None, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    group = group or get_command(app)
    for name, command in sorted(group.commands.items()):  # type: ignore[attr-defined]
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


COMMANDS = list(_commands())


def test_the_walk_finds_every_command() -> None:
    assert {("train",), ("serve",), ("monitor",), ("features", "apply"), ("champions",)} <= set(COMMANDS)
    assert {("workspace", "relocate"), ("config", "tracking-uri")} <= set(COMMANDS)


@pytest.mark.parametrize("path", [p for p in COMMANDS if p not in WALK_SKIPS], ids=" ".join)
def test_on_an_empty_workspace(path: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ws = tmp_path / "ws"
    env = {"CHURN_WORKSPACE": str(ws), "COLUMNS": "200", "CHURN_CONFIG": None}
    result = CliRunner().invoke(app, [*path, *ARGS.get(path, [])], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    if path in SUCCEEDS:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1, result.output
        assert lines[-1].startswith(("error: ", "next: ")) and COMMAND_HINT.search(lines[-1]), result.output
    left = {p.name for p in ws.iterdir()} - {"logs"} if ws.exists() else set()
    assert left <= CREATES.get(path, set())
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["ws"])  # no mlflow.db or mlruns/ here


def _imports_after(args: list[str], cwd: Path) -> tuple[str, list[str]]:
    """Run `churn ARGS` in a fresh interpreter; its output and the stack packages it imported."""
    driver = (
        "import json, sys\n"
        "from churn.cli import app\n"
        "try:\n"
        "    app(sys.argv[1:], prog_name='churn')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", driver, *args],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "CHURN_WORKSPACE": str(cwd / "ws"), "HOME": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    *output, imported = proc.stdout.strip().splitlines()
    return "\n".join(output), json.loads(imported)


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_a_config_typo_fails_before_the_stack_loads(path: tuple[str, ...], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainig:\n  n_trials: 3\n")
    output, imported = _imports_after([*path, *ARGS.get(path, []), "--config", str(bad)], tmp_path)
    assert "unknown key 'trainig'" in output
    assert imported == []


def test_a_monitor_mode_typo_fails_before_the_stack_loads(tmp_path: Path) -> None:
    output, imported = _imports_after(["monitor", "--mode", "strem"], tmp_path)
    assert "--mode 'strem': expected serving, batch or auto" in output
    assert imported == []


def test_an_unexpected_error_is_one_line_and_its_traceback_goes_to_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(settings: object) -> str:
        raise RuntimeError("the unexpected\nsecond line")

    monkeypatch.setattr("churn.cli.config.resolved_yaml", broken)
    monkeypatch.setattr(sys, "argv", ["churn", "config", "show"])
    monkeypatch.setenv("CHURN_WORKSPACE", str(tmp_path))
    monkeypatch.delenv("CHURN_CONFIG", raising=False)
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    *_, error, hint = capsys.readouterr().out.strip().splitlines()
    assert error == "error: RuntimeError: the unexpected"
    (logfile,) = (tmp_path / "logs").glob("config-show-*.log")
    assert hint == f"next: this is a bug: report it with the traceback in {logfile}"
    assert "Traceback" in logfile.read_text() and "RuntimeError: the unexpected" in logfile.read_text()
