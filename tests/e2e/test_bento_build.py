"""`make bento` from a fresh copy of the repository: a Bento of ChurnService, pinned to uv.lock.

The copy has the tracked files only (no `build/bento-requirements.txt`) and links to this
checkout's venv and `.tools` (what `make setup` makes; `-o setup` keeps make from syncing the
linked venv to the copy). It runs with `PATH=/usr/bin:/bin`, so neither uv nor bentoml is on PATH,
and BENTOML_HOME in a temporary folder, so ~/bentoml is never touched; the Bento is read back with
`bentoml get`.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from repo_copy import REPO, copy_repository

from core.settings import CONFIG_ENV, ENV_OVERRIDES

PACKAGES = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"][
    "packages"
]
"""The project's packages: the Bento holds their code and nothing else of the repository but configs."""

SERVICE_ENVS = {
    "CHURN_CONFIG",
    "CHURN_WORKSPACE",
    "CHURN_MLFLOW_TRACKING_URI",
    "CHURN_FEAST_REGISTRY",
    "CHURN_FEAST_ONLINE_STORE",
    "CHURN_API_KEY",
    "CHURN_STREAM_REDIS_URL",
    "CHURN_WEBHOOK_URL",
    "CHURN_WEBHOOK_SECRET",
}
"""The variables the service reads at start (core.settings.ENV_OVERRIDES and CHURN_CONFIG)."""


def _bentoml(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bentoml", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _locked_versions() -> dict[str, str]:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    return {p["name"]: p["version"] for p in lock["package"] if "version" in p}


def test_the_bentofile_declares_what_the_service_reads_at_start() -> None:
    envs = yaml.safe_load((REPO / "bentofile.yaml").read_text())["envs"]
    declared = {e["name"]: e for e in envs}
    assert {*ENV_OVERRIDES, CONFIG_ENV} - {"CHURN_OPTUNA_STORAGE"} == SERVICE_ENVS <= set(declared)  # tuning only
    # Given where the service runs, never baked into an image (the API key least of all).
    assert all(declared[name].get("stage") == "runtime" and "value" not in declared[name] for name in SERVICE_ENVS)


@pytest.mark.slow
def test_make_bento_from_a_fresh_copy_packs_the_service(tmp_path: Path) -> None:
    tools = (REPO / ".tools" / "bin" / "uv").exists()
    if not tools and not shutil.which("uv", path="/usr/bin:/bin"):
        pytest.skip("needs uv in .tools/ or /usr/bin (`make setup` installs it into .tools/)")
    copy = copy_repository(tmp_path / "clone", links=(".venv", ".tools") if tools else (".venv",))
    assert not (copy / "build").exists()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    made = subprocess.run(
        ["make", "-o", "setup", "bento"], cwd=copy, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    assert (copy / "build" / "bento-requirements.txt").exists()

    listed = _bentoml(env, "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    (tag,) = [b["tag"] for b in json.loads(listed.stdout)]
    assert tag.startswith("churn_scoring:")

    got = _bentoml(env, "get", tag, "-o", "json")
    assert got.returncode == 0, got.stderr
    bento: dict[str, Any] = json.loads(got.stdout)
    assert bento["service"] == "serving.service:ChurnService"
    assert bento["entry_service"] == "churn_scoring"
    schema = bento["schema"]
    assert {r["name"]: r["route"] for r in schema["routes"]} == {
        "score": "/score",
        "score_features": "/score_features",
        "events": "/events",
    }
    routes = {r["name"]: r for r in schema["routes"]}
    assert routes["score"]["input"]["required"] == ["customer_ids"]
    assert routes["events"]["input"]["required"] == ["events"]
    assert schema["paths"]["/model"] == {"mounted": True}
    assert {e["name"] for e in bento["envs"]} >= SERVICE_ENVS

    # The Bento's folder: the packages the service imports, the configs, nothing else of the repo.
    home = tmp_path / "bentoml" / "bentos" / tag.replace(":", "/")
    src = home / "src"
    files = {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()}
    for needed in ("serving/service.py", "serving/guard.py", "stream/online.py", "model/matrix.py", "core/settings.py"):
        assert needed in files
    assert "configs/default.yaml" in files
    assert {f.split("/")[0] for f in files} <= {*PACKAGES, "configs", "bentofile.yaml", "pyproject.toml"}
    assert not any("__pycache__" in f for f in files)

    # Python packages: exactly uv.lock's versions.
    requirements = (home / "env" / "python" / "requirements.txt").read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", requirements, flags=re.MULTILINE))
    locked = _locked_versions()
    for package in ("bentoml", "xgboost", "mlflow", "feast", "pandas", "pydantic"):
        assert pins[package] == locked[package], package
    assert pins["bentoml"] == importlib.metadata.version("bentoml")
    assert "schemathesis" not in pins and "pytest" not in pins  # dev dependencies stay out
