"""API keys and tenants over real HTTP (a workerless runtime): no key -> 401 but on the probes,
the tenant comes from the key, another tenant's requests and images are not found, /v1/cluster
hides them but to an admin key, per-tenant rate limits and queue quotas -> 429 + Retry-After,
and /ready says why it is not ready."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from tenancy_helpers import HOLD, KEY_A, KEY_ADMIN, KEY_B, TenantServer, bearer

GOOD = {"prompt": "a red circle", "size": "32x32"}
PATH = "/v1/images/generations"


@pytest.fixture(scope="module")
def server() -> Iterator[TenantServer]:
    running = TenantServer()
    yield running
    running.close()


class Held:
    """A request of `key` that runs until cancelled, POSTed from a thread."""

    def __init__(self, server: TenantServer, key: str) -> None:
        self.response: httpx.Response | None = None
        before = set(server.runtime.held)

        def post() -> None:
            with server.client(key) as http:
                self.response = http.post(PATH, json={**GOOD, "prompt": HOLD})

        self.thread = threading.Thread(target=post, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not set(server.runtime.held) - before:
            assert time.monotonic() < deadline, "the held request did not arrive"
            time.sleep(0.01)
        (self.request_id,) = set(server.runtime.held) - before

    def result(self) -> httpx.Response:
        self.thread.join(10)
        assert self.response is not None
        return self.response


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/models"), ("POST", PATH), ("DELETE", f"{PATH}/img-0"), ("GET", "/v1/cluster"),
    ("GET", "/v1/images/files/abc.png"), ("GET", "/v1/routing"), ("GET", "/openapi.json"),
])
def test_without_a_valid_key_every_route_is_401(
    server: TenantServer, method: str, path: str
) -> None:
    for headers in ({}, bearer("sk-wrong"), {"Authorization": KEY_A}):  # no "Bearer": invalid
        response = httpx.request(method, server.url + path, headers=headers, json=GOOD)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        error = response.json()["error"]
        assert error["code"] == "invalid_api_key" and "Authorization: Bearer" in error["message"]


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics"])
def test_probes_need_no_key(server: TenantServer, path: str) -> None:
    assert httpx.get(server.url + path).status_code == 200


def test_the_openai_client_key_is_the_tenant_and_user_only_a_label(server: TenantServer) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY_A, max_retries=0)
    image = client.images.generate(prompt="a red circle", size="32x32", user="tenant-b")
    assert image.data[0].b64_json
    assert server.runtime.submitted[-1].tenant == "tenant-a"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-wrong", max_retries=0) \
            .images.generate(prompt="a red circle", size="32x32")


def test_another_tenants_request_cannot_be_seen_or_cancelled(server: TenantServer) -> None:
    held = Held(server, KEY_A)
    with server.client(KEY_B) as b, server.client(KEY_A) as a, server.client(KEY_ADMIN) as ops:
        refused = b.delete(f"{PATH}/{held.request_id}")
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
        assert held.request_id not in b.get("/v1/cluster").text
        assert b.get("/v1/cluster").json()["runtime"]["workers"]["0"]["running"] == []
        assert held.request_id in a.get("/v1/cluster").json()["runtime"]["workers"]["0"]["running"]
        assert held.request_id in ops.get("/v1/cluster").text
        assert a.delete(f"{PATH}/{held.request_id}").json()["cancelled"] is True
    assert held.result().status_code == 409


def test_an_admin_key_may_cancel_any_request(server: TenantServer) -> None:
    held = Held(server, KEY_B)
    with server.client(KEY_ADMIN) as ops:
        assert ops.delete(f"{PATH}/{held.request_id}").status_code == 200
    assert held.result().status_code == 409


def test_image_urls_belong_to_their_tenant(server: TenantServer) -> None:
    with server.client(KEY_A) as a, server.client(KEY_B) as b, server.client(KEY_ADMIN) as ops:
        url = a.post(PATH, json={**GOOD, "response_format": "url"}).json()["data"][0]["url"]
        path = httpx.URL(url).path
        mine = a.get(path)
        assert mine.status_code == 200 and mine.headers["content-type"] == "image/png"
        for other in (b, ops):
            assert other.get(path).status_code == 404
        assert httpx.get(server.url + path).status_code == 401


def test_ready_gives_the_runtimes_reason(server: TenantServer) -> None:
    server.runtime.reason = "no worker can serve: worker 0 is stopped (its process is suspended)"
    server.runtime.is_ready = False
    try:
        response = httpx.get(server.url + "/ready")
    finally:
        server.runtime.is_ready = True
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.json()["error"]["message"] == server.runtime.reason


def test_tenant_rate_limit_is_429_with_retry_after() -> None:
    limited = TenantServer(tenant_rate_rps=1.0, tenant_rate_burst=2)
    try:
        with limited.client(KEY_A) as a, limited.client(KEY_B) as b:
            assert [a.post(PATH, json=GOOD).status_code for _ in range(2)] == [200, 200]
            refused = a.post(PATH, json=GOOD)
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
            error = refused.json()["error"]
            assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"
            assert "'tenant-a'" in error["message"] and "tenant_rate_rps" in error["message"]
            assert b.post(PATH, json=GOOD).status_code == 200  # another tenant's own bucket
            time.sleep(1.05)
            assert a.post(PATH, json=GOOD).status_code == 200
    finally:
        limited.close()


def test_tenant_queue_quota_is_429_with_retry_after() -> None:
    quota = TenantServer(tenant_max_queued=1)
    try:
        held = Held(quota, KEY_A)
        with quota.client(KEY_A) as a, quota.client(KEY_B) as b:
            refused = a.post(PATH, json=GOOD)
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
            assert refused.json()["error"]["code"] == "tenant_queue_full"
            assert b.post(PATH, json=GOOD).status_code == 200
            assert a.delete(f"{PATH}/{held.request_id}").status_code == 200
            assert held.result().status_code == 409
            assert a.post(PATH, json=GOOD).status_code == 200  # its slot came back
    finally:
        quota.close()
