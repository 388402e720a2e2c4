"""Run `argus compare` over every shared trace, three loads and two cluster sizes (issue 4's
evaluation), writing one compact JSON and a markdown table per cluster size.

    .venv/bin/python scripts/evaluate_baselines.py --out docs/eval [--duration 600]
    # a seed-noise subset (issue #13): writes results-8-subset-seed1.json
    .venv/bin/python scripts/evaluate_baselines.py --out docs/eval --workers 8 --seed 1 \
        --traces poisson,azure-llm-code --loads 1,2

Loads are multiples of the full-quality capacity (every worker at the full level). The binned,
diurnal traces (azure-functions: one day per minute; servegen: per 10 minutes) are compressed
into the duration so their daily shape plays out; the per-request traces play in real time from
their start and keep their per-second burstiness. Runs are sequential (the machine is shared);
`--ray [--ray-address ADDR]` runs each cell as a Ray task instead, the cells in parallel over a
local Ray's (or the cluster's) CPUs, with the same results.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

from argus.baselines.compare import Comparison, compare, full_quality_capacity
from argus.baselines.plots import write_plots
from argus.sim.run import SimulationSpec
from argus.sim.traces import BINNED_TRACES, TRACE_NAMES

LOADS = (0.5, 1.0, 2.0)
WORKERS = (8, 64)
KEPT = ("slo_violation_ratio", "mean_relative_quality", "goodput_rps", "quality_goodput_rps",
        "latency_p99_s", "oracle_share", "level_share", "variant_loads", "rejection_reasons",
        "requests", "served", "rejected", "unfinished")


def cell(spec: SimulationSpec, plot: bool) -> tuple[dict, Comparison | None, float]:
    """One grid cell: its results.json, the comparison if it is plotted (its records), and the
    wall seconds it took."""
    started = time.perf_counter()
    comparison = compare(spec)
    return comparison.results(), comparison if plot else None, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", default=",".join(map(str, WORKERS)),
                        help="cluster sizes to run, comma-separated (split the grid across "
                        "processes; each writes results-<sizes>.json unless all run)")
    parser.add_argument("--traces", default=",".join(TRACE_NAMES),
                        help="traces to run, comma-separated (default: all of TRACE_NAMES)")
    parser.add_argument("--loads", default=",".join(map(str, LOADS)),
                        help="loads (multiples of the full-quality capacity), comma-separated")
    parser.add_argument("--plots", default="azure-llm-conv:64:2.0,azure-llm-code:64:1.0,"
                        "azure-functions:8:2.0", help="trace:workers:load runs to plot")
    parser.add_argument("--ray", action="store_true",
                        help="run each cell as a Ray task, cells in parallel")
    parser.add_argument("--ray-address", default="",
                        help="with --ray: the cluster to join (default: a new local Ray)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    plotted = set(args.plots.split(","))
    rows = []
    sizes = tuple(int(w) for w in args.workers.split(","))
    traces = tuple(args.traces.split(","))
    loads = tuple(float(x) for x in args.loads.split(","))
    unknown = [t for t in traces if t not in TRACE_NAMES]
    if unknown:
        parser.error(f"unknown traces {unknown}; known: {', '.join(TRACE_NAMES)}")
    subset = traces != TRACE_NAMES or loads != LOADS
    name = "results" if sizes == WORKERS and not subset else f"results-{'-'.join(map(str, sizes))}"
    name += ("-subset" if subset else "") + (f"-seed{args.seed}" if args.seed else "") + ".json"
    cells = []
    for workers in sizes:
        capacity = full_quality_capacity("a100-sdxl", workers)
        for trace in traces:
            for load in loads:
                spec = SimulationSpec(trace=trace, rate=load * capacity, workers=workers,
                                      duration_s=args.duration, seed=args.seed,
                                      compress=trace in BINNED_TRACES)
                key = f"{trace}:{workers}:{load}"
                cells.append((key, spec, load))
    calls = [(spec, key in plotted) for key, spec, _ in cells]
    with contextlib.ExitStack() as stack:
        if args.ray:
            from argus.baselines.ray_runner import ray_connection, ray_map

            stack.enter_context(ray_connection(args.ray_address))
            done = ray_map(cell, calls)
        else:
            done = (cell(*call) for call in calls)
        for (key, spec, load), (results, comparison, wall) in zip(cells, done, strict=True):
            if comparison is not None:
                folder = args.out / key.replace(":", "-")
                folder.mkdir(exist_ok=True)
                write_plots(comparison, folder)
            rows.append({
                "trace": spec.trace, "workers": spec.workers, "load": load,
                "rate_rps": round(spec.rate or 0.0, 4), "compressed": spec.compress,
                "seed": args.seed, "duration_s": args.duration, "wall_s": round(wall, 1),
                "policies": {
                    name: {k: p.get(k) for k in KEPT if k in p}
                    for name, p in results["policies"].items()
                },
            })
            argus = results["policies"]["argus"]
            print(f"{key:28s} {wall:6.1f} s  argus viol "
                  f"{argus['slo_violation_ratio']:.3f} q {argus['mean_relative_quality']} "
                  f"oracle share {argus['oracle_share']}", flush=True)
            (args.out / name).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
