"""Bring your own data: the README's commands on a purchases-only transactions export.

The export has one row per transaction (customer id, date, amount, quantity), no customers table
and no event types; `configs/transactions.yaml` maps it onto the contract.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from churn.cli import app
from core import names
from features.generator.dataset import generate, write_generated

REPO = Path(__file__).resolve().parents[2]


def _readme_commands() -> list[list[str]]:
    """The commands of the README's bring-your-own-data block, as argument lists."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- byo-commands -->\s*```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no byo-commands block"
    return [shlex.split(line) for line in block.group(1).strip().splitlines()]


def _transactions(root: Path) -> pd.DataFrame:
    """A transactions export from generated purchases: CustomerID, InvoiceDate (a date), Amount, Quantity."""
    _, events_path = write_generated(generate(500, 365, seed=5), root / "generated")
    events = pd.read_parquet(events_path)
    purchases = events[events[names.EVENT_TYPE] == "purchase"]
    rng = np.random.default_rng(5)
    return pd.DataFrame(
        {
            "CustomerID": purchases[names.CUSTOMER_ID].to_numpy(),
            "InvoiceDate": purchases[names.EVENT_TIMESTAMP].dt.strftime("%Y-%m-%d").to_numpy(),
            "Amount": purchases[names.AMOUNT].round(2).to_numpy(),
            "Quantity": rng.integers(1, 5, len(purchases)),
        }
    )


def test_readme_commands_on_a_transactions_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace = tmp_path / "workspace-transactions"
    export = _transactions(tmp_path)
    (workspace / "raw").mkdir(parents=True)
    export.to_csv(workspace / "raw/transactions.csv", index=False)
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("CHURN_WORKSPACE", str(workspace))
    outputs: dict[str, Path] = {}
    for argv in _readme_commands():
        assert argv[0] == "churn"
        args = argv[1:]
        if "--out" in args:  # keep the output in the test's workspace
            i = args.index("--out") + 1
            outputs[args[0]] = tmp_path / Path(args[i]).name
            args[i] = str(outputs[args[0]])
        result = CliRunner().invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, f"churn {' '.join(args)}\n{result.output}"
        if args[0] == "train":  # BG/NBD fits generated purchases: the gate says so, the block promotes by hand
            verdict = " ".join(result.output.split())
            assert "does NOT beat every baseline" in verdict and "loses to the bg_nbd baseline" in verdict, verdict
    assert set(outputs) == {"features", "score", "report"} and all(p.exists() for p in outputs.values())

    training = pd.read_parquet(outputs["features"])
    labels = pd.read_parquet(workspace / "features/labels.parquet")
    assert len(training) == len(labels) > 1000  # one row per labelled (customer, observation date)
    features = [c for c in training.columns if c not in (names.CUSTOMER_ID, names.EVENT_TIMESTAMP, names.LABEL)]
    # Purchases only: purchase features, activity recency and tenure; nothing from absent event types.
    assert {"purchases_count_30d", "purchases_spend_90d", "purchases_rfm_monetary", "purchases_overdue_ratio"} <= set(
        features
    )
    assert not [f for f in features if f.startswith(("service_", "engagement_visits", "engagement_change"))]
    assert not [
        f for f in features if f.startswith("profile_") and f not in ("profile_tenure_days", "profile_age_days")
    ]
    assert 0.02 < training[names.LABEL].mean() < 0.98
    # Activity labels: churned means no purchase in the 60 days after the observation date.
    dates = pd.to_datetime(export["InvoiceDate"], utc=True)
    row = training[training[names.LABEL] == 1].iloc[0]
    t = row[names.EVENT_TIMESTAMP]
    theirs = dates[export["CustomerID"] == row[names.CUSTOMER_ID]]
    assert not ((theirs >= t) & (theirs < t + pd.Timedelta(days=60))).any()
    # The alert list and the ops report from the purchases-only model.
    alerts = pd.read_csv(tmp_path / "alerts.csv")
    assert len(alerts) > 100 and alerts["expected_loss"].is_monotonic_decreasing
    hits = {h["rule"] for cell in alerts["rule_hits"] for h in json.loads(cell)}
    assert hits and hits <= {"purchases_falling", "overdue", "no_recent_purchase"}
    playbook = {"account_care_call", "vip_care", "time_limited_coupon", "win_back_offer", "monitor"}
    assert set(alerts["action"]) <= playbook
    assert alerts["action"].nunique() >= 2 and set(alerts["activity"]) <= {"active", "cooling", "dormant"}
    page = (tmp_path / "ops.html").read_text()
    assert '<h2 id="top-alerts"' in page and '<h2 id="cohort-retention"' in page
    # Customers were derived from the export: signup = first purchase day.
    customers = pd.read_parquet(workspace / "clean/customers.parquet")
    assert len(customers) == export["CustomerID"].nunique()
    first = dates.groupby(export["CustomerID"]).min().dt.tz_localize(None)
    signup = customers.set_index(names.CUSTOMER_ID)[names.SIGNUP_DATE]
    assert (signup.sort_index() == first.sort_index().to_numpy()).all()
