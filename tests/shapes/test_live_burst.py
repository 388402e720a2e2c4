"""Degrade before drop, live: a burst on the embedded default server (shapes family, one worker).

Auto must answer at least as much quality-weighted goodput (sum of shapes-scorer scores of the
images answered within the SLO) as pinning the best fixed step count, and (almost) never late.
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

BURST = 64
"""About twice what l-5 serves in the SLO (33 of a burst on a quiet core with the shipped
profile). Only l-5 is compared here: `benchmarks/live_burst.py` runs every pinned count (l-3 and
l-2 answer more of a 100-burst than auto on this 2-core machine; see docs/live-evaluation.md)."""
ROUNDS = 3
"""Rounds compared in total. Auto's goodput over pinned l-5's, two rounds at a time, spread over
0.85-1.54 in this session's runs (pinned l-5 answers more since the queue capacity is derived
from the profile): three rounds narrow it."""
LATE_SHARE = 0.02
NOISE = 0.95
"""Timing noise between bursts on a shared CPU: auto must reach this share of the best pinned
setting's goodput and answered count (before re-levelling it reached 0.69)."""


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    running = LiveServer(create_app(load_config())).wait_ready(240)
    yield running
    running.stop()


def _burst(server: LiveServer, model: str | None, seed: int) -> BurstResult:
    prompts = sample_prompts(seed, BURST, held_out=True)
    return run_burst(server.url, prompts, [5000 + 7 * i for i in range(BURST)], model)


def test_burst_auto_beats_pinned_steps_and_never_answers_late(server: LiveServer) -> None:
    """Rounds of pinned then auto, compared in total: one burst's goodput varies by a
    quarter between runs on a shared 2-core machine (the client, the HTTP server and the worker
    share it), more than auto's margin over pinned."""
    # A serving server has measured its speed under load; a fresh one has only its start probe.
    run_burst(server.url, sample_prompts(9, 16, held_out=True), list(range(16)))
    pinned: list[BurstResult] = []
    auto: list[BurstResult] = []
    for _ in range(ROUNDS):
        pinned.append(_burst(server, "l-5", seed=3))  # the best pinned count on this family
        auto.append(_burst(server, None, seed=3))
    for result in pinned + auto:
        assert set(result.statuses) <= {200, 429, 503} and result.retry_after_missing == 0
    # Deadlines are checked at the measured slowdown's mean + one deviation, and a 0.1 s
    # margin is kept for answering: a rare outlier of the shared machine may still land late.
    answered = sum(r.statuses.get(200, 0) for r in pinned + auto)
    assert sum(r.late_answers for r in pinned + auto) <= LATE_SHARE * answered
    assert sum(len(r.in_slo) for r in auto) >= NOISE * sum(len(r.in_slo) for r in pinned)
    assert sum(r.quality_weighted_goodput for r in auto) >= NOISE * sum(
        r.quality_weighted_goodput for r in pinned)
    # Degrading, not only the fast level: several levels serve the burst.
    assert all(len(r.levels) >= 2 for r in auto)
