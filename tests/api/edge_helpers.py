"""An instant in-process `Runtime` (no workers) and raw-socket HTTP for the HTTP-edge tests."""

from __future__ import annotations

import io
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from api_helpers import api_config
from live_server import LiveServer
from PIL import Image

from argus.api import create_app
from argus.runtime.base import GenerationRequest, JobHandle, JobOutcome, Runtime

GOOD = {"prompt": "a red circle", "size": "32x32"}
PATH = "/v1/images/generations"
CAP = 256 * 1024
"""`server.max_body_bytes` of the edge test servers."""
BODY_TIMEOUT_S = 1.0


def tiny_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, format="PNG")
    return out.getvalue()


class InstantRuntime(Runtime):
    """Answers every request at once with one 8x8 PNG per image; keeps what it was given."""

    def __init__(self) -> None:
        self.submitted: list[GenerationRequest] = []
        self._png = tiny_png()

    async def start(self) -> None:
        return None

    async def submit(self, request: GenerationRequest) -> JobHandle:
        self.submitted.append(request)
        handle = JobHandle(f"req-{len(self.submitted)}")
        handle.level = "instant"
        handle.finish(JobOutcome(
            request_id=handle.request_id, images_png=[self._png] * request.n, variant="instant",
            level="instant", steps=1, steps_run=1, seed=request.seed or 0, width=8, height=8,
            timings_ms={"queue": 0.0, "run": 1.0, "total": 1.0},
        ))
        return handle

    async def cancel(self, request_id: str) -> bool:
        return False

    def ready(self) -> bool:
        return True

    def snapshot(self) -> dict[str, Any]:
        return {}

    def queue_lengths(self) -> dict[str, int]:
        return {}

    async def shutdown(self, drain_timeout_s: float = 30.0) -> None:
        return None


class Edge:
    """An Argus app over an `InstantRuntime` on a live server, body cap `CAP`, body deadline
    `BODY_TIMEOUT_S`."""

    def __init__(self, **server: object) -> None:
        self.runtime = InstantRuntime()
        config = api_config(max_body_bytes=CAP, body_timeout_s=BODY_TIMEOUT_S, **server)
        self.server = LiveServer(create_app(config, runtime=self.runtime))
        self.url = self.server.wait_started()
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def post_raw(self, content: bytes | str, **headers: str) -> httpx.Response:
        return self.http.post(
            PATH, content=content, headers={"content-type": "application/json", **headers}
        )

    def close(self) -> None:
        self.http.close()
        self.server.stop()


def connect(url: str, timeout_s: float = 5.0) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout_s)
    return sock


def read_until_closed(sock: socket.socket, timeout_s: float = 5.0) -> tuple[bytes, bool]:
    """(bytes read, whether the server closed the connection) within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    data = b""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def raw_exchange(url: str, request: bytes, timeout_s: float = 5.0) -> tuple[bytes, bool]:
    """Send `request` as is on a fresh connection; (response bytes, closed by the server)."""
    with connect(url, timeout_s) as sock:
        sock.sendall(request)
        return read_until_closed(sock, timeout_s)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def post_head(path: str, extra: str) -> bytes:
    """Request line and headers of a POST of JSON; `extra` adds header lines (each + CRLF)."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"{extra}\r\n"
    ).encode()
