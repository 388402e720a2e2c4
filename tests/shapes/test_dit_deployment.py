"""The shipped shapes DiT deployment (`argus/assets/shapes/dit.yaml`, issue #18): it serves over
HTTP from its own profile and predictor, lists its feature-cache levels and answers a request
pinned to one."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
from live_server import LiveServer

from argus.api import create_app
from argus.config import load_config_file

DIT_CONFIG = Path(__file__).resolve().parents[2] / "argus" / "assets" / "shapes" / "dit.yaml"


def test_dit_deployment_serves_feature_cache_levels_over_http() -> None:
    config = load_config_file(DIT_CONFIG)
    server = LiveServer(create_app(config)).wait_ready(240)
    try:
        models = httpx.get(f"{server.url}/v1/models", timeout=30).json()["data"]
        cached = {m["id"] for m in models if m["argus"].get("feature_cache")}
        assert {"d-20-fbc20", "d-20-ts3"} <= cached
        answer = httpx.post(f"{server.url}/v1/images/generations", timeout=120, json={
            "prompt": "a small red circle", "model": "d-20-fbc20", "seed": 3})
        assert answer.status_code == 200, answer.text
        item = answer.json()["data"][0]
        assert item["argus"]["level"] == "d-20-fbc20"
        assert base64.b64decode(item["b64_json"]).startswith(b"\x89PNG")
    finally:
        server.stop()
