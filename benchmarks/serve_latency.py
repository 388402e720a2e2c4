"""Latency of one default generation through `argus serve` (real process, real HTTP).

    python benchmarks/serve_latency.py [--requests 10] [--workers 1] [--config FILE]

Starts `argus serve` on a free port with the embedded default config (or --config), waits for
/ready, sends one warm-up request, then `--requests` sequential default requests
({"prompt": ...} only) and prints one JSON line:
    {"bench": "default_generation", "median_ms": x, "p90_ms": x, "run_median_ms": x, ...}
`median_ms` is client-side wall time; `run_median_ms` the worker time the server reports.
Wall-clock time on whatever machine runs it; a shared machine inflates every figure.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

PROMPTS = ["a red circle", "two blue squares", "a small green triangle left of a big circle"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base_url: str, timeout_s: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        try:
            if httpx.get(f"{base_url}/ready", timeout=2).status_code == 200:
                return time.monotonic() - start
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not become ready")


def measure(base_url: str, requests: int) -> dict:
    walls, runs, levels = [], [], set()
    with httpx.Client(base_url=base_url, timeout=120) as client:
        client.post("/v1/images/generations", json={"prompt": "warm-up"}).raise_for_status()
        for i in range(requests):
            start = time.perf_counter()
            response = client.post("/v1/images/generations", json={"prompt": PROMPTS[i % 3]})
            walls.append((time.perf_counter() - start) * 1e3)
            response.raise_for_status()
            argus = response.json()["data"][0]["argus"]
            runs.append(argus["timings_ms"]["run"])
            levels.add(f"{argus['level']} ({argus['variant']}, {argus['steps']} steps)")
    walls.sort()
    return {
        "median_ms": round(statistics.median(walls), 1),
        "p90_ms": round(walls[int(0.9 * (len(walls) - 1))], 1),
        "run_median_ms": round(statistics.median(runs), 1),
        "levels": sorted(levels),
        "requests": requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--config")
    args = parser.parse_args()
    port = free_port()
    argus = Path(sys.executable).with_name("argus")
    command = [str(argus), "serve", "--port", str(port), "--workers", str(args.workers)]
    if args.config:
        command += ["--config", args.config]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base_url = f"http://127.0.0.1:{port}"
        ready_s = wait_ready(base_url, 300)
        result = {"bench": "default_generation", "ready_s": round(ready_s, 1)}
        result.update(measure(base_url, args.requests))
        print(json.dumps(result))
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
