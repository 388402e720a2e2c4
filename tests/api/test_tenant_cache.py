"""The approximate cache is per tenant when the tenant comes from an API key: a real server with
the cache hook `argus serve` uses and a real worker; tenant B repeating tenant A's exact request
(with the same `user` label) is not served from A's cache, while A's own repeat is."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import httpx
import numpy as np
import pytest
from live_server import LiveServer
from tenancy_helpers import KEY_A, KEY_B, KEYS, bearer

from argus.api import create_app
from argus.cache.serving import CacheServing, build_cache_hook
from argus.config import parse_config
from argus.runtime.dispatcher import build_runtime

PROMPT = "a red circle above a blue square"


def hashed_embed(prompts: Sequence[str]) -> np.ndarray:
    """A deterministic unit vector per prompt (no text encoder to load)."""
    rows = []
    for prompt in prompts:
        seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(32)
        rows.append(v / np.linalg.norm(v))
    return np.asarray(rows, dtype=np.float32)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, CacheServing]]:
    config = parse_config({
        "variants": [{"name": "tiny", "source": "random:pixel-small", "default_steps": 10,
                      "resolution": 32, "guidance_scale": 3.0}],
        "levels": [{"name": "tiny-10", "variant": "tiny", "steps": 10},
                   {"name": "tiny-10-k5", "variant": "tiny", "steps": 10, "cache_k": 5}],
        "server": {"workers": 1, "threads_per_worker": 1, "slo_s": 120.0, "api_keys": KEYS},
        "control": {"policy": "nirvana"},
        "cache": {"dir": str(tmp_path_factory.mktemp("tenant-cache"))},
    })
    with pytest.MonkeyPatch.context() as env:
        env.delenv("ARGUS_CACHE_DIR", raising=False)
        hook = build_cache_hook(config, hashed_embed)
        assert hook is not None
        live = LiveServer(create_app(config, runtime=build_runtime(config, cache=hook)))
        live.wait_ready(180)
        yield live, hook
        live.stop()
        hook.cache.close()


def generate(server: tuple[LiveServer, CacheServing], key: str, **extra: object) -> dict:
    live, hook = server
    body = {"prompt": PROMPT, "seed": 5, "size": "32x32", **extra}
    response = httpx.post(f"{live.url}/v1/images/generations", json=body, headers=bearer(key),
                          timeout=120)
    assert response.status_code == 200, response.text
    hook.cache.flush()
    return response.json()["data"][0]["argus"]["cache"]


def test_tenant_b_cannot_probe_tenant_as_cache(server: tuple[LiveServer, CacheServing]) -> None:
    # Both send the same `user` label: without keys that label would be one shared tenant.
    assert generate(server, KEY_A, user="team")["hit"] is False
    assert generate(server, KEY_A, user="team")["hit"] is True  # A's repeat: A's latents
    stranger = generate(server, KEY_B, user="team")
    assert stranger["hit"] is False and stranger["similarity"] is None  # nothing of A's seen
    assert generate(server, KEY_B, user="team")["hit"] is True  # B's own entry now
