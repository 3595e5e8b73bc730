"""The request guard: API key, body limits, and responses that stream or send files pass through whole."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.routing import Route

from serving.guard import RequestGuard


def _app(static: Path) -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"got": (await request.body()).decode()})

    async def page(request: Request) -> FileResponse:
        return FileResponse(static)

    async def stream(request: Request) -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"part{i};".encode()

        return StreamingResponse(parts())

    return Starlette(
        routes=[
            Route("/echo", echo, methods=["POST"]),
            Route("/", page, methods=["GET"]),
            Route("/stream", stream, methods=["GET"]),
        ]
    )


class Client:
    """Requests to an ASGI app in this process, through httpx's ASGI transport.

    Like a server, the transport answers `receive()` after the body only once the response is
    complete (with a disconnect), so a response that listens for one sees the real thing.
    """

    def __init__(self, app: Any) -> None:  # noqa: ANN401
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:  # noqa: ANN401
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://guarded") as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(call())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:  # noqa: ANN401
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:  # noqa: ANN401
        return self.request("POST", path, **kwargs)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    static = tmp_path / "index.html"
    static.write_text("<html>swagger-ui</html>" * 100)
    yield Client(RequestGuard(_app(static), api_key="", max_bytes=100))


def test_file_and_streaming_responses_keep_their_body(client: Client) -> None:
    """Found in BentoML's Swagger UI: a made-up disconnect after the body emptied every FileResponse."""
    page = client.get("/")
    assert page.status_code == 200 and page.text == "<html>swagger-ui</html>" * 100
    assert client.get("/stream").text == "part0;part1;part2;"


def test_a_body_within_the_limit_reaches_the_app(client: Client) -> None:
    answer = client.post("/echo", content=b"x" * 100)
    assert answer.status_code == 200 and answer.json() == {"got": "x" * 100}


def test_a_body_over_the_limit_gets_413(client: Client) -> None:
    answer = client.post("/echo", content=b"x" * 101)
    assert answer.status_code == 413
    assert answer.json() == {"error": "request body of 101 bytes is over the limit of 100 bytes"}


def test_a_streamed_body_over_the_limit_gets_413(client: Client) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"x" * 60
        yield b"x" * 60

    answer = client.post("/echo", content=chunks())  # chunked: no content-length
    assert answer.status_code == 413
    assert answer.json() == {"error": "request body is over the limit of 100 bytes"}


def test_a_content_length_that_is_no_number_gets_400(client: Client) -> None:
    answer = client.post("/echo", content=b"x", headers={"content-length": "one"})
    assert answer.status_code == 400 and answer.json() == {"error": "content-length: not a number"}


def test_the_api_key_is_checked_except_on_the_probes(tmp_path: Path) -> None:
    static = tmp_path / "index.html"
    static.write_text("page")
    client = Client(RequestGuard(_app(static), api_key="s3cret", max_bytes=100))
    assert client.get("/").status_code == 401
    assert client.get("/", headers={"X-API-Key": "s3cret"}).text == "page"
    assert client.get("/", headers={"Authorization": "Bearer s3cret"}).text == "page"
    assert client.get("/healthz").status_code == 404  # let through to the app, which has no probe here
