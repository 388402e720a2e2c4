"""`argus serve` command line: arguments and clean errors for bad configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from argus.cli import build_parser, main


def test_serve_arguments_parse() -> None:
    args = build_parser().parse_args(
        ["serve", "--config", "c.yaml", "--host", "0.0.0.0", "--port", "9000", "--workers", "2"]
    )
    assert (args.config, args.host, args.port, args.workers) == ("c.yaml", "0.0.0.0", 9000, 2)


def test_bad_config_fails_at_start_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "variants:\n  - {name: a, source: 'random:pixel-small', default_steps: 0, resolution: 32}\n"
        "levels:\n  - {name: a-1, variant: a, steps: 1}\n"
    )
    assert main(["serve", "--config", str(bad)]) == 2
    assert "variants.0.default_steps" in capsys.readouterr().err


def test_missing_config_and_bad_workers_fail_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--config", "/nonexistent/argus.yaml"]) == 2
    assert "cannot read config" in capsys.readouterr().err
    assert main(["serve", "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err


def test_serve_out_of_the_box_draws_a_large_red_circle_the_scorer_passes(tmp_path: Path) -> None:
    """`argus serve` with no config (a real process, real HTTP) answers `a large red circle`
    with an image the shapes scorer passes."""
    import base64
    import io
    import os
    import subprocess
    import sys

    import httpx
    import numpy as np
    from live_server import free_port, wait_ready
    from PIL import Image

    from argus.shapes.scorer import score

    port = free_port()
    env = {**os.environ, "ARGUS_CACHE_DIR": str(tmp_path)}
    server = subprocess.Popen(
        [sys.executable, "-m", "argus", "serve", "--port", str(port), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, 120)
        reply = httpx.post(f"{base}/v1/images/generations", timeout=60, json={
            "prompt": "a large red circle", "seed": 0, "response_format": "b64_json"})
        assert reply.status_code == 200, reply.text
        png = base64.b64decode(reply.json()["data"][0]["b64_json"])
        image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        report = score(image, "a large red circle")
        assert report.parsed and report.score >= 0.75, (report, reply.json()["argus"])
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_serve_policy_and_runtime_flags_reach_the_config(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from argus.cli.serve import with_overrides
    from argus.defaults import load_config

    args = build_parser().parse_args(
        ["serve", "--policy", "clipper-ha", "--runtime", "ray", "--ray-address", "auto"]
    )
    config = with_overrides(load_config(), args)
    assert config.control.policy == "clipper-ha"
    assert (config.server.runtime, config.server.ray_address) == ("ray", "auto")
    assert main(["serve", "--policy", "nope"]) == 2
    assert "unknown; known:" in capsys.readouterr().err


def test_a_baseline_serves_on_real_workers() -> None:
    import httpx
    from api_helpers import api_config
    from live_server import LiveServer

    from argus.api import create_app

    config = api_config()
    config = config.model_copy(
        update={"control": config.control.model_copy(update={"policy": "clipper-ha"})})
    server = LiveServer(create_app(config)).wait_ready()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            response = client.post("/v1/images/generations", json={"prompt": "a red circle"})
            assert response.status_code == 200, response.text
            assert response.json()["data"][0]["argus"]["level"] == "large-20"  # the full level
            assert client.get("/v1/cluster").json()["policy"] == "clipper-ha"
    finally:
        server.stop()
