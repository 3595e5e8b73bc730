"""The training engine's keys: a bad value is an error naming the key."""

from __future__ import annotations

import pytest

from core.settings import ConfigError, parse_settings


def test_the_dask_engine_defaults_to_a_local_cluster() -> None:
    settings = parse_settings({"training": {"engine": "dask"}}, "test", env={})
    assert settings.training.engine == "dask"
    assert settings.training.dask.scheduler is None and settings.training.dask.workers == 2


@pytest.mark.parametrize("address", ["tcp://10.0.0.5:8786", "scheduler-host:8786", "tls://dask.internal:8786"])
def test_a_scheduler_address_is_accepted(address: str) -> None:
    settings = parse_settings({"training": {"dask": {"scheduler": address}}}, "test", env={})
    assert settings.training.dask.scheduler == address


@pytest.mark.parametrize("address", ["localhost", "tcp://host:port", "http://host:8786/status"])
def test_a_bad_scheduler_address_names_the_key(address: str) -> None:
    with pytest.raises(ConfigError, match=r"key 'training\.dask\.scheduler': String should match pattern"):
        parse_settings({"training": {"dask": {"scheduler": address}}}, "test", env={})


def test_an_unknown_engine_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"key 'training\.engine': Input should be 'local' or 'dask'"):
        parse_settings({"training": {"engine": "spark"}}, "test", env={})


def test_a_worker_count_must_be_positive() -> None:
    with pytest.raises(ConfigError, match=r"key 'training\.dask\.workers'"):
        parse_settings({"training": {"dask": {"workers": 0}}}, "test", env={})
