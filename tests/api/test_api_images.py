"""POST /v1/images/generations over real HTTP: the official client, JSON, SSE, cancellation."""

from __future__ import annotations

import base64
import io
import threading
import time

import httpx
import pytest
from api_helpers import sse_events
from live_server import LiveServer
from openai import OpenAI
from PIL import Image

# 128x128 on the default model takes seconds: long enough to cancel mid-run.
SLOW = {"prompt": "a slow red circle", "model": "large-20", "size": "128x128"}


def png_size(b64: str) -> tuple[int, int]:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    assert image.format == "PNG"
    return image.size


def worker_idle(client: httpx.Client, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        workers = client.get("/v1/cluster").json()["runtime"]["workers"].values()
        if not any(w["busy"] for w in workers):
            return True
        time.sleep(0.05)
    return False


def test_openai_client_gets_png_of_requested_size(server: LiveServer) -> None:
    openai = OpenAI(base_url=f"{server.url}/v1", api_key="x")
    for size, expected in (("32x32", (32, 32)), ("64x48", (64, 48))):
        result = openai.images.generate(
            prompt="a red circle", size=size, response_format="b64_json"
        )
        assert len(result.data) == 1
        assert png_size(result.data[0].b64_json) == expected


def test_response_carries_argus_object(client: httpx.Client) -> None:
    body = client.post(
        "/v1/images/generations", json={"prompt": "two blue squares", "n": 2, "seed": 9}
    ).json()
    assert isinstance(body["created"], int) and len(body["data"]) == 2
    first, second = (item["argus"] for item in body["data"])
    assert first["request_id"] == second["request_id"] and first["seed"] == 9
    assert second["seed"] == 10 and body["data"][0]["b64_json"] != body["data"][1]["b64_json"]
    assert first["variant"] == "tiny-large" and first["level"].startswith("large-")
    assert first["cache"] == {"hit": False, "k": 0, "similarity": None, "entry_id": None}
    assert 0 < first["predicted_quality"] <= 1
    timings = first["timings_ms"]
    assert set(timings) == {"queue", "run", "total", "server"}
    assert timings["server"] >= timings["total"] >= timings["run"] > 0  # server: from arrival


def test_same_seed_same_image_and_pins_are_honoured(client: httpx.Client) -> None:
    ask = {"prompt": "a green triangle", "seed": 3, "model": "large-5"}
    a = client.post("/v1/images/generations", json=ask).json()["data"][0]
    b = client.post("/v1/images/generations", json=ask).json()["data"][0]
    assert a["b64_json"] == b["b64_json"]
    high = client.post(
        "/v1/images/generations", json={"prompt": "a green triangle", "quality": "high"}
    ).json()["data"][0]["argus"]
    assert high["level"] == "large-20" and high["steps"] == 20  # no approximation
    pinned = client.post(
        "/v1/images/generations",
        json={"prompt": "a green triangle", "model": "tiny-large", "num_inference_steps": 5},
    ).json()["data"][0]["argus"]
    assert (pinned["variant"], pinned["steps"], pinned["level"]) == ("tiny-large", 5, "large-5")


def test_url_response_format_serves_the_png(client: httpx.Client) -> None:
    body = client.post(
        "/v1/images/generations",
        json={"prompt": "a red circle", "response_format": "url", "model": "large-5"},
    ).json()
    url = body["data"][0]["url"]
    image = client.get(url)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(image.content)).size == (32, 32)


def test_stream_sends_progress_per_step_then_completed(client: httpx.Client) -> None:
    ask = {"prompt": "a red circle", "model": "large-10", "stream": True, "argus_events": True}
    with client.stream("POST", "/v1/images/generations", json=ask) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(response))
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "argus.accepted" and kinds[-1] == "image_generation.completed"
    steps = [(d["step"], d["total_steps"]) for kind, d in events if kind == "argus.progress"]
    assert steps == [(i, 10) for i in range(1, 11)]
    completed = events[-1][1]
    assert png_size(completed["b64_json"]) == (32, 32)
    assert completed["argus"]["request_id"] == events[0][1]["request_id"]


def test_delete_cancels_a_running_generation(client: httpx.Client) -> None:
    ask = {**SLOW, "stream": True, "argus_events": True}
    with client.stream("POST", "/v1/images/generations", json=ask) as stream:
        request_id = stream.headers["x-argus-request-id"]
        events = sse_events(stream)
        for kind, _ in events:
            if kind == "argus.progress":
                break
        started = time.monotonic()
        cancelled = client.delete(f"/v1/images/generations/{request_id}")
        assert cancelled.status_code == 200 and cancelled.json()["cancelled"] is True
        rest = list(events)
    assert rest[-1][0] == "error" and rest[-1][1]["error"]["code"] == "cancelled"
    progress_after = [d["step"] for kind, d in rest if kind == "argus.progress"]
    assert len(progress_after) <= 2  # stops at the next step boundary
    assert worker_idle(client, 5.0) and time.monotonic() - started < 5.0
    again = client.delete(f"/v1/images/generations/{request_id}")
    assert again.status_code == 404 and again.json()["error"]["param"] == "request_id"


def test_client_disconnect_cancels_stream_and_frees_worker(client: httpx.Client) -> None:
    ask = {**SLOW, "stream": True, "argus_events": True}
    with client.stream("POST", "/v1/images/generations", json=ask) as stream:
        for kind, _ in sse_events(stream):
            if kind == "argus.progress":
                break
    assert worker_idle(client, 5.0)
    assert 'argus_requests_total{level="large-20",status="cancelled"}' in client.get(
        "/metrics"
    ).text


def test_client_disconnect_cancels_plain_request(
    server: LiveServer, client: httpx.Client
) -> None:
    def impatient() -> None:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{server.url}/v1/images/generations", json=SLOW, timeout=1.5)

    thread = threading.Thread(target=impatient)
    thread.start()
    thread.join()
    assert worker_idle(client, 5.0)


def test_full_queue_answers_429_with_retry_after(client: httpx.Client) -> None:
    """One running + queue_capacity (2) queued; the next is refused, not queued."""
    streams, ids = [], []
    try:
        for _ in range(3):
            stream = client.stream("POST", "/v1/images/generations", json={**SLOW, "stream": True})
            response = stream.__enter__()
            streams.append(stream)
            ids.append(response.headers["x-argus-request-id"])
        refused = client.post("/v1/images/generations", json=SLOW)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        error = refused.json()["error"]
        assert error["type"] == "rate_limit_error" and error["code"] == "queue_full"
    finally:
        for request_id in ids:
            client.delete(f"/v1/images/generations/{request_id}")
        for stream in streams:
            stream.__exit__(None, None, None)
    assert worker_idle(client, 5.0)


def test_any_step_count_and_any_listed_model_are_served(client: httpx.Client) -> None:
    def generate(**extra: object) -> dict:
        response = client.post("/v1/images/generations",
                               json={"prompt": "a red circle", "seed": 3, **extra})
        assert response.status_code == 200, response.text
        return response.json()["data"][0]["argus"]

    # An asked-for count no level has is a reference Argus may approximate (never more steps).
    assert generate(num_inference_steps=7)["steps"] <= 7
    # With `quality: high` it runs exactly, on the variant's home level.
    exact = generate(num_inference_steps=7, quality="high")
    assert exact["steps"] == 7 and exact["variant"] == "tiny-large"
    # A listed model no worker holds: the one worker is lent to it, then returns.
    small = generate(model="tiny-small", num_inference_steps=5)
    assert small["variant"] == "tiny-small" and small["steps"] == 5
    assert generate()["variant"] == "tiny-large"
