"""Control-plane speed: MILP planner, dispatcher decision, simulator throughput.

    python benchmarks/control_plane.py [--quick]

Prints one JSON object per line (stdout):
    {"bench": "planner", "workers": W, "levels": L, "median_ms": x}   for W in 8, 64, 1024
    {"bench": "dispatch", "mean_us": x}
    {"bench": "relevel", "queued": 1000, "first_ms": x, "median_ms": x}
    {"bench": "coalesce", "queued": 1000, "median_ms": x}
    {"bench": "simulator", "requests_per_s": x}
and the details of each measurement on stderr. Goals (issue 3): planner <= 50 ms at 1,024
workers x 12 levels, dispatch <= 50 us mean, simulator >= 200,000 simulated requests/s;
re-levelling (issue 12) <= 1 ms for a late arrival with 1,000 requests queued, and so is
forming one joint batch from a 1,000-request queue at mixed levels.
Wall-clock time on whatever machine runs it; a shared machine inflates every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

from argus.control.builtin import a100_sdxl, config_for_profile
from argus.control.levels import LevelTable
from argus.control.plane import ControlPlane
from argus.control.planner import MilpPlanner, PlannerSettings
from argus.sim.run import SimulationSpec, simulate
from argus.types import Request


def emit(line: dict, detail: str) -> None:
    print(json.dumps(line), flush=True)
    print(f"  {detail}", file=sys.stderr, flush=True)


def bench_planner(workers: int, rounds: int) -> None:
    """A period's plan (MILP + hysteresis check) for demand near capacity that shifts between
    periods, starting from the previous period's allocation."""
    profile = a100_sdxl()
    table = LevelTable.build(profile, 21.0)
    planner = MilpPlanner(table, PlannerSettings(redirect_floor=0.8))
    rng = np.random.default_rng(workers)
    levels = len(table)
    quality = np.clip(
        np.asarray(table.mean_quality)[None, :] - 0.05 * rng.random((levels, levels)), 0, 1
    )
    capacity = workers * planner.capacity[table.full]
    current, times, cpu_times = None, [], []
    share = rng.dirichlet(np.ones(levels))
    for _ in range(rounds):
        share = 0.8 * share + 0.2 * rng.dirichlet(np.ones(levels))
        demand = share * capacity * rng.uniform(1.2, 1.6)
        started, cpu = time.perf_counter(), time.process_time()
        alloc, _ = planner.plan(demand, quality, workers, current)
        times.append((time.perf_counter() - started) * 1e3)
        cpu_times.append((time.process_time() - cpu) * 1e3)
        current = alloc.workers
    emit(
        {"bench": "planner", "workers": workers, "levels": levels,
         "median_ms": round(statistics.median(times), 3)},
        f"planner {workers} workers: {rounds} periods, p90 {np.percentile(times, 90):.1f} ms, "
        f"max {max(times):.1f} ms; median process CPU {statistics.median(cpu_times):.1f} ms",
    )


def bench_dispatch(requests: int) -> None:
    """Mean time of the per-request decisions: admit (predict, optimal level, route, deadline
    check, queue) plus its share of next_batch and complete, on a 64-worker plane near
    capacity."""
    profile = a100_sdxl()
    config = config_for_profile(profile, server={"queue_capacity": 1_000_000})
    plane = ControlPlane(config, profile, num_workers=64)
    rng = np.random.default_rng(0)
    sims = rng.random(requests).tolist()
    arrivals = np.cumsum(rng.exponential(1 / 20.0, requests)).tolist()
    batch: list[Request] = []
    worker = 0
    plane.tick(0.0)
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(requests):
        now = arrivals[i]
        plane.admit(Request("", now, now + plane.slo_s, str(i), cache_similarity=sims[i]), now)
        if i % 4 == 0:
            for done in batch:
                plane.complete(done, now)
            batch = plane.next_batch(worker, now, 4)
            worker = (worker + 1) % 64
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    emit({"bench": "dispatch", "mean_us": round(elapsed / requests * 1e6, 3)},
         f"dispatch: {requests} requests on 64 workers (plans excluded: no tick in the loop), "
         f"admitted {sum(plane.admitted)}, expired in queue {plane.rejected}; "
         f"process CPU {cpu / requests * 1e6:.1f} us per request")


