"""Live routing: an Argus server (edge) routes requests to a second Argus server (cloud) under a
budget, says so in each image's `argus` metadata, and degrades to its own workers when the cloud
goes down. Both are real servers (FastAPI + worker processes) on local ports."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from live_server import LiveServer

from argus.config import ArgusConfig, parse_config
from argus.control.profile import Profile
from argus.routing.evaluate import tier_data
from argus.routing.predictor import PRSPredictor

# One tiny random-weight level keeps both servers fast; the routing is what is under test.
FAMILY = {
    "variants": [{"name": "tiny-small", "source": "random:pixel-small", "default_steps": 3,
                  "resolution": 32, "guidance_scale": 1.0}],
    "levels": [{"name": "small-3", "variant": "tiny-small", "steps": 3}],
}
HARD = "a small red triangle , a large blue triangle and a small green triangle"
EASY = "a large yellow square"


def _config(tmp: Path, name: str, **routing) -> ArgusConfig:
    return parse_config({
        **FAMILY,
        "server": {"workers": 1, "threads_per_worker": 1, "slo_s": 120.0},
        "cache": {"enabled": False, "dir": str(tmp / f"cache-{name}")},
        "routing": routing,
    })


def _post(client: httpx.Client, url: str, prompt: str, **headers: str) -> httpx.Response:
    body = {"prompt": prompt, "size": "32x32", "seed": 1}
    return client.post(f"{url}/v1/images/generations", json=body, headers=headers, timeout=120)


@pytest.mark.timeout(240)
def test_edge_server_routes_to_a_cloud_argus_and_survives_its_loss(
    tmp_path: Path, two_tier_profile: Profile
) -> None:
    from argus.api import create_app

    data = tier_data(two_tier_profile)
    predictor = PRSPredictor(data.metric_names).fit(data.prompts, data.q_edge, data.q_cloud)
    predictor.save(tmp_path / "predictor.json")
    assert predictor.predict_prs(HARD) < 0.5 < predictor.predict_prs(EASY)

    cloud = LiveServer(create_app(_config(tmp_path, "cloud")))
    edge = LiveServer(create_app(_config(
        tmp_path, "edge", enabled=True, cloud_url=f"{cloud.url}/v1", budget=1.0,
        predictor=str(tmp_path / "predictor.json"), timeout_s=60.0, retries=0,
        breaker_failures=1, breaker_reset_s=600.0, cost_per_call=0.02,
    )))
    try:
        edge_url = edge.wait_started()
        cloud.wait_started()
        with httpx.Client() as client:
            _route_then_lose_the_cloud(client, edge_url, cloud)
    finally:
        edge.stop()
        cloud.stop()


def _route_then_lose_the_cloud(client: httpx.Client, edge_url: str, cloud: LiveServer) -> None:
    served = _post(client, edge_url, HARD)
    assert served.status_code == 200, served.text
    meta = served.json()["data"][0]["argus"]
    assert meta["tier"] == "cloud"
    assert meta["route"]["prs"] < meta["route"]["alpha"] == 0.5
    assert meta["remote"]["level"] == "small-3"  # the cloud Argus's own metadata

    local = _post(client, edge_url, EASY)
    meta = local.json()["data"][0]["argus"]
    assert local.status_code == 200 and meta["tier"] == "edge"
    assert meta["level"] == "small-3" and meta["route"]["prs"] > 0.5

    capped = _post(client, edge_url, HARD, **{"X-Argus-Cloud-Budget": "0"})
    assert capped.json()["data"][0]["argus"]["tier"] == "edge"
    bad = _post(client, edge_url, HARD, **{"X-Argus-Cloud-Budget": "2"})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "x-argus-cloud-budget"

    usage = client.get(f"{edge_url}/v1/routing").json()
    assert usage["enabled"] and usage["usage"]["succeeded"] == 1
    assert usage["usage"]["cost"] == pytest.approx(0.02)
    metrics = client.get(f"{edge_url}/metrics").text
    assert 'argus_route_decisions_total{cause="policy",tier="cloud"} 1.0' in metrics or (
        'argus_route_decisions_total{tier="cloud",cause="policy"} 1.0' in metrics)
    assert "argus_cloud_cost_total 0.02" in metrics

    cloud.stop()  # the cloud goes down: the edge degrades to its own workers, no error
    down = _post(client, edge_url, HARD)
    meta = down.json()["data"][0]["argus"]
    assert down.status_code == 200 and meta["tier"] == "edge"
    assert meta["route"]["reason"].startswith("cloud failed")
    again = _post(client, edge_url, HARD)
    assert "breaker open" in again.json()["data"][0]["argus"]["route"]["reason"]
    assert client.get(f"{edge_url}/v1/routing").json()["breaker"] == "open"
