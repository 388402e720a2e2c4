"""Fair sharing under overload: tenant B's SLO attainment with and without tenant A's flood.

    .venv/bin/python benchmarks/fair_share.py [--seconds 20] [--flood 24] [--period 0.5]
        [--slo 3] [--queue 4] [--batch 2]

A one-worker server (the random-weight test family, one torch thread) with API keys for A and B
runs in this process on a free loopback port. Cases, one JSON line each: B alone (one request
every `--period` s); B while A floods (`--flood` clients in their own process, each sending as
soon as it is answered, ignoring Retry-After); the same with displacement off (the admission
Argus had before fair sharing). Per tenant: statuses, error codes, answered within the SLO,
SLO attainment (in SLO / sent), p50 and max latency of the 200s; and the CPU time of this
process (the API server and B's client, not the worker) per request answered.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import threading
import time

import httpx
import psutil
import torch
import uvicorn

from argus.api import create_app
from argus.api.auth import hash_key
from argus.bench.fairness import flood_command, paced
from argus.config import parse_config
from argus.defaults import RANDOM_FAMILY

KEY_A, KEY_B = "sk-bench-tenant-a", "sk-bench-tenant-b"
OPTIONS = {"seconds": 20.0, "flood": 24, "period": 0.5, "slo": 3.0, "queue": 4, "batch": 2}
"""Command-line options and their defaults."""


def serve(args: argparse.Namespace, fair: bool) -> tuple[uvicorn.Server, str]:
    keys = {hash_key(KEY_A): {"tenant": "a"}, hash_key(KEY_B): {"tenant": "b"}}
    config = parse_config({**RANDOM_FAMILY, "server": {
        "workers": 1, "threads_per_worker": 1, "slo_s": args.slo, "api_keys": keys,
        "queue_capacity": args.queue, "max_batch": args.batch,
    }})
    app = create_app(config)
    if not fair:  # the admission before fair sharing: first come, first served
        app.state.service.auth.fair.victim = lambda asker, images: None
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become ready")


def run_case(args: argparse.Namespace, case: str, flood: bool, fair: bool) -> dict:
    server, url = serve(args, fair)
    try:
        paced(url, KEY_B, args.period, args.period * 2, args.slo)  # warm: variant loaded
        process = None
        if flood:
            command = flood_command(url, KEY_A, args.flood, args.seconds + 2.0)
            process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
            time.sleep(1.0)  # A fills the queue first
        cpu = psutil.Process().cpu_times()
        b = paced(url, KEY_B, args.period, args.seconds, args.slo)
        a = json.loads(process.communicate()[0]) if process else None
        after = psutil.Process().cpu_times()
    finally:
        server.should_exit = True
    api_cpu_s = after.user + after.system - cpu.user - cpu.system
    answered = b.sent + (a["sent"] if a else 0)
    return {"case": case, "slo_s": args.slo, "seconds": args.seconds,
            "flood_clients": args.flood if flood else 0, "b_period_s": args.period,
            "api_cpu_s": round(api_cpu_s, 2),
            "api_cpu_ms_per_request": round(1000 * api_cpu_s / max(1, answered), 2),
            "b": b.summary(), "a": a}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in OPTIONS.items():
        parser.add_argument(f"--{name}", type=type(default), default=default)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cases = [("b_alone", False, True), ("b_with_flood", True, True),
             ("b_with_flood_no_fair_share", True, False)]
    for case, flood, fair in cases:
        print(json.dumps(run_case(args, case, flood, fair)), flush=True)


if __name__ == "__main__":
    main()
