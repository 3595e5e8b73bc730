"""The real-time path over real HTTP: events pushed to POST /events, features on arrival, an alert
to a webhook that fails once and then takes it, and /score answering with the new features; every
alert in the day's real-time campaign, treatment or control, and that campaign evaluated."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from training_fixtures import build_workspace, settings_for, write_config

from churn.cli.common import Context
from churn.server import running_service
from core import names
from core.settings import Settings, parse_settings
from features.paths import FeaturePaths

SECRET = "test-secret"


class Receiver(ThreadingHTTPServer):
    """A webhook receiver that answers 500 to its first `fail` requests, then 200."""

    def __init__(self, fail: int) -> None:
        """Listen on a free port."""
        self.fail = fail
        self.got: list[tuple[bytes, dict[str, str], int]] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["content-length"]))
        status = 500 if len(self.server.got) < self.server.fail else 200
        self.server.got.append((body, dict(self.headers), status))
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:  # noqa: ANN401
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver(fail=1)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[tuple[str, Settings]]:
    from features.pipeline import materialize
    from training.pipeline import train

    ws = tmp_path_factory.mktemp("stream-served")
    build_workspace(ws)
    train(settings_for(ws, n_trials=2, max_rounds=60))
    settings = parse_settings(
        {
            "workspace": str(ws),
            "training": {"n_trials": 2, "max_rounds": 60},
            "crm": {"campaigns": {"control_share": 0.5}},
            "stream": {
                "webhook_url": f"http://127.0.0.1:{receiver.server_port}/alerts",
                "webhook_secret": SECRET,
                "webhook_backoff_s": 0.05,
            },
        },
        "test",
        env={},
    )
    materialize(settings)
    config = write_config(settings, ws / "stream.yaml")
    with running_service(Context(settings, config), timeout_s=180) as url:
        yield url, settings


def _quiet_customer(settings: Settings, nth: int = 0) -> str:
    """The `nth` customer who has not churned (each test pushes to its own)."""
    customers = pd.read_parquet(FeaturePaths.of(settings).clean_customers)
    return str(customers[customers[names.CHURN_DATE].isna()][names.CUSTOMER_ID].iloc[nth])


def test_a_bad_event_refuses_the_batch_naming_it(service: tuple[str, Settings]) -> None:
    url, settings = service
    cid = _quiet_customer(settings)
    now = dt.datetime.now(dt.UTC).isoformat()
    good = {"event_id": "ok-1", "customer_id": cid, "event_timestamp": now, "event_type": "visit"}
    bad = {"event_id": "bad-1", "customer_id": cid, "event_timestamp": now, "event_type": "teleport"}
    answer = httpx.post(f"{url}/events", json={"events": [good, bad]}, timeout=30)
    assert answer.status_code == 400
    assert "events[1]" in answer.text and "teleport" in answer.text
    missing = httpx.post(f"{url}/events", json={"events": [{"customer_id": cid}]}, timeout=30)
    assert missing.status_code == 400 and "event_id" in missing.text
    # Nothing of the refused batch went in: the good event is new when sent alone.
    alone = httpx.post(f"{url}/events", json={"events": [good]}, timeout=30).json()
    assert alone["accepted"] == 1


def test_a_pushed_complaint_spike_raises_one_signed_alert(service: tuple[str, Settings], receiver: Receiver) -> None:
    url, settings = service
    cid = _quiet_customer(settings, 1)
    now = dt.datetime.now(dt.UTC)
    events = [
        {
            "event_id": f"c-{i}",
            "customer_id": cid,
            "event_timestamp": (now - dt.timedelta(minutes=i)).isoformat(),
            "event_type": "complaint",
        }
        for i in range(2)
    ]
    first = httpx.post(f"{url}/events", json={"events": events}, timeout=60).json()
    assert first["accepted"] == 2 and first["duplicates"] == 0
    assert any("complaint_spike" in a["new_rules"] for a in first["alerts"])
    again = httpx.post(f"{url}/events", json={"events": events}, timeout=60).json()
    assert again == {**again, "accepted": 0, "duplicates": 2, "alerts": []}

    scored = httpx.post(f"{url}/score", json={"customer_ids": [cid]}, timeout=30).json()[0]
    assert any(h["rule"] == "complaint_spike" for h in scored["rule_hits"])
    assert scored["newest_event"] is not None
    # The batch scored the rows it wrote without reading them back: /score reads them and agrees.
    (raised,) = [a for a in first["alerts"] if a["customer_id"] == cid]
    same = ("churn_probability", "risk_tier", "rule_hits", "reasons", "action", "segment", "customer_value")
    assert {k: raised[k] for k in same} == {k: scored.get(k) for k in same}

    def delivered() -> list[tuple[bytes, dict[str, str]]]:
        return [(b, h) for b, h, s in receiver.got if s == 200 and json.loads(b)["customer_id"] == cid]

    deadline = dt.datetime.now() + dt.timedelta(seconds=20)
    while dt.datetime.now() < deadline and not delivered():
        threading.Event().wait(0.1)
    assert receiver.got[0][2] == 500  # the receiver's first answer failed; the retry got through
    body, headers = delivered()[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers.get("X-Churn-Signature") == expected
    alert = json.loads(body)
    assert "complaint_spike" in alert["new_rules"]
    assert {"churn_probability", "risk_tier", "rule_hits", "reasons", "action", "model_version"} <= set(alert)
    log = Path(settings.path(settings.stream.alert_log)).read_text().splitlines()
    assert any(json.loads(line)["customer_id"] == cid for line in log)


def test_alerts_on_arrival_go_to_treatment_or_control_of_the_days_campaign(
    service: tuple[str, Settings], receiver: Receiver
) -> None:
    from typer.testing import CliRunner

    from churn.cli import app
    from crm.campaigns.plan import assignment_draws
    from crm.campaigns.realtime import assign_alerts, record_alerts

    url, settings = service
    customers = [_quiet_customer(settings, 10 + k) for k in range(12)]
    now = dt.datetime.now(dt.UTC)
    events = [
        {
            "event_id": f"rt-{cid}-{i}",
            "customer_id": cid,
            "event_timestamp": (now - dt.timedelta(minutes=i)).isoformat(),
            "event_type": "complaint",
        }
        for cid in customers
        for i in range(2)
    ]
    alerts = httpx.post(f"{url}/events", json={"events": events}, timeout=120).json()["alerts"]
    assert {a["customer_id"] for a in alerts} == set(customers)
    version = alerts[0]["model_version"]
    campaign = f"rt-{now:%Y-%m-%d}-v{version}"
    for alert in alerts:
        draw = assignment_draws(campaign, [alert["customer_id"]], settings.crm.campaigns.seed)[0]
        assert alert["campaign_id"] == campaign
        assert alert["group"] == ("control" if draw < 0.5 else "treatment")  # the hash `churn score` draws with
        assert alert["planned_action"] is not None
        assert alert["action"] == (None if alert["group"] == "control" else alert["planned_action"])
    assert {a["group"] for a in alerts} == {"treatment", "control"}
    # The webhook gets the group; a control customer's alert says the CRM is to do nothing.
    deadline = dt.datetime.now() + dt.timedelta(seconds=20)
    sent: dict[str, dict[str, Any]] = {}
    while dt.datetime.now() < deadline and len(sent) < len(customers):
        sent = {b["customer_id"]: b for b in (json.loads(x[0]) for x in receiver.got if x[2] == 200)}
        threading.Event().wait(0.1)
    control = next(a for a in alerts if a["group"] == "control")
    assert sent[control["customer_id"]] == {**sent[control["customer_id"]], "group": "control", "action": None}
    # The day's campaign is kept like a batch one: record and assignments; evaluated once its horizon has passed.
    folder = settings.path(settings.crm.campaigns.dir) / campaign
    record = json.loads((folder / "campaign.json").read_text())
    kept = pd.read_parquet(folder / "assignments.parquet")
    assert record["path"] == "real-time" and record["as_of"] == f"{now:%Y-%m-%d}" and record["customers"] == len(kept)
    assert record["control"] == (kept["group"] == "control").sum()  # with the other tests' alerts of the day
    ours = kept[kept["customer_id"].isin(customers)]
    assert dict(zip(ours["customer_id"], ours["group"], strict=True)) == {a["customer_id"]: a["group"] for a in alerts}
    env = {"CHURN_WORKSPACE": str(settings.workspace), "COLUMNS": "200", "CHURN_CONFIG": ""}
    result = CliRunner().invoke(app, ["campaigns", "evaluate", "--campaign", campaign], env=env)
    assert result.exit_code == 1 and "label horizon has not passed" in result.output.replace("\n", "")
    # The same alerts raised on a past day, off the weekly observation grid: its outcomes are known.
    from mlflow import MlflowClient

    labels = pd.read_parquet(FeaturePaths.of(settings).labels, columns=[names.EVENT_TIMESTAMP])
    past = (labels[names.EVENT_TIMESTAMP].max() - pd.Timedelta(days=3)).to_pydatetime()
    record_alerts(settings, assign_alerts(alerts, settings, past), past, {})
    past_id = f"rt-{past:%Y-%m-%d}-v{version}"
    result = CliRunner().invoke(app, ["campaigns", "evaluate", "--campaign", past_id], env=env)
    assert result.exit_code == 0, result.output
    folder = settings.path(settings.crm.campaigns.dir) / past_id
    evaluation = json.loads((folder / "evaluation.json").read_text())
    assert evaluation["customers"] == 12 and evaluation["missing_outcomes"] == 0
    record = json.loads((folder / "campaign.json").read_text())
    run = MlflowClient(settings.mlflow_uri).get_run(record["mlflow_run_id"])  # logged when first evaluated
    assert run.data.metrics["customers"] == 12 and "effect.all.itt" in run.data.metrics
