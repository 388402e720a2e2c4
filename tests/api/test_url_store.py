"""The `response_format: url` store is per tenant: one tenant's burst evicts only its own
images (issue #15), the overall byte cap evicts expired images first, then the fullest
tenant's oldest."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from edge_helpers import GOOD, PATH, Edge
from tenancy_helpers import KEY_A, KEY_B, TenantServer

from argus.api.images import ENTRY_OVERHEAD, ImageStore

PER_TENANT = 4


@pytest.fixture(scope="module")
def edge() -> Iterator[Edge]:
    running = Edge(image_store_per_tenant=PER_TENANT)
    yield running
    running.close()


def urls(http: httpx.Client, user: str, n: int = 1) -> list[str]:
    response = http.post(PATH, json={**GOOD, "response_format": "url", "user": user, "n": n})
    assert response.status_code == 200, response.text
    return [item["url"] for item in response.json()["data"]]


def test_another_users_flood_does_not_evict_my_url(edge: Edge) -> None:
    (mine,) = urls(edge.http, "tenant-a")
    flood = [url for _ in range(3) for url in urls(edge.http, "tenant-b", n=4)]
    assert len(flood) == 3 * PER_TENANT > PER_TENANT
    response = httpx.get(mine)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")
    # the flood evicted its own oldest images only
    assert [httpx.get(url).status_code for url in flood] == [404] * 8 + [200] * 4


def test_a_tenants_own_burst_keeps_its_newest(edge: Edge) -> None:
    first = urls(edge.http, "tenant-c", n=4)
    second = urls(edge.http, "tenant-c", n=2)
    assert [httpx.get(url).status_code for url in first + second] == [404] * 2 + [200] * 4


def test_with_api_keys_the_key_is_the_bucket() -> None:
    server = TenantServer(image_store_per_tenant=2)
    try:
        with server.client(KEY_A) as a, server.client(KEY_B) as b:
            (mine,) = urls(a, "shared-label")
            for _ in range(3):  # same `user` label, another key: another bucket
                urls(b, "shared-label", n=2)
            assert a.get(mine).status_code == 200
            assert b.get(mine).status_code == 404  # and still not B's to fetch
    finally:
        server.close()


def test_overall_cap_drops_expired_first_then_the_fullest_tenants_oldest() -> None:
    image = b"x" * (64 * 1024 - ENTRY_OVERHEAD)  # 64 KiB each with the overhead
    store = ImageStore(per_tenant=100, max_bytes=10 * 64 * 1024, ttl_s=3600)
    small = [store.put(image, "small") for _ in range(2)]
    big = [store.put(image, "big") for _ in range(8)]
    assert len(store) == 10 and store.bytes == store.max_bytes
    store.put(image, "small")  # over the cap: the fullest ("big") loses its oldest
    assert store.get(big[0]) is None and store.count("big") == 7
    assert all(store.get(i) == image for i in small + big[1:])

    store._all[small[0]].expires = 0.0  # expired: goes before anyone's live image
    store.put(image, "big")
    assert store.get(small[0]) is None and store.get(big[1]) == image
    assert store.count("big") == 8 and len(store) == 10 and store.bytes <= store.max_bytes


def test_expired_images_are_not_found() -> None:
    store = ImageStore(ttl_s=-1.0)
    image_id = store.put(b"png", "a")
    assert store.get(image_id) is None and len(store) == 0
