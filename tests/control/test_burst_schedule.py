"""A burst on one worker: what the plane promises and how it batches (the shipped shapes profile,
the default server's, and small synthetic ones)."""

from __future__ import annotations

import numpy as np
import pytest
from control_helpers import make_plane

from argus.control.builtin import resolve_profile
from argus.control.plane import ControlPlane
from argus.control.policy import Plan
from argus.control.profile import LevelProfile, Profile, VariantProfile
from argus.control.relevel import UPGRADE_EXTRA_SHARE
from argus.control.running import RunningWork
from argus.defaults import load_config
from argus.shapes.grammar import sample_prompts
from argus.sim.scripted import Scenario, SimulatedDriver, play
from argus.types import Request, RequestStatus


def test_running_work_is_what_the_started_batches_have_left():
    work = RunningWork(variants=2, workers=3)
    work.start(0, 0, end=1.0)
    work.start(1, 0, end=2.0)
    work.start(2, 1, end=5.0)
    assert work.left_s(0, 0.25) == pytest.approx(0.75 + 1.75)
    assert work.left_s(0, 1.5) == pytest.approx(0.5)  # the first batch is over its end
    work.free(0)  # ... and then reported: nothing counted twice
    assert work.left_s(0, 1.5) == pytest.approx(0.5)
    work.start(1, 0, end=3.0)  # the worker's next batch replaces its last one
    assert work.left_s(0, 2.0) == pytest.approx(1.0)
    work.free(1)
    work.free(1)
    assert work.left_s(0, 2.0) == 0.0 and work.left_s(1, 2.0) == pytest.approx(3.0)


def _shapes_plane(workers: int = 1) -> ControlPlane:
    config = load_config()
    plane = ControlPlane(config, resolve_profile(None, config), num_workers=workers)
    plane.tick(0.0)
    return plane


def test_an_arrival_waits_for_the_running_batch_remainder_not_half_of_its_work():
    plane = _shapes_plane()
    plane.admit(Request("a large red circle", 0.0, plane.finish_within_s), 0.0)
    batch = plane.next_batch(0, 0.0, 8)
    level = plane.table.index[batch[0].level]
    run_s = plane.table.service_s[level][0]
    v = plane.table.variant[level]
    assert plane._backlog_s(v, 0.25 * run_s) == pytest.approx(0.75 * run_s)


def _burst(plane: ControlPlane, count: int, spread: float, pinned: str | None = None) \
        -> list[Request]:
    scenario = Scenario(arrivals=[0.01 + spread * i / count for i in range(count)], end_s=10.0)
    driver = SimulatedDriver(plane, scenario, 8, boot=False)
    for request, prompt in zip(driver.requests, sample_prompts(3, count, held_out=True),
                               strict=True):
        request.prompt = prompt
        if pinned:
            request.pinned_level, request.pinned_variant = pinned, "shapes-l"
            request.pinned_steps = int(pinned.split("-")[1])
    play(scenario, driver)
    return driver.requests


def _goodput(plane: ControlPlane, requests: list[Request]) -> float:
    table = plane.table
    return sum(table.mean_quality[table.index[r.level]] for r in requests if r.met_slo)


@pytest.mark.parametrize("count", [48, 64, 100])
@pytest.mark.parametrize("spread", [0.05, 0.3, 1.0])
def test_a_burst_is_served_about_as_well_as_the_best_fixed_step_count(count, spread):
    """Degrade before drop, simulated on the default server: `count` requests within `spread`
    seconds on one worker. Auto's mean-quality-weighted goodput is within 7% of the best pinned
    step count chosen in hindsight (it may answer fewer at better quality); before the burst
    schedule it was 15-25% short (it answered 39 of 48 where pinned l-3 answered all)."""
    plane = _shapes_plane()
    auto = _burst(plane, count, spread)
    pinned = {level: _burst(_shapes_plane(), count, spread, level)
              for level in ("l-20", "l-10", "l-5", "l-3", "l-2")}
    best_goodput = max(_goodput(plane, served) for served in pinned.values())
    assert _goodput(plane, auto) >= 0.93 * best_goodput


def test_while_a_full_batch_waits_the_worker_runs_full_batches_in_deadline_order():
    plane = _shapes_plane()
    for i, prompt in enumerate(sample_prompts(5, 40, held_out=True)):
        plane.admit(Request(prompt, 0.001 * i, 0.001 * i + plane.finish_within_s), 0.001 * i)
    now = 0.05
    while plane.queues.total >= 8:
        waiting = sorted(r.deadline_s for r in plane.queues.queued())
        batch = plane.next_batch(0, now, 8)
        assert sum(r.n for r in batch) == 8 and len({r.level for r in batch}) == 1
        assert sorted(r.deadline_s for r in batch) == waiting[:8]
        level = plane.table.index[batch[0].level]
        now += plane.table.service_s[level][7]
        for request in batch:
            plane.complete(request, now)
        plane.running.free(0)


