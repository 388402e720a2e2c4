"""Remote tier over real HTTP: retries, timeouts, circuit breaker, cost, and edge fallback."""

from __future__ import annotations

import time

import pytest

from argus.config import RoutingConfig
from argus.routing.remote import CircuitBreaker, CloudClient, CloudRejected, CloudUnavailable
from argus.routing.router import BudgetedRouter, FixedPolicy
from argus.routing.service import EdgeCloudRouter, budget_override

BODY = {"prompt": "a large red circle", "n": 2, "size": "32x32", "seed": 7}


def _client(url: str, **kw) -> CloudClient:
    kw.setdefault("timeout_s", 0.5)
    kw.setdefault("retries", 1)
    kw.setdefault("backoff_s", 0.01)
    return CloudClient(url, model="big", cost_per_call=0.04, **kw)


async def _edge() -> dict:
    return {"created": 0, "data": [{"b64_json": "edge", "argus": {"level": "s-50"}}]}


async def test_successful_call_is_accounted_per_tenant(local_cloud) -> None:
    url, control = local_cloud
    client = _client(url)
    response = await client.generate(BODY, tenant="acme")
    assert len(response["data"]) == 2
    # Only OpenAI fields go out, with the cloud's model name and inline images.
    assert control.received[-1] == {"prompt": BODY["prompt"], "n": 2, "size": "32x32",
                                    "response_format": "b64_json", "model": "big"}
    await client.generate(BODY, tenant="acme")
    await client.generate(BODY)
    usage = client.usage.snapshot()
    assert (usage["calls"], usage["succeeded"], usage["failed"]) == (3, 3, 0)
    assert usage["cost"] == pytest.approx(0.12)
    assert usage["cost_by_tenant"] == pytest.approx({"acme": 0.08, "default": 0.04})
    await client.aclose()


async def test_failures_are_retried_then_reported(local_cloud) -> None:
    url, control = local_cloud
    control.mode = "fail"
    client = _client(url, retries=2)
    with pytest.raises(CloudUnavailable, match="503"):
        await client.generate(BODY)
    assert len(control.received) == 3 and client.usage.attempts == 3
    assert client.usage.cost == 0
    control.mode = "reject"
    with pytest.raises(CloudRejected, match="400"):
        await client.generate(BODY)
    assert len(control.received) == 4  # a 4xx is not retried
    await client.aclose()


async def test_slow_cloud_times_out(local_cloud) -> None:
    url, control = local_cloud
    control.mode = "slow"
    client = _client(url, timeout_s=0.2, retries=0)
    start = time.monotonic()
    with pytest.raises(CloudUnavailable, match="timed out"):
        await client.generate(BODY)
    assert time.monotonic() - start < 1.5
    await client.aclose()


async def test_unreachable_cloud() -> None:
    client = _client("http://127.0.0.1:9/v1", retries=1)
    with pytest.raises(CloudUnavailable, match="unreachable"):
        await client.generate(BODY)
    await client.aclose()


def test_breaker_opens_then_half_opens() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=2, reset_s=10.0, clock=lambda: now[0])
    breaker.record_failure()
    assert breaker.allow() and breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 10.0
    assert breaker.allow() and not breaker.allow()  # exactly one trial when half-open
    breaker.record_failure()
    assert breaker.state == "open" and breaker.opened_count == 2
    now[0] = 25.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()


async def test_router_falls_back_to_edge_when_cloud_is_down_or_slow(local_cloud) -> None:
    url, control = local_cloud
    breaker = CircuitBreaker(failures=2, reset_s=60.0)
    service = EdgeCloudRouter(BudgetedRouter(FixedPolicy("cloud"), 1.0, 10),
                              _client(url, breaker=breaker, timeout_s=0.3, retries=0))
    ok = await service.serve(dict(BODY), _edge)
    meta = ok["data"][0]["argus"]
    assert meta["tier"] == "cloud" and meta["remote"] == {"level": "big-50"}
    assert set(meta["route"]) == {"prs", "alpha", "reason"}

    control.mode = "slow"
    slow = await service.serve(dict(BODY), _edge)
    meta = slow["data"][0]["argus"]
    assert meta["tier"] == "edge" and meta["level"] == "s-50"
    assert "cloud failed" in meta["route"]["reason"] and "timed out" in meta["route"]["reason"]

    control.mode = "fail"
    await service.serve(dict(BODY), _edge)
    calls = len(control.received)
    down = await service.serve(dict(BODY), _edge)  # breaker open: the cloud is not even called
    assert len(control.received) == calls
    assert down["data"][0]["argus"]["tier"] == "edge"
    assert "breaker open" in down["data"][0]["argus"]["route"]["reason"]
    assert service.snapshot()["breaker"] == "open"
    counts = {(s.labels["tier"], s.labels["cause"]): s.value
              for metric in service.metrics.decisions.collect() for s in metric.samples
              if s.name.endswith("_total")}
    assert counts == {("cloud", "policy"): 1, ("edge", "cloud-failed"): 3}
    await service.aclose()


async def test_pinned_and_streaming_requests_stay_local(local_cloud) -> None:
    url, control = local_cloud
    service = EdgeCloudRouter(BudgetedRouter(FixedPolicy("cloud"), 1.0, 10), _client(url))
    for extra in ({"model": "shapes-s"}, {"num_inference_steps": 5}, {"stream": True}):
        out = await service.serve({**BODY, **extra}, _edge)
        assert out["data"][0]["argus"]["tier"] == "edge"
    assert control.received == []
    await service.aclose()


def test_from_config(tmp_path) -> None:
    assert EdgeCloudRouter.from_config(RoutingConfig()) is None
    missing = RoutingConfig(enabled=True, cloud_url="http://x/v1",
                            predictor=str(tmp_path / "none.json"))
    with pytest.raises(ValueError, match="no PRS predictor"):
        EdgeCloudRouter.from_config(missing)
    with pytest.raises(ValueError, match="cloud_url"):
        EdgeCloudRouter.from_config(RoutingConfig(enabled=True), policy=FixedPolicy("edge"))


async def test_cloud_images_become_urls_and_budget_header_is_checked(local_cloud) -> None:
    url, _ = local_cloud
    service = EdgeCloudRouter(BudgetedRouter(FixedPolicy("cloud"), 0.0, 10), _client(url))
    body = {**BODY, "response_format": "url"}
    edge_only, decision = await service.cloud_first(body)  # tenant cap 0: nothing goes out
    assert edge_only is None and decision.tier == "edge"
    stored: list[bytes] = []

    def to_url(png: bytes) -> str:
        stored.append(png)
        return f"http://edge/files/{len(stored)}.png"

    response, decision = await service.cloud_first(body, budget=1.0, to_url=to_url)
    assert decision.tier == "cloud" and response is not None
    assert [item["url"] for item in response["data"]] == ["http://edge/files/1.png",
                                                         "http://edge/files/2.png"]
    assert stored[0].startswith(b"\x89PNG") and "b64_json" not in response["data"][0]
    assert budget_override(None) is None and budget_override("0.25") == 0.25
    for bad in ("abc", "1.5", "-0.1"):
        with pytest.raises(ValueError, match="x-argus-cloud-budget"):
            budget_override(bad)
    await service.aclose()
