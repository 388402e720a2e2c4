"""Degrade before drop, live: a burst on the embedded default server (shapes family, one worker).

Auto must answer at least as much quality-weighted goodput (sum of shapes-scorer scores of the
images answered within the SLO) as pinning the best fixed step count, and never answer late.
(`benchmarks/live_burst.py` runs the full table: bursts of 100 against every pinned count.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from live_server import LiveServer

from argus.api import create_app
from argus.bench.burst import BurstResult, run_burst
from argus.defaults import load_config
from argus.shapes.grammar import sample_prompts

BURST = 48
"""Within the default queue capacity (64 images), about twice what l-5 serves in the SLO."""
NOISE = 0.95
"""Timing noise between two bursts on a shared CPU: auto must reach this share of the best
pinned setting's goodput (before re-levelling it reached 0.69)."""


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    running = LiveServer(create_app(load_config())).wait_ready(240)
    yield running
    running.stop()


def _burst(server: LiveServer, model: str | None, seed: int) -> BurstResult:
    prompts = sample_prompts(seed, BURST, held_out=True)
    return run_burst(server.url, prompts, [5000 + 7 * i for i in range(BURST)], model)


def test_burst_auto_beats_pinned_steps_and_never_answers_late(server: LiveServer) -> None:
    pinned = _burst(server, "l-5", seed=3)  # the best pinned count on this family
    auto = _burst(server, None, seed=3)
    for result in (pinned, auto):
        assert result.late_answers == 0
        assert set(result.statuses) <= {200, 429, 503} and result.retry_after_missing == 0
    assert len(auto.in_slo) >= len(pinned.in_slo)
    assert auto.quality_weighted_goodput >= NOISE * pinned.quality_weighted_goodput
    # Degrading, not only the fast level: several levels serve the burst.
    assert len(auto.levels) >= 2
