"""ASGI middleware in front of the scoring API: optional API key and a request size limit.

The key comes from `serving.api_key` (set it with CHURN_API_KEY); when it is set, every request
except the health probes must send it as `Authorization: Bearer <key>` or `X-API-Key: <key>`.
Bodies larger than `serving.max_request_bytes` get 413 before they are read in full; a
content-length that is not a number gets 400.

The guard reads the body itself (so a streamed body without a content-length is limited too), then
hands it to the app. After that, the app's further `receive()` calls go to the server's own: a
streamed or file response (BentoML's Swagger UI and its static files, Starlette's FileResponse)
listens there for the client's disconnect, and a made-up disconnect would end it before its body.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.settings import load_settings

OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/metrics"})


class RequestGuard:
    """API key check and body size limit for every HTTP request."""

    def __init__(self, app: ASGIApp, api_key: str | None = None, max_bytes: int | None = None) -> None:
        """Wrap `app`; limits default to the loaded settings (`$CHURN_CONFIG`)."""
        self.app = app
        if api_key is None or max_bytes is None:
            serving = load_settings().serving
            api_key = api_key if api_key is not None else serving.api_key
            max_bytes = max_bytes if max_bytes is not None else serving.max_request_bytes
        self.api_key = api_key or None
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request, then pass it on (or answer 401 / 413 / 400 itself)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.api_key and scope.get("path", "") not in OPEN_PATHS and not self._authorised(headers):
            await _answer(send, 401, "missing or wrong API key: send 'Authorization: Bearer <key>' or 'X-API-Key'")
            return
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                await _answer(send, 400, "content-length: not a number")
                return
            if int(length) > self.max_bytes:
                await _answer(send, 413, f"request body of {length} bytes is over the limit of {self.max_bytes} bytes")
                return
        # Read the body here (it is small: at most max_bytes), so a streamed body without a
        # content-length is refused as cleanly as one with it, then replay it to the app.
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away mid-body
                await self.app(scope, _replay(receive, bytes(body), message), send)
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await _answer(send, 413, f"request body is over the limit of {self.max_bytes} bytes")
                return
        await self.app(scope, _replay(receive, bytes(body)), send)

    def _authorised(self, headers: dict[str, str]) -> bool:
        assert self.api_key is not None
        given = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ").strip()
        return bool(given) and hmac.compare_digest(given.encode(), self.api_key.encode())


def _replay(receive: Receive, body: bytes, then: Message | None = None) -> Receive:
    """A receive that hands the app the buffered body (and `then`, if given), then waits on `receive`.

    Args:
        receive: The server's receive, which the guard has read the whole body from.
        body: That body.
        then: A message the guard received instead of more body (a disconnect), handed on next.
    """
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    if then is not None:
        pending.append(then)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


async def _answer(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers: list[Any] = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
