"""The audit on a real server (shipped shapes family, real worker, real HTTP): a predictor made
wrong on purpose (+0.3 on l-5) raises the drift alarm, and recalibration brings the
measured-vs-predicted error back under the threshold."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from live_server import LiveServer  # noqa: E402

from argus.api import create_app  # noqa: E402
from argus.config import ArgusConfig, parse_config  # noqa: E402
from argus.defaults import FAMILY_FILE, load_config  # noqa: E402

pytestmark = pytest.mark.skipif(not FAMILY_FILE.exists(), reason="needs the shipped shapes family")
THRESHOLD = 0.1
ALARM_AFTER_S = 2.0


def miscalibrated_config(**audit: object) -> ArgusConfig:
    """The default server on one worker, every image audited, l-5 predicted 0.3 too good."""
    data = load_config(None).model_dump()
    data["server"].update(workers=1, threads_per_worker=1)
    data["cache"]["enabled"] = False
    # Requests must keep landing on l-5 for its window to refill under each new offset; an
    # idle worker would otherwise lift the lone request to l-20 once l-5 is predicted lower.
    data["control"]["upgrade_when_idle"] = False
    data["audit"].update(share=1.0, budget_per_min=1000, min_samples=4, window=8,
                         drift_threshold=THRESHOLD, alarm_after_s=ALARM_AFTER_S,
                         offsets={"l-5": 0.3}, **audit)
    return parse_config(data)


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    server = LiveServer(create_app(miscalibrated_config())).wait_ready()
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http
    server.stop()


def _audit(client: httpx.Client) -> dict:
    return client.get("/v1/cluster").json()["audit"]


def _generate(client: httpx.Client, seed: int) -> str:
    response = client.post("/v1/images/generations",
                           json={"prompt": "a red circle", "seed": seed})
    assert response.status_code == 200, response.text
    return response.json()["data"][0]["argus"]["level"]


def _wait_audited(client: httpx.Client, total: int, timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        audit = _audit(client)
        if sum(lv["total"] for lv in audit["levels"].values()) >= total:
            return audit
        time.sleep(0.1)
    raise AssertionError(f"fewer than {total} samples audited in {timeout_s} s: {audit}")


def test_miscalibration_alarms_and_recalibration_brings_the_error_back(
    client: httpx.Client,
) -> None:
    """The alarm is in /ready's body (status 200) within the window; offsets step down from
    +0.3 and the window served under the last one is within the threshold; the alarm clears."""
    alarmed_at = None
    start = time.monotonic()
    served = []
    for seed in range(40):
        served.append(_generate(client, seed))
        audit = _wait_audited(client, len(served))
        ready = client.get("/ready")
        assert ready.status_code == 200
        if alarmed_at is None and "l-5" in ready.json()["quality_drift"]:
            alarmed_at = time.monotonic() - start
        level = audit["levels"].get("l-5", {})
        if audit["offset_changes"] and level.get("count", 0) >= 4 and not level["alarm"]:
            break
    assert alarmed_at is not None, "the drift alarm never fired"
    level = audit["levels"]["l-5"]
    changes = [c for c in audit["offset_changes"] if c["level"] == "l-5"]
    print(f"alarm after {alarmed_at:.1f} s, {len(served)} requests, error "
          f"{audit['alarm_events'][0]['error']:+.3f} -> {level['error']:+.3f}, offsets "
          f"{[(c['from'], c['to']) for c in changes]}")
    assert "l-5" in served, f"the miscalibrated level was never chosen: {served}"
    assert changes[0]["from"] == 0.3 and changes[0]["to"] < 0.3
    assert all(abs(c["to"] - c["from"]) <= 0.1 + 1e-9 for c in changes)  # max_step
    assert audit["alarm_events"][0]["error"] < -THRESHOLD  # error before recalibration
    assert abs(level["error"]) <= THRESHOLD and not level["alarm"]
    assert [e["alarm"] for e in audit["alarm_events"]][:2] == ["fired", "cleared"]
    metrics = client.get("/metrics").text
    assert 'argus_quality_audit_drift_alarm{level="l-5"} 0.0' in metrics
    assert f'argus_quality_audit_offset{{level="l-5"}} {level["offset"]}' in metrics


def test_pinned_requests_are_not_audited(client: httpx.Client) -> None:
    """`quality: high` runs exactly the reference: nothing to compare, no sample."""
    before = sum(lv["total"] for lv in _audit(client)["levels"].values())
    response = client.post("/v1/images/generations",
                           json={"prompt": "a blue square", "seed": 3, "quality": "high"})
    assert response.status_code == 200
    time.sleep(0.5)
    assert sum(lv["total"] for lv in _audit(client)["levels"].values()) == before
