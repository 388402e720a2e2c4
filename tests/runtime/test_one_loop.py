"""One cluster loop: the same scripted scenario (a burst, a worker crash, cancels, variant loads)
played through the simulator (cluster loop + simulated executor) and through the live runtime
(the real dispatcher over a scripted worker pool, same virtual clock) gives identical decisions:
level, worker and start time of every run, every variant load, and every outcome."""

from __future__ import annotations

import asyncio

import pytest
from fake_pool import LiveDriver, scripted_dispatcher

from argus.config import ArgusConfig
from argus.control.builtin import config_for_profile
from argus.control.plane import ControlPlane
from argus.control.profile import LevelProfile, Profile, VariantProfile
from argus.runtime.base import GenerationCancelledError, GenerationRequest
from argus.runtime.messages import RunBatch
from argus.sim.scripted import Decisions, Scenario, play, run_scripted

MAX_BATCH = 4


def two_variant_profile() -> Profile:
    """A large and a small variant with quick loads, two step levels each, batches up to 4."""
    def level(name: str, variant: str, steps: int, t1: float, quality: float) -> LevelProfile:
        times = {b: t1 * (1 + 0.6 * (b - 1)) for b in (1, 2, 4)}
        return LevelProfile(name=name, variant=variant, steps=steps, service_time_s=times,
                            mean_quality=quality)

    return Profile(
        name="two-variant", hardware="test", quality_source="modelled", full_level="big-20",
        variants=[VariantProfile(name="big", load_time_s=1.5),
                  VariantProfile(name="small", load_time_s=0.8)],
        levels=[
            level("big-20", "big", 20, 1.0, 1.0),
            level("big-10", "big", 10, 0.5, 0.93),
            level("small-20", "small", 20, 0.4, 0.85),
            level("small-10", "small", 10, 0.2, 0.78),
        ],
    )


def scenario() -> Scenario:
    """Steady arrivals, then a burst well past capacity, then quiet; three cancels (two running,
    one queued in the burst) and a crash of a busy worker in the burst."""
    steady = [3.0 + 0.7 * i for i in range(10)]
    burst = [11.0 + 0.05 * i for i in range(40)]
    tail = [20.0 + 1.1 * i for i in range(8)]
    arrivals = steady + burst + tail
    return Scenario(
        arrivals=arrivals,
        n=[1 + (i % 3 == 0) for i in range(len(arrivals))],
        crashes=[(11.6, 1)],
        cancels=[(11.9, 12), (3.9, 1), (12.6, 40)],
        restart_s=0.7,
        end_s=40.0,
    )


def config(profile: Profile, policy: str = "argus", **server: object) -> ArgusConfig:
    # No answering margin: the scripted timings put some finishes exactly at their deadline.
    cfg = config_for_profile(profile, server={"workers": 3, "queue_capacity": 10_000,
                                              "response_margin_s": 0.0, **server})
    return cfg.model_copy(update={"control": cfg.control.model_copy(update={"policy": policy})})


def simulated(profile: Profile, script: Scenario, policy: str = "argus") -> Decisions:
    cfg = config(profile, policy)
    plane = ControlPlane(cfg, profile, num_workers=cfg.server.workers)
    return run_scripted(plane, script, MAX_BATCH)


def live(profile: Profile, script: Scenario, policy: str = "argus"
         ) -> tuple[Decisions, LiveDriver]:
    dispatcher, pool, clock = scripted_dispatcher(config(profile, policy), profile, MAX_BATCH)
    loop = asyncio.new_event_loop()
    try:
        driver = LiveDriver(dispatcher, pool, clock, script, loop)
        play(script, driver)
        driver.decisions.outcomes = driver.outcomes()
    finally:
        loop.close()
    return driver.decisions, driver


def test_live_and_simulated_decisions_are_identical() -> None:
    profile, script = two_variant_profile(), scenario()
    sim = simulated(profile, script)
    real, _ = live(profile, script)
    assert len(sim.runs) > len(script.arrivals) / 2  # the scenario exercises the loop
    assert {level for _, level, _, _ in sim.runs} >= {"big-20", "big-10"}  # it degrades
    assert len(sim.loads) > len(profile.variants)  # a variant switch, not only boot loads
    assert_same(sim, real)


@pytest.mark.parametrize("policy", ["diffserve", "clipper-ha", "proteus"])
def test_baselines_decide_alike_live_and_simulated(policy: str) -> None:
    """A cascade (diffserve re-dispatches on completion) and planned baselines, same check."""
    import argus.baselines  # noqa: F401 - registers the baselines

    profile, script = two_variant_profile(), scenario()
    sim = simulated(profile, script, policy)
    assert len(sim.runs) > len(script.arrivals) / 2
    assert_same(sim, live(profile, script, policy)[0])


