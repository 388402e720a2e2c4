"""`argus compare`: every serving policy on the same simulated arrivals and prompts, against the
offline oracle bound: a table, `results.json` and PNG plots."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare", help="run every policy on one simulated trace and compare them",
        description=__doc__,
    )
    parser.add_argument("--trace", required=True,
                        help="azure-functions, azure-llm-code, azure-llm-conv, mooncake, "
                             "servegen, poisson, bursty-sessions, flash-crowd, diurnal (any "
                             "name + '+mixed' adds an images/steps mix), or a CSV file with an "
                             "arrival_s column")
    load = parser.add_mutually_exclusive_group(required=True)
    load.add_argument("--rate", type=float, help="target mean arrival rate, req/s")
    load.add_argument("--load", type=float,
                      help="arrival rate as a multiple of the cluster's full-quality capacity")
    parser.add_argument("--workers", type=int, required=True, help="simulated GPUs")
    parser.add_argument("--profile", default="a100-sdxl", help="built-in name or profile JSON")
    parser.add_argument("--duration", type=float, default=600.0, help="simulated seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="folder for results and plots")
    parser.add_argument("--policies", default=None,
                        help="comma-separated subset (default: argus and every baseline)")
    parser.add_argument("--compress", action="store_true",
                        help="squeeze the whole trace's shape into the duration")
    parser.add_argument("--no-oracle", action="store_true", help="skip the oracle LP")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--ray", action="store_true",
                        help="run each policy's simulation as a Ray task (pip install "
                             "-e '.[ray]'); same results as a local run")
    parser.add_argument("--ray-address", default="",
                        help="with --ray: the cluster to join (auto, host:6379, "
                             "ray://host:10001; default: start a new local Ray)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from argus.baselines.compare import (
        DEFAULT_POLICIES,
        compare,
        format_table,
        full_quality_capacity,
    )
    from argus.control.policy import policy_names
    from argus.sim.run import SimulationSpec

    policies = DEFAULT_POLICIES if args.policies is None else tuple(
        p.strip() for p in args.policies.split(",") if p.strip()
    )
    unknown = sorted(set(policies) - set(policy_names()))
    if unknown or not policies:
        raise ValueError(f"--policies: unknown {unknown}; known: {', '.join(policy_names())}")
    if args.ray_address and not args.ray:
        raise ValueError("--ray-address needs --ray")
    if args.workers < 1:
        raise ValueError("--workers must be >= 1")
    for flag in ("rate", "load"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            raise ValueError(f"--{flag} must be > 0")
    rate = args.rate
    if rate is None:
        rate = args.load * full_quality_capacity(args.profile, args.workers)
    spec = SimulationSpec(
        trace=args.trace, rate=rate, workers=args.workers, profile=args.profile,
        duration_s=args.duration, seed=args.seed, compress=args.compress,
    )
    if args.ray:
        from argus.baselines.ray_runner import ray_connection, ray_map

        with ray_connection(args.ray_address):
            comparison = compare(spec, policies, with_oracle=not args.no_oracle, runner=ray_map)
    else:
        comparison = compare(spec, policies, with_oracle=not args.no_oracle)
    results = comparison.results()
    print(format_table(results))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    written = [args.out / "results.json"]
    if not args.no_plots:
        from argus.baselines.plots import write_plots

        written += write_plots(comparison, args.out)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
