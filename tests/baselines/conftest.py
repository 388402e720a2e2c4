"""A small simulated cluster on the `a100-sdxl` profile, shared by the baseline tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from argus.control.builtin import a100_sdxl, config_for_profile
from argus.control.plane import ControlPlane
from argus.control.profile import Profile
from argus.sim.simulator import RunRecord, Simulator
from argus.sim.traces import load_trace

WORKERS = 8
DURATION_S = 150.0


@dataclass
class Run:
    plane: ControlPlane
    sim: Simulator
    record: RunRecord
    duration_s: float = DURATION_S

    @property
    def met(self) -> np.ndarray:
        return (self.record.level >= 0) & (self.record.finish <= self.record.deadline + 1e-9)

    @property
    def served_levels(self) -> set[str]:
        return {self.plane.table.names[i] for i in np.unique(self.record.level) if i >= 0}

    def quality_goodput(self) -> float:
        return float(np.nansum(self.record.quality[self.met]) / self.duration_s)

    def mean_quality(self) -> float:
        return float(np.nanmean(self.record.quality[self.record.level >= 0]))

    def level_share(self) -> np.ndarray:
        served = self.record.level[self.record.level >= 0]
        return np.bincount(served, minlength=len(self.plane.table)) / len(served)


@pytest.fixture(scope="session")
def profile() -> Profile:
    return a100_sdxl()


@pytest.fixture(scope="session")
def simulate(profile: Profile):  # noqa: ANN201 - factory
    config = config_for_profile(profile, server={"queue_capacity": 100_000})
    cache: dict[tuple, Run] = {}

    def run(policy: str, rate: float, seed: int = 0, trace: str = "poisson") -> Run:
        key = (policy, rate, seed, trace)
        if key not in cache:
            plane = ControlPlane(config, profile, num_workers=WORKERS, policy=policy, seed=seed)
            sim = Simulator(plane, load_trace(trace, rate, DURATION_S, seed=seed), seed=seed)
            cache[key] = Run(plane, sim, sim.run(DURATION_S))
        return cache[key]

    return run


@pytest.fixture(scope="session")
def capacity(simulate) -> float:  # noqa: ANN001
    """Requests/s the cluster sustains at the full level (planning batch)."""
    plane = simulate("clipper-ha", 0.5).plane
    return WORKERS * plane.table.throughput[plane.table.full]
