"""One simulation run from plain arguments: profile + trace + policy -> summary dict (JSON-ready).
Used by `argus simulate`, the benchmarks and the tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from argus.control.builtin import config_for_profile, resolve_profile
from argus.control.levels import LevelTable, default_slo_s
from argus.control.plane import ControlPlane
from argus.control.predictor import ProfilePredictor, QualityPredictor, TablePredictor
from argus.sim.report import summarise
from argus.sim.simulator import RunRecord, Simulator
from argus.sim.traces import load_trace

QUEUE_PER_WORKER = 64
"""Queue capacity per simulated worker (the live server's default for one worker)."""


@dataclass
class SimulationSpec:
    trace: str
    rate: float | None
    workers: int
    profile: str = "a100-sdxl"
    policy: str = "argus"
    duration_s: float = 600.0
    seed: int = 0
    predictor: str = "profile"
    """`profile` (per-level means + cache similarity), `table` (per-prompt oracle) or a trained
    predictor file."""
    quality_floor: float | None = None
    slo_s: float | None = None
    interval_s: float | None = None
    compress: bool = False
    data_dir: Path | None = None


def build_predictor(spec: str, table: LevelTable, bands: list, band_steps: int) -> QualityPredictor:
    base = ProfilePredictor(table, bands, band_steps)
    if spec == "profile":
        return base
    if spec == "table":
        if not table.profile.prompts:
            raise ValueError("--predictor table needs a profile with a per-prompt table")
        return TablePredictor(table, base)
    from argus.control.training import LinearPredictor

    return LinearPredictor.load(spec, table)


def simulate(
    spec: SimulationSpec, progress: bool = False,
    on_record: Callable[[Simulator, RunRecord], None] | None = None,
) -> tuple[dict, float]:
    """Run one simulation; returns (summary, wall seconds of the event loop). `on_record` sees
    the simulator and its per-request record (`argus compare` derives the oracle from them)."""
    if spec.workers < 1:
        raise ValueError("--workers must be >= 1")
    if spec.duration_s <= 0:
        raise ValueError("--duration must be > 0")
    profile = resolve_profile(spec.profile)
    control: dict = {"policy": spec.policy}
    if spec.quality_floor is not None:
        control["quality_floor"] = spec.quality_floor
    server: dict = {"queue_capacity": QUEUE_PER_WORKER * spec.workers}
    if spec.slo_s is not None:
        server["slo_s"] = spec.slo_s
    config = config_for_profile(profile, control=control, server=server)
    table = LevelTable.build(profile, default_slo_s(config, profile))
    predictor = build_predictor(
        spec.predictor, table, config.cache.similarity_bands, config.cache.band_steps
    )
    trace = load_trace(spec.trace, spec.rate, spec.duration_s, spec.seed, spec.data_dir,
                       spec.compress)
    plane = ControlPlane(config, profile, predictor, spec.workers, seed=spec.seed)
    simulator = Simulator(plane, trace, seed=spec.seed)
    started = time.perf_counter()
    record = simulator.run(spec.duration_s, progress=progress)
    wall = time.perf_counter() - started
    if on_record is not None:
        on_record(simulator, record)
    interval = spec.interval_s or max(plane.period_s, spec.duration_s / 120)
    meta = {
        "trace": spec.trace,
        "trace_source": trace.source,
        "rate_rps": spec.rate,
        "workers": spec.workers,
        "profile": profile.name,
        "policy": plane.policy.name,
        "predictor": spec.predictor,
        "duration_s": spec.duration_s,
        "seed": spec.seed,
        "quality_floor": config.control.quality_floor,
    }
    summary = summarise(record, plane, spec.duration_s, interval,
                        simulator.quality_model.label, meta)
    return summary, wall
