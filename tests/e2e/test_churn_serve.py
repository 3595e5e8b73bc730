"""`churn serve` as a supervisor runs it: no champion ends it at once; SIGTERM to its pid stops every worker."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest
from mlflow import MlflowClient
from training_fixtures import churn_command, churn_env, write_config

from core.settings import parse_settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _serve(ws: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        churn_command("serve", "--port", str(_free_port())),
        env=churn_env(CHURN_WORKSPACE=str(ws)),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_serve_on_an_empty_workspace_says_what_to_run_and_creates_nothing(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    proc = _serve(ws, tmp_path)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("error: no MLflow registry at sqlite:///") and "run `churn train`" in last
    # Nothing but the job's log: no empty MLflow store, no BentoML home, no stray mlflow.db here.
    assert sorted(p.name for p in ws.iterdir()) == ["logs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws"]


def test_serve_without_a_champion_says_what_to_run(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "mlflow").mkdir(parents=True)
    uri = f"sqlite:///{ws / 'mlflow' / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()  # an empty registry
    proc = _serve(ws, tmp_path)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("error: no 'champion' version of model 'churn-xgb'") and "run `churn train`" in last
    assert not (ws / "bentoml").exists()


@pytest.mark.slow
def test_sigterm_to_churn_serve_stops_every_worker_and_frees_the_port(served_workspace: Path, tmp_path: Path) -> None:
    settings = parse_settings({"workspace": str(served_workspace), "serving": {"workers": 2}}, "test", env={})
    config = write_config(settings, tmp_path / "serve.yaml")
    port = _free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            churn_command("serve", "--port", str(port), "--config", str(config)),
            env=churn_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        tree = psutil.Process(proc.pid).children(recursive=True)
        assert len(tree) >= 2, "expected the server's worker processes"  # two API workers at least

        proc.send_signal(signal.SIGTERM)  # what systemd, Docker or supervisord send on stop
        assert proc.wait(timeout=60) is not None
        _, alive = psutil.wait_procs(tree, timeout=30)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], "workers outlived `churn serve`"
        assert _port_is_free(port)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
        assert "serving churn-xgb v" in log.read_text()
    finally:
        if proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
            proc.wait()