def bench_relevel(queued: int, rounds: int) -> None:
    """Degrade before drop: one late arrival (pinned to the full level, so it cannot degrade
    itself) on a variant with `queued` requests waiting, which only fits once queued requests
    move to cheaper levels (the candidate heap is built on the first overload, then kept: the
    first call and the following ones are reported)."""
    profile = a100_sdxl(with_prompts=False)
    config = config_for_profile(profile, server={"queue_capacity": 10 * queued,
                                                 "slo_s": 1e6})
    plane = ControlPlane(config, profile, num_workers=64)
    plane.tick(0.0)
    for i in range(queued):  # a deep queue, due before the arrival, at the full level
        plane.admit(Request("", 0.0, 60.0 + 20.0 * i / queued, f"q{i}", cache_similarity=0.2),
                    0.0)
    deadline = plane.finish_estimate(plane.table.full, 0.0) - 0.1  # a few moves make it
    times, late = [], []
    for r in range(rounds + 1):
        request = Request("", 0.0, deadline, f"late{r}", cache_similarity=0.2,
                          no_approximation=True)
        started = time.perf_counter()
        late.append(plane.admit(request, 0.0))
        times.append((time.perf_counter() - started) * 1e3)
    emit({"bench": "relevel", "queued": queued, "first_ms": round(times[0], 3),
          "median_ms": round(statistics.median(times[1:]), 3)},
         f"relevel: {queued} queued, a late arrival admitted {rounds + 1} times "
         f"({sum(r.status.name == 'QUEUED' for r in late)} admitted); moves "
         f"{plane.releveler.moved}, goal <= 1 ms")


def bench_coalesce(queued: int, rounds: int) -> None:
    """One batch is one level: `next_batch` on a worker whose variant has `queued` requests
    waiting at mixed levels (every call joins the earliest ones into one batch)."""
    profile = a100_sdxl(with_prompts=False)
    config = config_for_profile(profile, server={"queue_capacity": 10 * queued,
                                                 "slo_s": 1e6})
    plane = ControlPlane(config, profile, num_workers=1)
    plane.tick(0.0)
    levels = [plane.table.index[name] for name in ("sdxl-k0", "sdxl-s30", "sdxl-s20")]
    for i in range(queued + 8 * rounds):
        request = Request("", 0.0, 1e5 + i, f"q{i}")
        plane.admit(request, 0.0)
        if request.status.name == "QUEUED":
            plane.queues.move(request, levels[i % len(levels)])
            request.level = plane.table.names[levels[i % len(levels)]]
    times, joined = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        batch = plane.next_batch(0, 0.0, 8)
        times.append((time.perf_counter() - started) * 1e3)
        joined += len({r.level for r in batch}) == 1 and len(batch) == 8
        for request in batch:
            plane.complete(request, 0.0)
    emit({"bench": "coalesce", "queued": plane.queues.total, "median_ms": round(
        statistics.median(times), 3)},
         f"coalesce: {rounds} batches from a queue at {len(levels)} mixed levels "
         f"({joined} full one-level batches), goal <= 1 ms")


def bench_simulator(duration_s: float) -> None:
    """`argus simulate` on 1,024 workers with the a100-sdxl profile, Poisson load near capacity
    (MILP planning every 5 s included)."""
    spec = SimulationSpec(trace="poisson", rate=330.0, workers=1024, duration_s=duration_s,
                          seed=1)
    cpu = time.process_time()
    summary, wall = simulate(spec)
    cpu = time.process_time() - cpu
    emit({"bench": "simulator", "requests_per_s": round(summary["requests"] / wall)},
         f"simulator: {summary['requests']} requests in {wall:.2f} s wall of the event loop "
         f"(process CPU for the whole run incl. setup {cpu:.2f} s); SLO violations "
         f"{summary['slo_violation_ratio']:.2%}, quality {summary['mean_relative_quality']}% "
         "(modelled)")


def machine_speed() -> str:
    """A yardstick for reading the figures: a plain Python loop's speed on this machine now."""
    started, cpu = time.perf_counter(), time.process_time()
    total = 0
    for i in range(2_000_000):
        total += i
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return (f"machine: python loop {2 / wall:.1f} M iterations/s wall, {2 / cpu:.1f} M/s CPU "
            f"(a quiet modern core does ~15-25 M/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (smoke test)")
    args = parser.parse_args()
    rounds = 5 if args.quick else 30
    print(f"  {machine_speed()}", file=sys.stderr, flush=True)
    for workers in (8, 64, 1024):
        bench_planner(workers, rounds)
    bench_dispatch(20_000 if args.quick else 200_000)
    bench_relevel(1000, rounds)
    bench_coalesce(1000, rounds)
    bench_simulator(60.0 if args.quick else 600.0)


if __name__ == "__main__":
    main()
