"""MLproject: an entry point per step, and every command it runs is a `churn` command line that parses."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from churn.cli import app

REPO = Path(__file__).resolve().parents[3]
ENTRIES = yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]


def test_every_step_has_an_entry_point() -> None:
    steps = {"quickstart", "generate", "ingest", "features", "training_set", "train", "tune_worker", "score"}
    assert steps | {"report", "monitor", "monitor_and_retrain"} <= set(ENTRIES)
    assert "workers" in ENTRIES["train"]["parameters"]
    assert {"study", "trials", "config"} <= set(ENTRIES["tune_worker"]["parameters"])
    # Every entry point takes the config: its commands use the config's stores.
    assert all("config" in entry["parameters"] for entry in ENTRIES.values())


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_an_entry_points_commands_parse(name: str) -> None:
    entry = ENTRIES[name]
    values = {k: p.get("default", f"<{k}>") for k, p in entry["parameters"].items()}
    for command in entry["command"].format(**values).split("&&"):
        words = shlex.split(command)
        assert words[:3] == ["python", "-m", "churn"], command
        result = CliRunner().invoke(app, [*words[3:], "--help"])
        assert result.exit_code == 0, f"{command}: {result.output}"
