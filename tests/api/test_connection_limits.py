"""Connection limits of `argus serve`'s uvicorn (issue #15, defect 4), on a real server with the
options `argus serve` uses: a connection that sends nothing, or dribbles its headers, is closed
at the header deadline; past the hard cap new connections are closed at once, so idle sockets
cannot exhaust the file descriptors; the server keeps answering throughout."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from api_helpers import api_config
from edge_helpers import InstantRuntime

from argus.api import create_app
from argus.cli.serve import uvicorn_options

HEADER_TIMEOUT_S = 1.0
MAX_CONNECTIONS = 8
"""uvicorn answers 503 past this; connections past twice this are closed at once."""


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    config = api_config(body_timeout_s=HEADER_TIMEOUT_S, max_connections=MAX_CONNECTIONS)
    options = {k: v for k, v in uvicorn_options(config.server).items() if k not in ("host", "port")}
    app = create_app(config, runtime=InstantRuntime())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)


def open_socket(url: str) -> socket.socket:
    host, port = httpx.URL(url).host, httpx.URL(url).port
    return socket.create_connection((host, port), timeout=HEADER_TIMEOUT_S * 5)


def closed_after_s(sock: socket.socket, dribble: bytes = b"") -> float:
    """Seconds until the server closes `sock`, sending `dribble` a byte every 0.2 s meanwhile."""
    start = time.monotonic()
    sock.settimeout(0.2)
    for i in range(100):
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - start
        except TimeoutError:
            if i < len(dribble):
                sock.sendall(dribble[i:i + 1])
        except ConnectionResetError:
            return time.monotonic() - start
    raise AssertionError("the server never closed the connection")


@pytest.mark.parametrize("dribble", [b"", b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaa"])
def test_a_connection_without_complete_headers_is_closed_at_the_deadline(
    url: str, dribble: bytes
) -> None:
    with open_socket(url) as sock:
        took = closed_after_s(sock, dribble)
    assert HEADER_TIMEOUT_S - 0.1 <= took <= HEADER_TIMEOUT_S + 1.0, took
    assert httpx.get(f"{url}/health").status_code == 200


def test_keep_alive_connection_gets_a_fresh_deadline_per_request(url: str) -> None:
    with httpx.Client(base_url=url) as http:
        for _ in range(3):  # spread over more than one deadline on one connection
            assert http.get("/health").status_code == 200
            time.sleep(HEADER_TIMEOUT_S * 0.6)


def test_idle_connections_past_the_hard_cap_are_closed_at_once(url: str) -> None:
    socks = [open_socket(url) for _ in range(4 * MAX_CONNECTIONS)]
    try:
        time.sleep(0.3)
        dropped = 0
        for sock in socks:
            sock.settimeout(0.05)
            try:
                dropped += sock.recv(1) == b""
            except TimeoutError:
                pass
            except ConnectionResetError:
                dropped += 1
        assert dropped >= 2 * MAX_CONNECTIONS, dropped  # at most 2 x MAX_CONNECTIONS kept
    finally:
        for sock in socks:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(f"{url}/health").status_code == 200
