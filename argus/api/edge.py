"""The HTTP edge in front of the routes: a body size cap and a body read deadline (ASGI
middleware, which also stamps each request's arrival time: its SLO counts from there), and JSON
bodies parsed strictly, large ones off the event loop.

uvicorn's own limits (keep-alive, connection count, header size) are set from `server.*` by
`argus serve` (`argus.cli.serve.uvicorn_options`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from argus.api.errors import error_response

JSON_THREAD_BYTES = 64 * 1024
"""JSON bodies larger than this are parsed in a thread, so a big body cannot stall the loop."""
CLOSE = {"Connection": "close"}


RECEIVED = "argus_received_s"
"""`scope["state"]` key: `time.monotonic()` when the request's headers arrived."""


def received_at(request: Request) -> float | None:
    """When the request arrived (`BodyGuard` stamps it; None without the middleware)."""
    return getattr(request.state, RECEIVED, None)


def _too_large(limit: int) -> str:
    return f"request body is larger than the limit of {limit} bytes"


async def _drain(receive: Receive, deadline: float, limit: int) -> None:
    """Read and drop up to `limit` more body bytes (until `deadline`): a client that sends its
    whole body before it reads (most do) then gets the 413 instead of a connection reset."""
    loop = asyncio.get_running_loop()
    dropped = 0
    while dropped < limit and (remaining := deadline - loop.time()) > 0:
        try:
            async with asyncio.timeout(remaining):
                message = await receive()
        except TimeoutError:
            return
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        dropped += len(message.get("body", b""))


class BodyGuard:
    """Caps every request body at `max_bytes` (413) and gives it `timeout_s` from the end of the
    headers to arrive in full (408), counting bytes as they stream, whatever `Content-Length`
    says. A `Content-Length` over the cap is refused before the app runs and a chunked body is
    cut off past the cap; up to one more cap's worth is read and dropped first (none for a
    `Content-Length` over twice the cap), so that a client that reads only after sending still
    sees the 413. Both errors close the connection, and so does any response sent before its
    request's body was read to the end (the rest of the upload is not waited for). A request
    with both `Content-Length` and `Transfer-Encoding` is refused (400)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})[RECEIVED] = time.monotonic()
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and "transfer-encoding" in headers:
            # RFC 9112 6.1: the framing is ambiguous (request smuggling), h11 takes it
            message = "a request must not carry both Content-Length and Transfer-Encoding"
            response = error_response(400, message, code="invalid_framing", headers=CLOSE)
            await response(scope, receive, send)
            return
        try:
            length = int(declared) if declared is not None else None
        except ValueError:  # h11 rejects these before the app; be safe anyway
            length = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        if length is not None and length > self.max_bytes:
            if length <= 2 * self.max_bytes:
                await _drain(receive, deadline, length)
            response = error_response(
                413, _too_large(self.max_bytes), code="body_too_large", headers=CLOSE
            )
            await response(scope, receive, send)
            return
        finished = "transfer-encoding" not in headers and not length
        received = 0

        async def guarded_receive() -> Message:
            nonlocal finished, received
            if finished:
                return await receive()
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                async with asyncio.timeout(remaining):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    408, f"request body not received within {self.timeout_s:g} s", CLOSE
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if message.get("more_body", False):
                        await _drain(receive, deadline, self.max_bytes)
                    raise HTTPException(413, _too_large(self.max_bytes), CLOSE)
                finished = not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not finished:
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"connection", b"close")]}
            await send(message)

        await self.app(scope, guarded_receive, guarded_send)


def _no_constants(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not valid JSON", "", 0)


def parse_json(body: bytes) -> Any:
    """Strict JSON: UTF-8 only (no UTF-16/32 guessing, no encoded surrogates) and no NaN or
    Infinity; any failure is a `JSONDecodeError`, which FastAPI turns into a 400."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise json.JSONDecodeError(f"body is not valid UTF-8 ({err.reason})", "", 0) from None
    return json.loads(text, parse_constant=_no_constants)


class EdgeRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            if len(body) > JSON_THREAD_BYTES:
                self._json = await asyncio.to_thread(parse_json, body)
            else:
                self._json = parse_json(body)
        return self._json


class EdgeRoute(APIRoute):
    """Routes whose bodies are parsed by `EdgeRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def edge_handler(request: Request) -> Response:
            return await handler(EdgeRequest(request.scope, request.receive))

        return edge_handler