def assert_same(sim: Decisions, real: Decisions) -> None:
    assert real.loads == sim.loads
    assert real.runs == sim.runs
    assert {i: s for i, (s, _) in real.outcomes.items()} == \
        {i: s for i, (s, _) in sim.outcomes.items()}


def test_crash_requeues_the_batch_once_and_cancel_ends_a_request() -> None:
    profile, script = two_variant_profile(), scenario()
    decisions, driver = live(profile, script)
    runs: dict[int, list[tuple[int, float]]] = {}
    for index, _, worker, start in decisions.runs:
        runs.setdefault(index, []).append((worker, start))
    lost = {i for i, r in runs.items() if len(r) > 1}
    assert lost  # the crash hit a running batch
    for index in lost:  # it ran on the crashed worker, then once more after the crash
        (first_worker, first), (_, again) = runs[index]
        crash_s, crashed = script.crashes[0]
        assert len(runs[index]) == 2 and first_worker == crashed and first < crash_s <= again
        assert decisions.outcomes[index][0] == "completed"
    cancelled = driver.handles[12]
    assert {decisions.outcomes[i][0] for i in (1, 12, 40)} == {"cancelled"}
    with pytest.raises(GenerationCancelledError):
        cancelled.outcome.result()


def test_stalled_worker_is_restarted_by_the_watchdog_and_its_batch_retried() -> None:
    profile = two_variant_profile()
    cfg = config(profile, workers=1, worker_stall_s=2.0)
    dispatcher, pool, clock = scripted_dispatcher(cfg, profile, MAX_BATCH)
    script = Scenario(arrivals=[3.0], end_s=10.0)
    loop = asyncio.new_event_loop()
    try:
        driver = LiveDriver(dispatcher, pool, clock, script, loop)
        driver.boot(0.0)
        while pool.next_time() < 3.0:
            driver.report()
        driver.arrive(0, 3.0)
        pool.stall(0)  # hangs mid-batch: nothing more is reported
        driver.tick(4.0)
        assert pool.restarts == []  # silent for 1 s: within worker_stall_s
        driver.tick(5.5)
        assert pool.restarts == [0]
        driver.restart(0, 6.0)
        while pool.next_time() < 10.0:
            driver.report()
    finally:
        loop.close()
    starts = [start for i, _, _, start in driver.decisions.runs if i == 0]
    assert starts[0] == 3.0 and starts[1] >= 6.0  # retried on the restarted worker
    handle = driver.handles[0]
    assert not isinstance(handle, Exception)
    assert handle.outcome.result().level  # served by the restarted worker, not failed


def test_a_request_is_costed_by_its_pixels() -> None:
    """Bounded cost: a request twice the native size per side costs 4x its level's time per
    image in admission, planning and the batch it runs in (profiles time the native size)."""
    profile = two_variant_profile()
    dispatcher, pool, clock = scripted_dispatcher(config(profile, workers=1), profile, MAX_BATCH)
    loop = asyncio.new_event_loop()
    try:
        driver = LiveDriver(dispatcher, pool, clock, Scenario(arrivals=[]), loop)
        driver.boot(0.0)
        while pool.next_time() < 3.0:
            driver.report()
        clock.now = 3.0
        native = dispatcher.config.variant("big").resolution
        specs = [GenerationRequest(prompt="a red circle"),
                 GenerationRequest(prompt="a red circle", width=2 * native, height=2 * native)]
        handles = [loop.run_until_complete(dispatcher.submit(spec)) for spec in specs]
        requests = [dispatcher.request_of(h.request_id) for h in handles]
        assert [r.work_scale for r in requests] == [1.0, 4.0]
        runs = {}
        while pool.next_time() < 30.0:
            for _, _, command in pool.sent:
                if isinstance(command, RunBatch) and command.jobs[0].request_id not in runs:
                    runs[command.jobs[0].request_id] = (len(command.jobs),
                                                         pool.duration(command))
            pool.deliver_next()
        levels = {lv.name: lv for lv in profile.levels}
        # Each ran as its own batch (other size), the large one for 4x its level's time.
        for request, scale in zip(requests, (1, 4), strict=True):
            jobs, seconds = runs[request.request_id]
            assert jobs == 1
            assert seconds == pytest.approx(scale * levels[request.level].service_time_s[1])
        assert handles[1].outcome.result().steps  # and it was served
    finally:
        loop.close()
