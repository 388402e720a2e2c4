"""A real Argus server (uvicorn in a thread, real worker processes) on a free port."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import uvicorn

from argus.api import create_app
from argus.config import ArgusConfig, parse_config
from argus.defaults import RANDOM_FAMILY


def api_config(**server: object) -> ArgusConfig:
    """The random-weight stand-in family (fixed, whatever the shipped default becomes), one
    worker with one thread, a small queue."""
    settings = {"workers": 1, "threads_per_worker": 1, "queue_capacity": 2, "slo_s": 120.0}
    settings.update(server)
    return parse_config({**RANDOM_FAMILY, "server": settings})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base_url: str, timeout_s: float) -> None:
    """Poll `/ready` until the server answers 200 (connection refused counts as not yet)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not become ready")


class ServerThread:
    def __init__(self, config: ArgusConfig) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(config)
        uv_config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(uv_config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, ready_timeout_s: float = 150.0) -> ServerThread:
        self.thread.start()
        wait_ready(self.base_url, ready_timeout_s)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


def sse_events(response: httpx.Response) -> Iterator[tuple[str, dict]]:
    """(event, data) pairs of a server-sent-events response, as they arrive."""
    event = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event is not None:
            yield event, json.loads(line.removeprefix("data: "))
            event = None
