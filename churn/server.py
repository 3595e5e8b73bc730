"""The BentoML scoring service: in place of the command (`churn serve`) or as a child process for a block.

The service runs `serving.service:ChurnService` with `bentoml serve` from the repository root and
reads the same config file (`$CHURN_CONFIG`) and workspace as the command that starts it.
`churn serve` replaces its own process with the server (exec), so a supervisor's SIGTERM to the
pid it started reaches BentoML, which stops its workers; no process is left answering on the port.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import httpx

from core.settings import CONFIG_ENV

if TYPE_CHECKING:
    from churn.cli.common import Context

SCORING_SERVICE = "serving.service:ChurnService"
"""The scoring service, as `bentoml serve` takes it."""


def exec_service(ctx: Context) -> NoReturn:
    """Replace this process with the BentoML server on the configured host and port.

    The server keeps this process's id, so signals sent to it (SIGTERM from a supervisor, SIGINT
    from the terminal) stop the server and its workers.

    Args:
        ctx: The command's settings and config file.
    """
    s = ctx.settings.serving
    command = _serve_command(SCORING_SERVICE, s.host, s.port)
    env = _service_env(ctx)
    os.chdir(_repo_root())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, env)


@contextlib.contextmanager
def running_service(
    ctx: Context, timeout_s: float, service: str = SCORING_SERVICE, env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Start a BentoML service in a subprocess on a free port; yield its URL; stop it.

    Args:
        ctx: The settings and config file the service runs with.
        timeout_s: How long to wait for the service to answer its readiness check.
        service: The service as `bentoml serve` takes it (`module:Service`, importable from the
            repository root); the scoring service by default.
        env: Variables set for the service on top of this process's and the config's.

    Yields:
        The service's base URL.

    Raises:
        RuntimeError: The service exited or was not ready in time; the message names its log file.
    """
    host = ctx.settings.serving.host
    port = _free_port(host)
    logfile = ctx.settings.path("logs") / f"service-{port}.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "w") as out:
        proc = subprocess.Popen(
            _serve_command(service, host, port),
            env={**_service_env(ctx), **(env or {})},
            cwd=_repo_root(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the service exited with code {proc.returncode}; see {logfile}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service was not ready after {timeout_s:.0f} s; see {logfile}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def _serve_command(service: str, host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        service,
        "--host",
        host,
        "--port",
        str(port),
    ]


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def _service_env(ctx: Context) -> dict[str, str]:
    env = dict(os.environ)
    env[CONFIG_ENV] = str(ctx.config_path)
    env["CHURN_WORKSPACE"] = str(Path(ctx.settings.workspace).resolve())
    env.setdefault("BENTOML_HOME", str(ctx.settings.path("bentoml")))
    env.setdefault("BENTOML_DO_NOT_TRACK", "true")
    return env


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
