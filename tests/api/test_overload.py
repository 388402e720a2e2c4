"""Overload at 10x capacity (issue #15): a real one-worker server (tiny random weights) that can
hold `QUEUE + MAX_BATCH` images at once gets ten times that many requests concurrently over
loopback. Every answer is 200, or 429/503 with `Retry-After` and a JSON error body (no other
5xx); the 200s arrive within the SLO; the API process's memory stays bounded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest
from api_helpers import api_config
from live_server import LiveServer

from argus.api import create_app

SLO_S = 3.0
QUEUE, MAX_BATCH = 2, 2
OFFERED = 10 * (QUEUE + MAX_BATCH)
RSS_GROWTH_BOUND = 200 * 1024**2
BODY = {"prompt": "a red circle", "size": "32x32"}


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    config = api_config(slo_s=SLO_S, queue_capacity=QUEUE, max_batch=MAX_BATCH)
    running = LiveServer(create_app(config)).wait_ready()
    yield running
    running.stop()


def post(url: str) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    with httpx.Client(base_url=url, timeout=SLO_S * 4) as http:
        response = http.post("/v1/images/generations", json=BODY)
    return response, time.monotonic() - start


def test_ten_times_capacity_sheds_cleanly_within_the_slo(server: LiveServer) -> None:
    warm, _ = post(server.url)  # loads the variant before the clock matters
    assert warm.status_code == 200, warm.text
    process = psutil.Process()  # uvicorn runs in this process (a thread)
    rss_before = process.memory_info().rss
    with ThreadPoolExecutor(OFFERED) as pool:
        results = list(pool.map(lambda _: post(server.url), range(OFFERED)))
    rss_growth = process.memory_info().rss - rss_before

    statuses = [response.status_code for response, _ in results]
    assert set(statuses) <= {200, 429, 503}, statuses
    served = [latency for (response, latency) in results if response.status_code == 200]
    shed = [response for response, _ in results if response.status_code != 200]
    assert served, "nothing was served"
    assert shed, f"{OFFERED} concurrent requests at capacity {QUEUE + MAX_BATCH}: none shed"
    for response in shed:
        assert float(response.headers["retry-after"]) > 0, response.headers
        assert response.headers["content-type"].startswith("application/json")
        error = response.json()["error"]
        assert error["message"] and error["code"], error
    assert max(served) <= SLO_S + 0.5, sorted(served)
    assert rss_growth < RSS_GROWTH_BOUND, f"RSS grew {rss_growth / 1024**2:.0f} MB"
    assert httpx.get(f"{server.url}/health").status_code == 200  # and it is still up
