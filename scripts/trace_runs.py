"""One `argus simulate` run per named trace, printed as the markdown table of
docs/control-plane.md ("Results: every shared trace near capacity"), with the simulator's speed.

    .venv/bin/python scripts/trace_runs.py [--rate 21 --workers 64 --duration 1800 --seed 1]

The binned, diurnal traces (azure-functions, servegen) are compressed into the duration so their
daily shape plays out; the others play in real time from their start.
"""

from __future__ import annotations

import argparse

from argus.sim.run import SimulationSpec, simulate
from argus.sim.traces import BINNED_TRACES, TRACE_NAMES

HEADER = ("| trace | requests | served | rejected | SLO viol. | quality (modelled) | goodput req/s "
          "| p50 s | p99 s | loads | top levels | simulated req/s |")


def row(trace: str, summary: dict, wall_s: float) -> str:
    top = sorted(summary["level_share"].items(), key=lambda kv: -kv[1])[:3]
    levels = ", ".join(f"{name} {share:.0%}" for name, share in top)
    cells = (
        trace, summary["requests"], summary["served"], summary["rejected"],
        f"{summary['slo_violation_ratio']:.2%}", f"{summary['mean_relative_quality']:.1f}%",
        f"{summary['goodput_rps']:.2f}", f"{summary['latency_p50_s']:.2f}",
        f"{summary['latency_p99_s']:.2f}", summary["variant_loads"], levels,
        f"{summary['requests'] / wall_s:,.0f}",
    )
    return "| " + " | ".join(map(str, cells)) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=21.0)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--duration", type=float, default=1800.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--policy", default="argus")
    args = parser.parse_args()
    print(HEADER)
    print("|" + "---|" * HEADER.count(" | ") + "---|")
    for trace in TRACE_NAMES:
        spec = SimulationSpec(trace=trace, rate=args.rate, workers=args.workers,
                              policy=args.policy, duration_s=args.duration, seed=args.seed,
                              compress=trace in BINNED_TRACES)
        summary, wall_s = simulate(spec)
        print(row(trace, summary, wall_s), flush=True)


if __name__ == "__main__":
    main()
