"""One real server (1 worker, 1 thread) shared by the API tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from api_helpers import ServerThread, api_config


@pytest.fixture(scope="session")
def server() -> Iterator[ServerThread]:
    running = ServerThread(api_config()).start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def client(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        yield http