def test_the_first_request_before_any_plan_is_not_upgraded_far_past_its_routed_level():
    """A request routed to a variant no worker holds takes an in-time level of one that does,
    but not one that runs much longer than its routed level (the worker would be lost to a
    burst arriving meanwhile)."""
    plane = _shapes_plane()
    request = plane.admit(Request(sample_prompts(3, 1, held_out=True)[0], 0.0,
                                  plane.finish_within_s), 0.0)
    assert request.status is RequestStatus.QUEUED
    table, level = plane.table, plane.table.index[request.level]
    routed = table.index[request.optimal_level]
    assert plane.workers.per_variant[table.variant[level]] == 1
    assert table.service_s[level][0] <= table.service_s[routed][0] \
        + UPGRADE_EXTRA_SHARE * plane.slo_s + 1e-9


def _two_variants() -> Profile:
    levels = [LevelProfile(name=f"{v}-{s}", variant=v, steps=s, service_time_s={1: s / 10},
                           mean_quality=q)
              for v, s, q in (("a", 10, 1.0), ("a", 5, 0.95), ("b", 10, 0.97), ("b", 5, 0.93))]
    return Profile(name="two-variants", hardware="test", quality_source="modelled",
                   full_level="a-10", levels=levels,
                   variants=[VariantProfile(name="a", load_time_s=0.5),
                             VariantProfile(name="b", load_time_s=0.5)])


def test_a_plan_does_not_take_the_only_worker_from_queued_work():
    plane = make_plane(_two_variants(), workers=1, slo_s=10.0)
    assert plane.worker_level(0).startswith("a")
    queued = [plane.admit(Request("p", 0.0, 10.0), 0.0) for _ in range(3)]
    assert all(r.status is RequestStatus.QUEUED and r.level.startswith("a") for r in queued)
    plane._apply(Plan(time_s=0.1, workers=np.array([0, 0, 1, 0])))  # all on b-10
    assert plane.worker_level(0).startswith("a")  # kept until its queue is served
    assert all(r.status is RequestStatus.QUEUED and r.level.startswith("a") for r in queued)


def test_the_default_queue_holds_what_the_workers_serve_in_one_slo():
    plane = _shapes_plane(workers=2)
    fastest = min(plane.table.image_time_s)
    assert plane.queue_capacity >= 2 * plane.slo_s / fastest > 64


def test_an_arrival_does_not_pay_the_queue_s_debt():
    """The worker turned out slower than planned (here: its running batch ends 0.3 s later than
    admission assumed), so the queued work already ends past the next arrival's deadline. The
    repair is owed to the queue: the arrival is judged on what it adds, and is admitted with
    the repair moves, where charging it the whole debt rejected it."""
    plane = _shapes_plane()
    deadline = plane.finish_within_s
    for prompt in sample_prompts(5, 40, held_out=True):
        plane.admit(Request(prompt, 0.0, deadline), 0.0)
    assert plane.queues.total == 40
    v = plane.table.variant[plane.table.full]
    plane.running.start(0, v, end=0.3)  # a batch admission did not count
    assert plane.queue_debt_s(v, 0.0, deadline) > 0.1
    moved = plane.releveler.moved
    late = plane.admit(Request(sample_prompts(6, 1, held_out=True)[0], 0.0, deadline), 0.0)
    assert late.status is RequestStatus.QUEUED
    assert plane.releveler.moved > moved
    assert plane.queue_debt_s(v, 0.0, deadline) <= 1e-9


def test_a_request_wider_than_the_profiled_batches_is_timed_as_dispatch_times_it():
    """Rescue and upgrades judge a request's run alone the way the dispatch check does: linear
    beyond the largest profiled batch (they took the largest batch's time, so 16 images were
    thought to finish in the time of 8)."""
    plane = _shapes_plane()
    level = plane.table.full
    service = plane.table.service_s[level]
    wide = Request("a red circle", 0.0, 10.0, n=2 * len(service))
    assert plane.releveler.alone_s(wide, level) == pytest.approx(2 * service[-1])
    just_enough = 1.5 * service[-1]
    wide.deadline_s = just_enough
    assert not plane.releveler.in_time(wide, level, 0.0)
