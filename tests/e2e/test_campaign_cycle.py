"""End to end: the command the README gives right after the quickstart plays one simulated campaign
cycle on the quickstart's workspace: score with control groups, simulated actions and outcomes,
evaluation, the uplift model and the ops report's campaign section."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from churn.cli.quickstart import CAMPAIGN_CYCLE

CHURN = Path(sys.executable).parent / "churn"
README = Path(__file__).parents[2] / "README.md"


def _run(args: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_the_documented_campaign_cycle_runs_on_the_quickstart_workspace(tmp_path: Path) -> None:
    # The README gives the command right after the quickstart, and the quickstart ends with it.
    text = README.read_text(encoding="utf-8")
    assert f"make quickstart\n{CAMPAIGN_CYCLE}" in text.replace(".venv/bin/churn", "churn")
    env = {**os.environ, "CHURN_WORKSPACE": str(tmp_path / "ws"), "COLUMNS": "200"}
    env.pop("CHURN_CONFIG", None)
    quick = [str(CHURN), "quickstart", "--customers", "600", "--days", "200", "--trials", "3", "--seed", "3"]
    assert CAMPAIGN_CYCLE in _run(quick, env).splitlines()

    output = _run([str(CHURN), *shlex.split(CAMPAIGN_CYCLE)[1:]], env)

    assert "recovered effects beside the injected ones" in output
    ws = tmp_path / "ws"
    simulated = sorted(p.parent for p in (ws / "campaigns").glob("*/truth.json"))
    assert len(simulated) == 2
    for folder in simulated:
        record = json.loads((folder / "campaign.json").read_text())
        assert record["treatment"] > 0 and record["control"] > 0
        assert json.loads((folder / "evaluation.json").read_text())["actions_known"]
    recovered = pd.read_csv(ws / "campaigns" / "recovered.csv")
    assert set(recovered["campaign_id"]) == {f.name for f in simulated}
    page = (ws / "reports" / "ops-campaigns.html").read_text()
    assert 'id="campaign-effects"' in page and 'id="campaign-actions"' in page
