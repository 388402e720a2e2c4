"""The HTTP edge (#15): text the tokenizer cannot take, strict types, the body cap and read
deadline, stalled uploads, framing, 405 `Allow`, the OpenAPI statuses and image URLs that ignore
the client's `Host`. Real sockets on loopback against an instant runtime (no workers)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from edge_helpers import (
    BODY_TIMEOUT_S,
    CAP,
    GOOD,
    PATH,
    Edge,
    connect,
    post_head,
    raw_exchange,
    read_until_closed,
    status_of,
)

from argus.api import edge as edge_module
from argus.api.connections import GuardedH11Protocol
from argus.cli.serve import uvicorn_options
from argus.config import ServerConfig


@pytest.fixture(scope="module")
def edge() -> Iterator[Edge]:
    running = Edge()
    yield running
    running.close()


def assert_error(response: httpx.Response, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"] == param, error
    return error


# --- 1. text the tokenizer (or UTF-8) cannot take ------------------------------------------

BAD_TEXT = ["x \ud800", "\udfff tail", "a\x00b", "esc \x1b[31m", "del \x7f", "nel \x85"]


@pytest.mark.parametrize("field", ["prompt", "negative_prompt", "user", "model"])
@pytest.mark.parametrize("text", BAD_TEXT, ids=[repr(t) for t in BAD_TEXT])
def test_unencodable_or_control_text_is_400_naming_the_field(
    edge: Edge, field: str, text: str
) -> None:
    before = len(edge.runtime.submitted)
    # json.dumps escapes the lone surrogate as \\ud800, as a client would send it
    response = edge.post_raw(json.dumps({**GOOD, field: text}))
    assert assert_error(response, 400, field)["code"] == "invalid_value"
    assert len(edge.runtime.submitted) == before, "bad text must not reach the runtime"


def test_utf8_encoded_surrogate_and_non_utf8_bodies_are_400(edge: Edge) -> None:
    for raw in (b'{"prompt": "x \xed\xa0\x80"}', b'{"prompt": "\xff"}',
                json.dumps(GOOD).encode("utf-16")):
        assert_error(edge.post_raw(raw), 400)


def test_tabs_newlines_and_any_script_are_fine(edge: Edge) -> None:
    prompt = "a red circle\tand\na blue square\r\n 赤い円 😀 e\u0301"
    response = edge.post_raw(json.dumps({**GOOD, "prompt": prompt}, ensure_ascii=False))
    assert response.status_code == 200, response.text
    assert edge.runtime.submitted[-1].prompt == prompt


# --- 5. strict types where OpenAI's API is strict ------------------------------------------

LOOSE = [
    ('"n": "2"', "n"), ('"n": true', "n"), ('"n": 2.0', "n"),
    ('"stream": "yes"', "stream"), ('"stream": 1', "stream"),
    ('"seed": "7"', "seed"), ('"num_inference_steps": "10"', "num_inference_steps"),
    ('"guidance_scale": "3"', "guidance_scale"), ('"guidance_scale": true', "guidance_scale"),
    ('"size": "３２x３２"', "size"), ('"size": " 32x32"', "size"), ('"size": "3_2x32"', "size"),
    ('"size": "32x32\\n"', "size"), ('"size": "+32x32"', "size"),
    ('"guidance_scale": NaN', None), ('"guidance_scale": Infinity', None),
]


@pytest.mark.parametrize(("field", "param"), LOOSE, ids=[f for f, _ in LOOSE])
def test_loose_coercion_is_400(edge: Edge, field: str, param: str | None) -> None:
    response = edge.post_raw('{"prompt": "a red circle", ' + field + "}")
    error = assert_error(response, 400, param)
    if param is None:
        assert error["message"].startswith("invalid JSON body")


def test_405_carries_allow(edge: Edge) -> None:
    response = edge.http.get(PATH)
    assert_error(response, 405)
    assert response.headers["allow"] == "POST"


def test_openapi_declares_the_statuses_sent_not_422(edge: Edge) -> None:
    spec = edge.http.get("/openapi.json").json()
    assert '"422"' not in json.dumps(spec)
    responses = spec["paths"][PATH]["post"]["responses"]
    assert set(responses) == {"200", "400", "408", "409", "413", "429", "503"}
    ref = responses["400"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/ErrorResponse")
    assert set(spec["paths"]["/v1/images/generations/{request_id}"]["delete"]["responses"]) == {
        "200", "404"}
    assert "503" in spec["paths"]["/ready"]["get"]["responses"]


def test_content_length_with_transfer_encoding_is_400(edge: Edge) -> None:
    body = json.dumps(GOOD).encode()
    head = post_head(PATH, f"Content-Length: {len(body)}\r\nTransfer-Encoding: chunked\r\n")
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    response, closed = raw_exchange(edge.url, head + chunked)
    assert status_of(response) == 400 and closed


# --- 2. body size cap ----------------------------------------------------------------------


def test_content_length_over_the_cap_is_413_before_the_body_is_sent(edge: Edge) -> None:
    head = post_head(PATH, f"Content-Length: {2 * CAP + 1}\r\n")
    started = time.monotonic()
    response, closed = raw_exchange(edge.url, head, timeout_s=3)  # no body byte sent
    assert status_of(response) == 413 and closed, response
    assert time.monotonic() - started < BODY_TIMEOUT_S  # answered at once, not timed out
    body = json.loads(response.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "body_too_large"


def test_chunked_body_over_the_cap_is_cut_off_with_413(edge: Edge) -> None:
    chunk = b" " * 65536
    with connect(edge.url) as sock:
        sock.sendall(post_head(PATH, "Transfer-Encoding: chunked\r\n"))
        sent = 0
        sock.settimeout(0.1)
        reply = b""
        while sent < 8 * CAP and not reply:  # stop sending once the server has answered
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
            if sent > CAP:
                with contextlib.suppress(TimeoutError):
                    reply = sock.recv(65536)
        response, closed = read_until_closed(sock, 3)
    assert status_of(reply + response) == 413 and closed
    assert sent <= 2 * CAP + 4 * len(chunk)  # cut off: up to one more cap is read and dropped


def test_body_at_the_cap_is_served(edge: Edge) -> None:
    body = json.dumps(GOOD).encode()
    padded = body[:-1] + b" " * (CAP - len(body)) + b"}"
    assert len(padded) == CAP
    assert edge.post_raw(padded).status_code == 200
    assert_error(edge.post_raw(padded + b" "), 413)


def test_large_bodies_are_parsed_off_the_event_loop(
    edge: Edge, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    parse = edge_module.parse_json

    def recording(body: bytes) -> object:
        threads.append(threading.current_thread().name)
        return parse(body)

    monkeypatch.setattr(edge_module, "parse_json", recording)
    small = json.dumps(GOOD).encode()
    large = small[:-1] + b" " * (edge_module.JSON_THREAD_BYTES + 1) + b"}"
    assert edge.post_raw(small).status_code == 200
    assert edge.post_raw(large).status_code == 200
    loop_thread, other = threads
    assert loop_thread != other, threads


# --- 4. read deadline: stalled uploads are closed ------------------------------------------


def health_latency_s(url: str) -> float:
    started = time.monotonic()
    assert httpx.get(f"{url}/health", timeout=5).status_code == 200
    return time.monotonic() - started


def test_stalled_partial_uploads_get_408_and_are_closed(edge: Edge) -> None:
    stalled = 200
    head = post_head(PATH, "Content-Length: 5000\r\n") + b'{"prompt": "a red'
    started = time.monotonic()
    sockets = []
    try:
        for _ in range(stalled):
            sock = connect(edge.url)
            sock.sendall(head)
            sockets.append(sock)
        latency = max(health_latency_s(edge.url) for _ in range(5))
        closed_at = []
        for sock in sockets:  # each stalled upload: 408 then EOF, within the deadline
            left = started + BODY_TIMEOUT_S + 5 - time.monotonic()
            response, closed = read_until_closed(sock, max(left, 0.1))
            assert status_of(response) == 408 and closed, response
            closed_at.append(time.monotonic() - started)
    finally:
        for sock in sockets:
            sock.close()
    print(f"{stalled} stalled uploads closed by {max(closed_at):.2f} s "
          f"(deadline {BODY_TIMEOUT_S} s); /health worst {latency * 1000:.0f} ms meanwhile")
    assert latency < 0.5
    assert health_latency_s(edge.url) < 0.5


def test_uvicorn_limits_come_from_the_config() -> None:
    server = ServerConfig(keep_alive_s=2.5, max_connections=50, backlog=64, max_header_bytes=8192)
    options = uvicorn_options(server)
    config = uvicorn.Config(lambda *_: None, log_config=None, **options)
    assert (config.timeout_keep_alive, config.limit_concurrency, config.backlog) == (2.5, 50, 64)
    assert config.h11_max_incomplete_event_size == 8192
    assert issubclass(config.http, GuardedH11Protocol)
    assert (config.http.header_timeout_s, config.http.max_connections) == (30.0, 100)
    assert (config.host, config.port) == ("127.0.0.1", 8000)
    defaults = ServerConfig()
    assert defaults.max_body_bytes == 1024**2 and defaults.body_timeout_s == 30.0
    assert defaults.public_url is None


# --- 6. image URLs never echo the client's Host header -------------------------------------


def test_image_urls_use_the_bound_address_not_the_host_header(edge: Edge) -> None:
    response = edge.http.post(
        PATH, json={**GOOD, "response_format": "url"}, headers={"Host": "evil.example"}
    )
    url = response.json()["data"][0]["url"]
    assert url.startswith(f"{edge.url}/v1/images/files/"), url
    assert edge.http.get(url.removeprefix(edge.url)).headers["content-type"] == "image/png"


def test_image_urls_use_the_public_url_when_set() -> None:
    public = Edge(public_url="https://images.example.com/argus/")
    try:
        response = public.http.post(
            PATH, json={**GOOD, "response_format": "url"}, headers={"Host": "evil.example"}
        )
        url = response.json()["data"][0]["url"]
        assert url.startswith("https://images.example.com/argus/v1/images/files/"), url
    finally:
        public.close()
