"""The MLflow internal `model.mlflow_adapter` relies on: these fail when an MLflow upgrade changes it."""

from __future__ import annotations

import pytest
from mlflow.utils import requirements_utils

from model.mlflow_adapter import index_installed_packages


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """MLflow as in a fresh process, counting its reads of the installed distributions."""
    monkeypatch.setattr(requirements_utils, "_MODULES_TO_PACKAGES", None)
    monkeypatch.setattr(requirements_utils, "_PACKAGES_TO_MODULES", None)
    read = requirements_utils.importlib_metadata.packages_distributions
    counted: list[int] = []

    def counting() -> object:
        counted.append(1)
        return read()

    monkeypatch.setattr(requirements_utils.importlib_metadata, "packages_distributions", counting)
    return counted


def check_requirements() -> None:
    """What `mlflow.pyfunc.log_model` calls on the stated requirements (it logs, never raises)."""
    requirements_utils.warn_dependency_requirement_mismatches(["xgboost", "pandas"])


def test_after_the_index_the_requirement_check_reads_no_distribution(reads: list[int]) -> None:
    assert index_installed_packages()
    assert len(reads) == 1
    assert "xgboost" in requirements_utils._MODULES_TO_PACKAGES
    check_requirements()
    assert len(reads) == 1


def test_without_the_index_the_requirement_check_reads_them(reads: list[int]) -> None:
    check_requirements()
    assert len(reads) == 1  # the work the index does ahead


def test_without_the_internal_the_index_is_left_to_the_model_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(requirements_utils, "_init_modules_to_packages_map")
    assert not index_installed_packages()
