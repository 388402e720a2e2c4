"""`argus serve --runtime ray` as a real process (its own new local Ray, one worker actor, the
tiny random-weight family) answers the official `openai` client with a PNG, then stops on
SIGTERM taking its Ray with it."""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")
openai = pytest.importorskip("openai")
psutil = pytest.importorskip("psutil")

import yaml  # noqa: E402
from live_server import free_port, wait_ready  # noqa: E402
from PIL import Image  # noqa: E402

from argus.defaults import RANDOM_FAMILY  # noqa: E402


def test_openai_client_gets_an_image_from_serve_on_ray(tmp_path: Path) -> None:
    config = tmp_path / "argus.yaml"
    config.write_text(yaml.safe_dump({**RANDOM_FAMILY, "server": {
        "runtime": "ray", "workers": 1, "threads_per_worker": 1, "queue_capacity": 4,
        "slo_s": 120.0,
    }}))
    port = free_port()
    env = {**os.environ, "ARGUS_CACHE_DIR": str(tmp_path / "cache"), "RAY_AUTH_MODE": "disabled"}
    log = tmp_path / "serve.log"
    with log.open("w") as sink:  # a file, not a pipe: a full pipe would block the server
        server = subprocess.Popen(
            [sys.executable, "-m", "argus", "serve", "--runtime", "ray", "--port", str(port),
             "--config", str(config)],
            env=env, stdout=sink, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        wait_ready(base, 90)
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0, timeout=60)
        reply = client.images.generate(prompt="a red circle", size="32x32",
                                       response_format="b64_json")
        assert len(reply.data) == 1
        image = Image.open(io.BytesIO(base64.b64decode(reply.data[0].b64_json)))
        assert image.format == "PNG" and image.size == (32, 32)
        cluster = client.get("/cluster", cast_to=object)
        assert cluster["runtime"]["backend"] == "RayPool", cluster["runtime"]
        (worker,) = cluster["runtime"]["workers"].values()
        assert worker["node_ip"] and worker["device"] == "cpu", worker  # where it runs
        (actor_pid,) = cluster["runtime"]["pids"].values()
        print(f"ready + one image in {time.monotonic() - started:.1f} s")
    finally:
        descendants = psutil.Process(server.pid).children(recursive=True)
        server.terminate()  # SIGTERM: drain, stop the actor, shut the server's Ray down
        server.wait(timeout=45)
    # uvicorn re-raises the SIGTERM it caught once it has shut down cleanly: -15 is a clean exit
    assert server.returncode in (0, -signal.SIGTERM), log.read_text()[-3000:]
    assert "Application shutdown complete" in log.read_text()
    assert actor_pid in {p.pid for p in descendants}  # the actor ran under the server's Ray
    _, alive = psutil.wait_procs(descendants, timeout=20)
    assert not alive, [p.pid for p in alive]  # no raylet, GCS or actor left behind
