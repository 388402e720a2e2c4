"""The quality audit under `argus bench` load with a deliberately miscalibrated predictor.

    python benchmarks/audit_drift.py [--offset 0.3] [--level l-5] [--rate 1] [--duration 90]

Starts `argus serve` (embedded default family, 1 worker, 1 torch thread) with
`audit.offsets: {LEVEL: OFFSET}` (LEVEL predicted OFFSET too good), a larger audit share than the
default so that a short run sees enough samples, runs `argus bench` (poisson) against it, polls
/v1/cluster's audit section once a second and prints one JSON line: when the drift alarm fired,
the error (measured - predicted, window mean) before and after recalibration, the offset
changes, samples and drops. Wall-clock figures on whatever machine runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from argus.bench.study import free_port, wait_ready

ARGUS = str(Path(sys.executable).with_name("argus"))


def config_file(args: argparse.Namespace, folder: str) -> str:
    from argus.defaults import load_config

    data = load_config(None).model_dump(mode="json")
    data["server"].update(workers=1, threads_per_worker=1)
    # The miscalibrated level must keep being served for its window to refill under each new
    # offset: an idle worker would lift a lone request to the full level once it is corrected.
    data["control"]["upgrade_when_idle"] = False
    data["audit"].update(share=args.share, budget_per_min=args.budget,
                         alarm_after_s=args.alarm_after_s, offsets={args.level: args.offset})
    path = os.path.join(folder, "miscalibrated.yaml")
    Path(path).write_text(yaml.safe_dump(data))
    return path


def watch(url: str, bench: subprocess.Popen, start: float) -> tuple[dict, float | None, list]:
    """Poll the audit until the bench ends; returns the last audit, the alarm time and the
    per-second trace of the level's (error, offset)."""
    alarm_s, trace, audit = None, [], {}
    while bench.poll() is None:
        audit = httpx.get(f"{url}/v1/cluster", timeout=10).json()["audit"]
        if alarm_s is None and audit["drifting"]:
            alarm_s = round(time.monotonic() - start, 1)
        trace.append({"t_s": round(time.monotonic() - start, 1), "drifting": audit["drifting"],
                      "levels": {n: (lv["error"], lv["offset"], lv["total"])
                                 for n, lv in audit["levels"].items()}})
        time.sleep(1.0)
    return audit, alarm_s, trace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", default="l-5")
    parser.add_argument("--offset", type=float, default=0.3)
    parser.add_argument("--share", type=float, default=0.5)
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--alarm-after-s", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=90.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trace-out", default=None, help="write the per-second trace here")
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "ARGUS_CACHE_DIR": os.path.join(folder, "cache")}
        server = subprocess.Popen([ARGUS, "serve", "--config", config_file(args, folder),
                                   "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            wait_ready(url, server)
            start = time.monotonic()
            bench = subprocess.Popen(
                [ARGUS, "bench", "--url", url, "--trace", "poisson", "--rate", str(args.rate),
                 "--duration", str(args.duration), "--seed", str(args.seed), "--no-progress",
                 "--drain", "30", "--json", os.path.join(folder, "bench.json")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            audit, alarm_s, trace = watch(url, bench, start)
            summary = json.loads(Path(folder, "bench.json").read_text())
        finally:
            server.terminate()
            server.wait(timeout=60)
    level = audit["levels"].get(args.level, {})
    events = [e for e in audit["alarm_events"] if e["level"] == args.level]
    if args.trace_out:
        Path(args.trace_out).write_text(json.dumps(trace))
    print(json.dumps({
        "bench": "audit_drift", "level": args.level, "offset": args.offset,
        "rate_rps": args.rate, "duration_s": args.duration, "share": args.share,
        "alarm_after_s": args.alarm_after_s, "alarm_fired_s": alarm_s,
        "error_at_alarm": events[0]["error"] if events else None,
        "error_final": level.get("error"), "final_window_samples": level.get("count"),
        "offset_final": level.get("offset"), "alarm_final": level.get("alarm"),
        "offset_changes": [(c["from"], c["to"]) for c in audit["offset_changes"]
                           if c["level"] == args.level],
        "alarm_events": [(e["t_s"], e["alarm"], e["error"]) for e in events],
        "samples": {n: lv["total"] for n, lv in audit["levels"].items()},
        "dropped": audit["dropped"], "requests": summary.get("requests"),
        "slo_violation_ratio": summary.get("slo_violation_ratio"),
        "level_share": summary.get("level_share"),
    }))


if __name__ == "__main__":
    main()
