"""A real Argus server with the approximate cache: uvicorn in a thread, real worker processes,
the cache hook `argus serve` uses, over real HTTP."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import httpx
import numpy as np
from live_server import LiveServer
from PIL import Image

from argus.api import create_app
from argus.cache.serving import CacheServing, build_cache_hook
from argus.config import ArgusConfig, parse_config
from argus.runtime.dispatcher import build_runtime

STEPS = 10


def server_config(cache_dir: Path) -> ArgusConfig:
    """One tiny random-weight variant of 10 steps; a cache level for every band's K (1..5 of
    10), and the `nirvana` policy, which serves each request at its similarity band's level (the
    `argus` policy may keep a request at the full level, which caps a similar hit's K to 0)."""
    levels = [{"name": "tiny-10", "variant": "tiny", "steps": STEPS}]
    levels += [
        {"name": f"tiny-10-k{k}", "variant": "tiny", "steps": STEPS, "cache_k": k}
        for k in range(1, 6)
    ]
    return parse_config({
        "variants": [{"name": "tiny", "source": "random:pixel-small", "default_steps": STEPS,
                      "resolution": 32, "guidance_scale": 3.0}],
        "levels": levels,
        "server": {"workers": 1, "threads_per_worker": 1, "slo_s": 120.0},
        "control": {"policy": "nirvana"},
        "cache": {"dir": str(cache_dir)},
    })


class CacheServer:
    """A real Argus server with the approximate cache, in a thread."""

    def __init__(self, config: ArgusConfig, hook: CacheServing) -> None:
        self.hook = hook
        self.live = LiveServer(create_app(config, runtime=build_runtime(config, cache=hook)))
        self.client = httpx.Client(base_url=self.live.url, timeout=120)

    @classmethod
    def start(cls, config: ArgusConfig, embed_fn=None) -> CacheServer:
        hook = build_cache_hook(config, embed_fn)
        assert hook is not None
        server = cls(config, hook)
        server.live.wait_ready(180)
        return server

    def stop(self) -> None:
        self.client.close()
        self.live.stop()
        self.hook.cache.close()

    def generate(self, prompt: str, seed: int, user: str = "alice", **extra: object) -> dict:
        """POST one image; returns the data item (with `argus`), after the cache stored it."""
        body = {"prompt": prompt, "seed": seed, "user": user, **extra}
        response = self.client.post("/v1/images/generations", json=body)
        assert response.status_code == 200, response.text
        self.hook.cache.flush()
        return response.json()["data"][0]

    def metric(self, sample: str) -> float:
        """Value of one /metrics sample, e.g. `argus_cache_hits_total{k="5",kind="exact"}`."""
        for line in self.client.get("/metrics").text.splitlines():
            name, _, value = line.rpartition(" ")
            if name == sample:
                return float(value)
        return 0.0


def pixels(item: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))))
