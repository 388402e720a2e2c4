"""A burst on the live default server: auto against every pinned step count.

    .venv/bin/python benchmarks/live_burst.py [--burst 100] [--settings auto,l-20,l-10,l-5,l-3,l-2]

For each setting a fresh `argus serve` (the embedded default: shapes family, one worker) gets
`--burst` simultaneous requests (held-out shapes prompts, fresh seeds; the same prompts and seeds
for every setting). Pinned settings name a level (`model: l-5`: exactly 5 steps of shapes-l).
Every returned image is scored with the shapes scorer. Prints one JSON line per setting:
answered, answered within the SLO, late answers, statuses, mean score, and the quality-weighted
goodput = sum of the scores of images answered within the SLO.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from argus.bench.study import free_port, wait_ready

REPO = Path(__file__).resolve().parent.parent


def start_server(port: int) -> subprocess.Popen:
    argus = Path(sys.executable).parent / "argus"
    return subprocess.Popen(
        [str(argus), "serve", "--port", str(port)], cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


def run_setting(setting: str, prompts: list[str], seeds: list[int]) -> dict:
    from argus.bench.burst import run_burst

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port)
    try:
        wait_ready(url)
        result = run_burst(url, prompts, seeds, None if setting == "auto" else setting)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    return {"bench": "live_burst", "setting": setting, "burst": len(prompts),
            **result.summary()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--settings", default="auto,l-20,l-10,l-5,l-3,l-2")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from argus.shapes.grammar import sample_prompts

    pool = sample_prompts(args.seed, 256, held_out=True)
    prompts = [pool[i % len(pool)] for i in range(args.burst)]
    seeds = [1000 + 17 * i + args.seed for i in range(args.burst)]
    for setting in args.settings.split(","):
        print(json.dumps(run_setting(setting, prompts, seeds)), flush=True)


if __name__ == "__main__":
    main()
