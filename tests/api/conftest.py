"""One real server (1 worker, 1 thread) shared by the API tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from api_helpers import api_config
from live_server import LiveServer

from argus.api import create_app


@pytest.fixture(scope="session")
def server() -> Iterator[LiveServer]:
    """One real Argus server (uvicorn in a thread, real worker processes)."""
    running = LiveServer(create_app(api_config())).wait_ready()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http
