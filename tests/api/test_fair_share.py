"""Fair sharing under overload (issue #15): with API keys for two tenants on a real one-worker
server, tenant A floods at many times its capacity (its own process, ignoring Retry-After) while
tenant B sends one request every half second. B's requests are still admitted and answered within
the SLO: A's newest queued requests give way to them (429 `fair_share_exceeded`)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest
from api_helpers import api_config
from live_server import LiveServer
from tenancy_helpers import KEY_A, KEY_B, KEYS

from argus.api import create_app
from argus.api.fairness import FairShare
from argus.bench.fairness import flood_command, paced

SLO_S = 3.0
FLOOD_CLIENTS = 24
"""Requests A keeps in flight: 4x what the server holds (queue 4 + batch 2)."""
FLOOD_S, B_PERIOD_S = 8.0, 0.5


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    config = api_config(api_keys=KEYS, slo_s=SLO_S, queue_capacity=4, max_batch=2)
    running = LiveServer(create_app(config)).wait_ready()
    yield running
    running.stop()


def test_a_flooding_tenant_cannot_starve_another(server: LiveServer) -> None:
    assert paced(server.url, KEY_B, B_PERIOD_S, B_PERIOD_S, SLO_S).in_slo == 1  # warm
    flood = subprocess.Popen(flood_command(server.url, KEY_A, FLOOD_CLIENTS, FLOOD_S),
                             stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # A has filled the queue
        b = paced(server.url, KEY_B, B_PERIOD_S, FLOOD_S - 2.0, SLO_S)
        a = json.loads(flood.communicate(timeout=FLOOD_S + 60)[0])
    finally:
        flood.kill()
    summary = b.summary()
    # Without fair sharing B got 2 of 12 admitted here (10 x 429 queue_full). Lateness under a
    # flood on a shared 2-core machine is test_overload's concern, so not every 200 is in time.
    assert b.statuses[200] >= 0.8 * b.sent, (summary, a)
    assert summary["slo_attainment"] >= 0.7, (summary, a)
    assert set(a["statuses"]) <= {"200", "429", "503"}, a
    assert a["codes"].get("fair_share_exceeded", 0) >= 1, a  # A was displaced, not idle
    assert a["retry_after_missing"] == 0 and b.retry_after_missing == 0


def test_the_share_is_an_equal_split_and_work_conserving() -> None:
    class Handle:
        def __init__(self, request_id: str) -> None:
            self.request_id = request_id

    fair = FairShare(slo_s=3.0)
    assert fair.victim("b", 1) is None  # alone: nobody to displace
    for i in range(6):
        fair.admitted("a", Handle(f"a{i}"), 1)  # type: ignore[arg-type]
    assert fair.victim("a", 1) is None  # a tenant alone may use everything
    assert fair.fair_share("b", 1) == 3.5 and fair.victim("b", 1) == "a"
    assert fair.victim("b", 4) == "a"  # b would hold 4 of 10: within its share of 5
    fair.admitted("b", Handle("b0"), 3)  # type: ignore[arg-type]
    assert fair.victim("b", 2) == "a"  # 5 of 11 images
    assert fair.victim("b", 4) is None  # 7 of 13: over b's own share of 6.5
    fair.ended("a", "a0")
    assert fair.images("a") == 5 and fair.oldest_ends_in_s("a") >= 1.0
