"""The scoring service's call to its batching model service: retried when the connection drops
under it (BentoML 1.4.39's client closes its old session under calls in flight), not otherwise."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import aiohttp
import numpy as np
import pytest

from serving.service import MODEL_CALL_ATTEMPTS, _model_outputs


class FlakyModel:
    """A stand-in for the dependency client: `to_async.outputs` fails with `errors`, then answers."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.to_async = SimpleNamespace(outputs=self._outputs)

    async def _outputs(self, rows: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return np.ones((len(rows), 2), dtype=np.float32)


@pytest.mark.parametrize(
    "dropped",
    [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientPayloadError("payload cut"),
        RuntimeError("Connection closed."),
    ],
)
def test_a_dropped_connection_is_retried(dropped: Exception) -> None:
    model = FlakyModel([dropped])
    out = asyncio.run(_model_outputs(model, np.zeros(3, dtype=object)))
    assert out.shape == (3, 2) and model.calls == 2


def test_retries_stop_after_the_last_attempt() -> None:
    model = FlakyModel([RuntimeError("Connection closed.")] * MODEL_CALL_ATTEMPTS)
    with pytest.raises(RuntimeError, match="Connection closed"):
        asyncio.run(_model_outputs(model, np.zeros(1, dtype=object)))
    assert model.calls == MODEL_CALL_ATTEMPTS


@pytest.mark.parametrize("error", [ValueError("bad rows"), RuntimeError("something else")])
def test_other_errors_are_not_retried(error: Exception) -> None:
    model = FlakyModel([error])
    with pytest.raises(type(error), match=str(error)):
        asyncio.run(_model_outputs(model, np.zeros(1, dtype=object)))
    assert model.calls == 1
