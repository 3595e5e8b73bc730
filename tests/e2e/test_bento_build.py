"""`bentoml build` with the repository's bentofile.yaml: a Bento of ChurnService, pinned to uv.lock.

Runs the two documented steps (`uv export` of the lock, then `bentoml build`) with BENTOML_HOME
in a temporary folder, so ~/bentoml is never touched, and reads the Bento back with `bentoml get`.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "build" / "bento-requirements.txt"
"""Where bentofile.yaml expects the exported lock (`build/` is git-ignored)."""
PACKAGES = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"][
    "packages"
]
"""The project's packages: the Bento holds their code and nothing else of the repository but configs."""


def _uv() -> str:
    found = shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")
    if not Path(found).exists():
        pytest.skip("needs uv (`make setup` installs it into .tools/)")
    return found


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


@pytest.mark.slow
def test_bentoml_build_packs_the_service(tmp_path: Path) -> None:
    uv = _uv()
    REQUIREMENTS.parent.mkdir(exist_ok=True)
    subprocess.run(
        [
            uv,
            "export",
            "--frozen",
            "--no-dev",
            "--no-emit-project",
            "--no-hashes",
            "--no-header",
            "--no-annotate",
            "--quiet",
            "-o",
            str(REQUIREMENTS.relative_to(REPO)),
        ],
        cwd=REPO,
        check=True,
        timeout=120,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_")}
    env |= {
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        # BentoML calls uv while it builds; without one on PATH it tries to pip-install it.
        "PATH": f"{Path(uv).parent}{os.pathsep}{env.get('PATH', '')}",
    }

    built = _bentoml(env, "build", "--output", "tag")
    assert built.returncode == 0, built.stdout + built.stderr
    match = re.search(r"__tag__:(\S+)", built.stdout)
    assert match, built.stdout
    tag = match.group(1)
    assert tag.startswith("churn_scoring:")

    listed = _bentoml(env, "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert [b["tag"] for b in json.loads(listed.stdout)] == [tag]

    got = _bentoml(env, "get", tag, "-o", "json")
    assert got.returncode == 0, got.stderr
    bento: dict[str, Any] = json.loads(got.stdout)
    assert bento["service"] == "serving.service:ChurnService"
    assert bento["entry_service"] == "churn_scoring"
    schema = bento["schema"]
    assert {r["name"]: r["route"] for r in schema["routes"]} == {
        "score": "/score",
        "score_features": "/score_features",
    }
    assert schema["routes"][0]["input"]["required"] == ["customer_ids"]
    assert schema["paths"]["/model"] == {"mounted": True}

    # The Bento's folder: the packages the service imports, the configs, nothing else of the repo.
    home = tmp_path / "bentoml" / "bentos" / tag.replace(":", "/")
    src = home / "src"
    files = {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()}
    for needed in ("serving/service.py", "serving/guard.py", "model/matrix.py", "core/settings.py"):
        assert needed in files
    assert "configs/default.yaml" in files
    assert {f.split("/")[0] for f in files} <= {*PACKAGES, "configs", "bentofile.yaml"}
    assert not any("__pycache__" in f for f in files)

    # Python packages: exactly uv.lock's versions.
    requirements = (home / "env" / "python" / "requirements.txt").read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", requirements, flags=re.MULTILINE))
    locked = _locked_versions()
    for package in ("bentoml", "xgboost", "mlflow", "feast", "pandas", "pydantic"):
        assert pins[package] == locked[package], package
    assert pins["bentoml"] == importlib.metadata.version("bentoml")
    assert "schemathesis" not in pins and "pytest" not in pins  # dev dependencies stay out
