"""Head-to-head comparison: every policy on the same arrivals and prompts, plus the oracle bound.

Each policy runs through `argus.sim.run.simulate` with the same spec (trace, rate, seed), so they
replay identical arrival times, cache similarities and prompt difficulties; the oracle LP is
solved once on those. Besides the simulate fields, every policy gets
- `quality_goodput_rps`: sum of the relative quality of requests answered within SLO, per second;
- `oracle_share`: that over the oracle's bound (the issue's "share of oracle").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from argus.baselines.oracle import OracleBound, oracle_for
from argus.control.builtin import config_for_profile, resolve_profile
from argus.control.levels import LevelTable, default_slo_s
from argus.sim.run import SimulationSpec, simulate
from argus.sim.simulator import RunRecord, Simulator

DEFAULT_POLICIES = (
    "argus", "clipper-ha", "clipper-ht", "proteus", "nirvana", "diffserve", "pac", "random",
)


@dataclass
class Comparison:
    spec: SimulationSpec
    capacity_rps: float
    summaries: dict[str, dict] = field(default_factory=dict)
    records: dict[str, RunRecord] = field(default_factory=dict)
    level_names: tuple[str, ...] = ()
    oracle: OracleBound | None = None

    def results(self) -> dict:
        """`results.json`: {"policies": {name: fields}, "setup": ...}."""
        policies = dict(self.summaries)
        if self.oracle is not None:
            policies["oracle"] = {
                **self.oracle.as_dict(), "policy": "oracle", "offline_bound": True,
                "latency_p99_s": None, "oracle_share": 1.0,
            }
        return {
            "setup": {
                "trace": self.spec.trace, "rate_rps": self.spec.rate,
                "workers": self.spec.workers, "profile": self.spec.profile,
                "duration_s": self.spec.duration_s, "seed": self.spec.seed,
                "full_quality_capacity_rps": round(self.capacity_rps, 4),
                "offered_load": round((self.spec.rate or 0.0) / self.capacity_rps, 4),
            },
            "policies": policies,
        }


def full_quality_capacity(profile_spec: str, workers: int) -> float:
    """Requests/s the cluster sustains with every worker at the full level (planning batch):
    the reference for 'half capacity', 'near capacity' and '2x overload'."""
    profile = resolve_profile(profile_spec)
    slo = default_slo_s(config_for_profile(profile), profile)
    table = LevelTable.build(profile, slo)
    return workers * table.throughput[table.full]


def quality_goodput(record: RunRecord, duration_s: float) -> float:
    met = (record.level >= 0) & (record.finish <= record.deadline + 1e-9)
    return float(np.nansum(record.quality[met]) / duration_s)


@dataclass
class PolicyRun:
    """One policy's run, as `run_policy` returns it (small enough to ship from a Ray task):
    its summary, its per-request record, the level names and, if asked, the oracle bound."""

    name: str
    summary: dict
    record: RunRecord
    level_names: tuple[str, ...]
    oracle: OracleBound | None = None


def run_policy(spec: SimulationSpec, name: str, with_oracle: bool = False) -> PolicyRun:
    """`spec` under policy `name`; with the oracle bound of its arrivals and prompts (the same
    for every policy of a spec) when `with_oracle`, so no simulator has to leave this call."""
    runs: list[tuple[Simulator, RunRecord]] = []
    summary, wall = simulate(replace(spec, policy=name), on_record=lambda s, r: runs.append((s, r)))
    sim, record = runs.pop()
    summary["quality_goodput_rps"] = round(quality_goodput(record, spec.duration_s), 4)
    summary["wall_s"] = round(wall, 3)
    oracle = oracle_for(sim, spec.duration_s) if with_oracle else None
    return PolicyRun(name, summary, record, sim.plane.table.names, oracle)


Runner = Callable[[Callable[..., PolicyRun], list[tuple]], Iterable[PolicyRun]]
"""Calls `fn(*args)` for each args tuple and yields the results in order: `local_map` here,
`argus.baselines.ray_runner.ray_map` on a Ray cluster (one task per call)."""


def local_map(fn: Callable[..., PolicyRun], calls: list[tuple]) -> Iterator[PolicyRun]:
    return (fn(*args) for args in calls)


def compare(
    spec: SimulationSpec, policies: tuple[str, ...] = DEFAULT_POLICIES, with_oracle: bool = True,
    log: bool = False, runner: Runner = local_map,
) -> Comparison:
    """Every policy on `spec`; `runner` decides where each `run_policy` call runs (the first
    one also computes the oracle)."""
    result = Comparison(spec, full_quality_capacity(spec.profile, spec.workers))
    calls = [(spec, name, with_oracle and i == 0) for i, name in enumerate(policies)]
    first: RunRecord | None = None
    for run in runner(run_policy, calls):
        if first is not None and not np.array_equal(first.arrival, run.record.arrival):
            raise RuntimeError(f"policy {run.name} saw different arrivals")  # a seeding bug
        if first is None:
            first = run.record
            result.level_names = run.level_names
        result.oracle = result.oracle or run.oracle
        result.summaries[run.name] = run.summary
        result.records[run.name] = run.record
        if log:
            print(f"  {run.name}: {run.summary['requests']} requests in "
                  f"{run.summary['wall_s']:.1f} s", flush=True)
    if result.oracle is not None:
        bound = result.oracle.quality_goodput_rps
        for summary in result.summaries.values():
            share = summary["quality_goodput_rps"] / bound if bound > 0 else None
            summary["oracle_share"] = None if share is None else round(share, 4)
    return result


def format_table(results: dict) -> str:
    """Rows: policies (oracle last); columns: SLO violation %, mean relative quality %,
    goodput, p99 latency, share of oracle."""
    setup = results["setup"]
    head = (
        f"{setup['trace']} @ {setup['rate_rps']:.3g} req/s ({setup['offered_load']:.2f}x "
        f"full-quality capacity), {setup['workers']} workers, {setup['profile']}, "
        f"{setup['duration_s']:.0f} s, seed {setup['seed']}"
    )
    cols = f"{'policy':<11} {'SLO viol %':>10} {'quality %':>9} {'goodput/s':>9} " \
           f"{'p99 s':>7} {'of oracle %':>11}"
    lines = [head, cols, "-" * len(cols)]
    for name, s in results["policies"].items():
        def num(value: float | None, scale: float = 1.0, fmt: str = ".2f") -> str:
            return "-" if value is None else format(value * scale, fmt)

        lines.append(
            f"{name:<11} {num(s['slo_violation_ratio'], 100):>10} "
            f"{num(s['mean_relative_quality']):>9} {num(s['goodput_rps'], 1, '.3f'):>9} "
            f"{num(s['latency_p99_s'], 1, '.1f'):>7} {num(s.get('oracle_share'), 100, '.1f'):>11}"
        )
    return "\n".join(lines)
