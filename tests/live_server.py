"""Real HTTP servers for the tests: an ASGI app on uvicorn in a daemon thread, or the port and
readiness checks for a server started as a process.

`LiveServer` binds its socket before the thread starts, so its URL is known at once and several
servers can start in parallel without racing for a free port.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import uvicorn


def free_port() -> int:
    """A port free now, for a server started as a process (`argus serve --port`)."""
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


class LiveServer:
    """`app` served on 127.0.0.1 from construction until `stop()`."""

    def __init__(self, app, log_level: str = "warning") -> None:  # noqa: ANN001 - ASGI app
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()

    def wait_started(self, timeout_s: float = 60.0) -> str:
        """Until uvicorn accepts connections (the app may still be booting); returns the URL."""
        deadline = time.monotonic() + timeout_s
        while not self._server.started and self._thread.is_alive():
            assert time.monotonic() < deadline, "server did not start in time"
            time.sleep(0.05)
        assert self._server.started, "server failed to start"
        return self.url

    def wait_ready(self, timeout_s: float = 150.0) -> LiveServer:
        """Until the app's `/ready` answers 200 (an Argus server with its workers up)."""
        wait_ready(self.url, timeout_s)
        return self

    def stop(self, timeout_s: float = 60.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=timeout_s)
        self._socket.close()


@contextlib.contextmanager
def serve_in_thread(app) -> Iterator[str]:  # noqa: ANN001 - ASGI app
    """Serve `app` for the duration; yields its base URL."""
    server = LiveServer(app)
    try:
        yield server.wait_started()
    finally:
        server.stop()
