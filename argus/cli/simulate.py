"""`argus simulate`: replay a trace against a simulated cluster driven by the real control plane."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="trace-driven cluster simulation with the real control plane",
        description=__doc__,
    )
    parser.add_argument("--trace", required=True,
                        help="azure-functions, azure-llm-code, azure-llm-conv, mooncake, "
                             "servegen, poisson, bursty-sessions, flash-crowd, diurnal (any "
                             "name + '+mixed' adds an images/steps mix), or a CSV file with an "
                             "arrival_s column")
    parser.add_argument("--rate", type=float, default=None,
                        help="target mean arrival rate, req/s (a CSV file keeps its own if unset)")
    parser.add_argument("--workers", type=int, required=True, help="simulated GPUs")
    parser.add_argument("--profile", default="a100-sdxl", help="built-in name or profile JSON")
    parser.add_argument("--policy", default="argus", help="serving policy (registry name)")
    parser.add_argument("--duration", type=float, default=600.0, help="simulated seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the full result here")
    parser.add_argument("--predictor", default="profile",
                        help="profile | table (per-prompt oracle) | trained predictor file")
    parser.add_argument("--quality-floor", type=float, default=None)
    parser.add_argument("--slo", type=float, default=None, help="deadline in seconds")
    parser.add_argument("--interval", type=float, default=None,
                        help="time-series bin in seconds (default duration/120, >= period)")
    parser.add_argument("--compress", action="store_true",
                        help="squeeze the whole trace's shape into the duration")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="read the production traces from this folder in the "
                             "../shared/data layout (default: the copy in the package)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import argus.baselines  # noqa: F401  (registers the baseline policies for --policy)
    from argus.sim.run import SimulationSpec, simulate

    spec = SimulationSpec(
        trace=args.trace, rate=args.rate, workers=args.workers, profile=args.profile,
        policy=args.policy, duration_s=args.duration, seed=args.seed, predictor=args.predictor,
        quality_floor=args.quality_floor, slo_s=args.slo, interval_s=args.interval,
        compress=args.compress, data_dir=args.data_dir,
    )
    summary, wall = simulate(spec, progress=not args.no_progress and sys.stderr.isatty())
    print(format_summary(summary, wall))
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


def format_summary(s: dict, wall_s: float) -> str:
    shares = ", ".join(f"{k} {v:.0%}" for k, v in s["level_share"].items() if v)
    quality = s["mean_relative_quality"]
    lines = [
        f"{s['trace']} @ {s['rate_rps'] or 'native'} req/s, {s['workers']} workers, "
        f"profile {s['profile']}, policy {s['policy']}, {s['duration_s']:.0f} s, seed {s['seed']}",
        f"  requests {s['requests']}  served {s['served']}  rejected {s['rejected']}  "
        f"unfinished {s['unfinished']}",
        f"  SLO violations {s['slo_violation_ratio']:.2%}  goodput {s['goodput_rps']:.2f} req/s  "
        f"latency p50 {s['latency_p50_s']} s  p99 {s['latency_p99_s']} s",
        f"  mean relative quality {quality if quality is None else f'{quality:.2f}%'} "
        f"({s['quality_source']})  variant loads {s['variant_loads']}",
        f"  level share: {shares}",
        f"  simulated {s['requests'] / max(wall_s, 1e-9):,.0f} requests/s ({wall_s:.2f} s wall)",
    ]
    return "\n".join(lines)
