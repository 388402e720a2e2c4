"""Degrade before drop: queued requests are re-levelled so that late arrivals fit."""

from __future__ import annotations

from control_helpers import two_level_profile

from argus.control.builtin import config_for_profile
from argus.control.plane import ControlPlane
from argus.control.profile import LevelProfile, Profile, VariantProfile
from argus.types import Request, RequestStatus


def _plane(profile: Profile, slo: float, **server: object) -> ControlPlane:
    config = config_for_profile(profile, server={"slo_s": slo, "queue_capacity": 1000, **server})
    plane = ControlPlane(config, profile, num_workers=1)
    plane.tick(0.0)
    return plane


def _three_levels() -> Profile:
    """full 1.0 s (q 1), mid 0.5 s (q 0.95), fast 0.25 s (q 0.5, below any floor)."""
    return Profile(
        name="three", hardware="test", quality_source="modelled", full_level="full",
        variants=[VariantProfile(name="v", load_time_s=1.0)],
        levels=[
            LevelProfile(name="full", variant="v", steps=20, service_time_s={1: 1.0},
                         mean_quality=1.0),
            LevelProfile(name="mid", variant="v", steps=10, service_time_s={1: 0.5},
                         mean_quality=0.95),
            LevelProfile(name="fast", variant="v", steps=2, service_time_s={1: 0.25},
                         mean_quality=0.5),
        ],
    )


def test_moves_respect_floor_and_queue_stays_consistent():
    plane = _plane(_three_levels(), slo=3.1)
    outcomes = [plane.admit(Request("p", 0.0, 3.1), 0.0) for _ in range(10)]
    queued = [r for r in outcomes if r.status == RequestStatus.QUEUED]
    # Six fit at mid (6 x 0.5 = 3.0 s); fast is below the floor minus the tolerance (0.8).
    assert [r.level for r in queued] == ["mid"] * 6
    assert plane.queues.count == [0, 6, 0] and plane.queues.images == 6
    # Every queued request comes out once, at its new level.
    served = [plane.next_batch(0, 0.0, 8) for _ in range(8)]
    assert sorted(r.request_id for b in served for r in b) == sorted(r.request_id for r in queued)
    assert plane.queues.total == 0 and plane.queues.work_s == [0.0]


def test_no_move_that_costs_more_quality_than_the_arrival_brings():
    # Degrading full -> fast loses 0.55 per request; an arrival at fast is worth 0.45: making
    # room for it would lose quality overall, so it is rejected and nothing moves.
    profile = two_level_profile(full_time=1.0, fast_time=0.5)
    profile.levels[1].mean_quality = 0.45
    plane = _plane(profile, slo=2.0)
    # Floor 0.5: full is the optimal level, fast (0.45) is within the redirect tolerance.
    first = [plane.admit(Request("p", 0.0, 2.0, quality_floor=0.5), 0.0) for _ in range(2)]
    assert [r.level for r in first] == ["full", "full"]
    late = plane.admit(Request("p", 0.0, 2.0, quality_floor=0.5), 0.0)
    assert late.status == RequestStatus.REJECTED
    assert [r.level for r in first] == ["full", "full"] and plane.releveler.moved == 0


def test_only_requests_due_no_later_than_the_arrival_move():
    profile = two_level_profile(full_time=1.0, fast_time=0.5)
    plane = _plane(profile, slo=10.0)
    early = plane.admit(Request("p", 0.0, 2.0, quality_floor=0.95), 0.0)
    later = plane.admit(Request("p", 0.0, 9.0, quality_floor=0.95), 0.0)
    assert early.level == later.level == "full"
    # Due at 2.0 behind 2 s of work: moving `later` (due 9.0, runs after it) would not help.
    urgent = plane.admit(Request("p", 0.0, 2.0, quality_floor=0.95), 0.0)
    assert urgent.status == RequestStatus.QUEUED
    assert later.level == "full"
    assert early.level == "fast" or urgent.level == "fast"


def test_pinned_requests_are_not_moved_but_room_is_made_for_them():
    profile = two_level_profile(full_time=1.0, fast_time=0.5)
    plane = _plane(profile, slo=2.0)
    pinned = plane.admit(Request("p", 0.0, 2.0, no_approximation=True), 0.0)
    free = plane.admit(Request("p", 0.0, 2.0, quality_floor=0.95), 0.0)
    assert pinned.level == free.level == "full"
    # Due at 2.6 behind 2 s of full work plus its own 1 s: it fits once the free one moves.
    other = plane.admit(Request("p", 0.0, 2.6, pinned_steps=10), 0.0)
    assert other.status == RequestStatus.QUEUED and other.level == "full"
    assert pinned.level == "full" and free.level == "fast"


def test_cancelled_and_dispatched_requests_are_never_moved():
    plane = _plane(_three_levels(), slo=3.1)
    a = plane.admit(Request("p", 0.0, 3.1, quality_floor=0.99), 0.0)
    b = plane.admit(Request("p", 0.0, 3.1, quality_floor=0.99), 0.0)
    assert plane.cancel(a.request_id) is a
    [running] = plane.next_batch(0, 0.0, 1)
    assert running is b
    for _ in range(6):
        plane.admit(Request("p", 0.0, 3.1, quality_floor=0.99), 0.0)
    assert plane.releveler.moved > 0
    assert a.status == RequestStatus.CANCELLED and a.level == "full"
    assert b.status == RequestStatus.RUNNING and b.level == "full"
