"""The degrade-before-drop promise on the workload zoo (simulated a100-sdxl cluster, 8 workers).

On every zoo workload at 0.5x, 1x and 2x the cluster's full-quality capacity, argus must not
answer fewer requests within the SLO than the two references the promise names, and must
serve at least their quality-weighted goodput (sum of relative quality of the requests served
within the SLO, per second): before re-levelling, argus had 4-16 points more violations than
`random` on bursty traces. The margins (`VIOLATION_SLACK`, `GOODPUT_SHARE`) are the seed noise
of 300-s runs; docs/evaluation.md holds the full grid against every baseline, misses included.
"""

from __future__ import annotations

import pytest

from argus.baselines.compare import compare, full_quality_capacity
from argus.sim.run import SimulationSpec
from argus.sim.traces import ZOO_TRACES

WORKERS = 8
DURATION_S = 300.0
LOADS = (0.5, 1.0, 2.0)
VIOLATION_SLACK = {"clipper-ha": 0.005, "random": 0.015}
GOODPUT_SHARE = 0.98
CELLS = [(trace, load) for trace in ZOO_TRACES for load in LOADS]
KNOWN_MISSES: dict[tuple[str, float], str] = {}
"""Cells argus is known to miss, with why (strict xfails: a fixed miss must leave this list).
bursty-sessions+mixed at 0.5x left it when plans stopped taking the last worker from queued work
(13 of 329 requests had expired at sdxl levels after mid-burst re-plans)."""


def _cell(trace: str, load: float) -> object:
    miss = KNOWN_MISSES.get((trace, load))
    marks = [pytest.mark.xfail(reason=miss, strict=True)] if miss else []
    return pytest.param(trace, load, id=f"{trace}-{load}x", marks=marks)


@pytest.mark.parametrize(("trace", "load"), [_cell(t, x) for t, x in CELLS])
def test_argus_keeps_the_promise_on_the_zoo(trace: str, load: float) -> None:
    seed = CELLS.index((trace, load))  # a different draw per cell, reproducible
    capacity = full_quality_capacity("a100-sdxl", WORKERS)
    spec = SimulationSpec(trace=trace, rate=load * capacity, workers=WORKERS,
                          duration_s=DURATION_S, seed=seed)
    results = compare(spec, policies=("argus", "random", "clipper-ha"),
                      with_oracle=False).results()["policies"]
    argus = results["argus"]
    for name, slack in VIOLATION_SLACK.items():
        assert argus["slo_violation_ratio"] <= results[name]["slo_violation_ratio"] + slack, name
        assert argus["quality_goodput_rps"] >= GOODPUT_SHARE * results[name][
            "quality_goodput_rps"], name
