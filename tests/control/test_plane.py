from __future__ import annotations

import random

import numpy as np
import pytest
from control_helpers import make_plane, two_level_profile

from argus.control import policy as policy_module
from argus.control.builtin import a100_sdxl, config_for_profile, profile_from_config
from argus.control.plane import ControlPlane
from argus.control.policy import Plan, Policy, make_policy, policy_names, register_policy
from argus.types import Rejection, Request, RequestStatus


def request(plane: ControlPlane, now: float, sim: float | None = 0.99, **kw) -> Request:
    return Request("a red cube", now, now + plane.slo_s, cache_similarity=sim, **kw)


def test_admit_fills_prediction_and_optimal_level(sdxl_plane):
    hit = sdxl_plane.admit(request(sdxl_plane, 0.0, sim=0.97), 0.0)
    miss = sdxl_plane.admit(request(sdxl_plane, 0.0, sim=0.2), 0.0)
    assert hit.status == RequestStatus.QUEUED
    assert set(hit.predicted_quality) == set(sdxl_plane.table.names)
    # A near-duplicate prompt tolerates the deepest cache skip; a miss needs the full level.
    assert hit.optimal_level == "sdxl-k25"
    assert miss.optimal_level == "sdxl-k0"
    assert hit.level == "sdxl-k25" and miss.level == "sdxl-k0"


def test_next_batch_is_edf_and_compatible(sdxl_plane):
    plane = sdxl_plane
    [plane.admit(request(plane, t, sim=0.2), t) for t in (0.3, 0.1, 0.2)]
    batch = plane.next_batch(0, 0.5, max_batch=8)
    assert [r.arrival_s for r in batch] == [0.1, 0.2, 0.3]
    assert {r.level for r in batch} == {"sdxl-k0"}
    assert all(r.status == RequestStatus.RUNNING and r.start_s == 0.5 for r in batch)


def test_a_batch_holds_only_requests_the_engine_runs_in_one_call(sdxl_plane):
    """Requests of one level with other engine terms (size, guidance) are not batch-mates: the
    batch stops at the first one, so one plane batch is one engine call."""
    plane = sdxl_plane
    keys = [(64, 64, None), (64, 64, None), (32, 32, None), (64, 64, None)]
    for i, key in enumerate(keys):
        plane.admit(request(plane, 0.1 * i, sim=0.2, batch_key=key), 0.1 * i)
    first = plane.next_batch(0, 0.5, max_batch=8)
    assert [r.batch_key for r in first] == [(64, 64, None)] * 2
    second = plane.next_batch(1, 0.5, max_batch=8)
    assert [r.batch_key for r in second] == [(32, 32, None)]


def test_batch_size_respects_earliest_deadline():
    profile = two_level_profile()
    plane = make_plane(profile, workers=1)
    for t in range(4):
        plane.admit(Request("p", float(t) * 0.01, 10.0), float(t) * 0.01)
    batch = plane.next_batch(0, 0.1, max_batch=8)
    assert len(batch) >= 1
    assert 0.1 + profile.level("full").service_time(len(batch)) <= 10.0


def test_request_wider_than_batch_limit_runs_alone_and_does_not_block():
    profile = two_level_profile()  # batch 1 only
    plane = make_plane(profile, workers=1)
    wide = plane.admit(Request("p", 0.0, 100.0, n=3, pinned_steps=10), 0.0)
    narrow = plane.admit(Request("q", 0.01, 100.0, pinned_steps=10), 0.01)
    assert wide.status == narrow.status == RequestStatus.QUEUED
    assert plane.next_batch(0, 0.1, max_batch=1) == [wide]
    assert plane.next_batch(0, 0.2, max_batch=1) == [narrow]


def _late_burst(policy: str | Policy | None = None) -> list[Request]:
    profile = two_level_profile(full_time=1.0, fast_time=0.5)
    config = config_for_profile(profile, server={"slo_s": 3.6, "queue_capacity": 1000})
    plane = ControlPlane(config, profile, num_workers=1, policy=policy)
    plane.tick(0.0)
    # Floor 0.95: the optimal level is full; fast (0.9) is within the 0.1 redirect tolerance.
    return [plane.admit(Request("p", 0.0, 3.6, quality_floor=0.95), 0.0) for _ in range(12)]


def test_burst_degrades_queued_requests_before_rejecting():
    # One worker, 3.6 s: three full requests fit, or seven fast ones (6.3 > 3 x 1.0 + 0.9 in
    # total quality): the queued full ones are re-levelled to make room.
    outcomes = _late_burst()
    levels = [r.level for r in outcomes if r.status == RequestStatus.QUEUED]
    assert levels == ["fast"] * 7
    assert sum("re-levelled from full to fast" in (r.reason or "") for r in outcomes) >= 3
    rejected = [r for r in outcomes if r.status == RequestStatus.REJECTED]
    assert len(rejected) == 5 and all(r.reason.startswith("overloaded") for r in rejected)
    assert {r.rejection for r in rejected} == {Rejection.OVERLOADED}


class _NoDegrade(Policy):
    """The default policy hooks without degrade-before-drop."""

    def plan(self, now: float, demand) -> Plan:  # noqa: ANN001
        return Plan(time_s=now, workers=demand.workers)


def test_without_degrading_a_late_request_moves_alone_then_rejects_with_reason():
    outcomes = _late_burst(_NoDegrade())
    levels = [r.level for r in outcomes if r.status == RequestStatus.QUEUED]
    assert levels == ["full", "full", "full", "fast"]
    assert any("moved from full to fast" in (r.reason or "") for r in outcomes)
    rejected = [r for r in outcomes if r.status == RequestStatus.REJECTED]
    assert rejected and all(r.reason.startswith("overloaded") for r in rejected)


def test_pinned_request_is_never_approximated():
    profile = two_level_profile()
    config = config_for_profile(profile, server={"slo_s": 3.0, "queue_capacity": 1000})
    plane = ControlPlane(config, profile, num_workers=1)
    unknown = plane.admit(Request("p", 0.0, 3.0, pinned_variant="nope"), 0.0)
    assert unknown.status == RequestStatus.REJECTED and "unknown model variant" in unknown.reason
    # A count no level has runs exactly, on the variant's home level, costed by interpolation
    # between the profiled counts (5 steps 0.5 s, 10 steps 1.0 s -> 0.7 s).
    exact = plane.admit(Request("p", 0.0, 3.0, pinned_variant="v", pinned_steps=7), 0.0)
    assert exact.status == RequestStatus.QUEUED and exact.level == "full"
    assert exact.run_steps == 7 and exact.work_scale == pytest.approx(0.7)
    assert plane.queues.work_s[0] == pytest.approx(0.7)
    steps = plane.admit(Request("p", 0.0, 3.0, pinned_variant="v", pinned_steps=5), 0.0)
    assert steps.level == "fast"
    outcomes = [plane.admit(Request("p", 0.0, 3.0, no_approximation=True), 0.0)
                for _ in range(8)]
    assert {r.level for r in outcomes if r.status == RequestStatus.QUEUED} == {"full"}
    late = [r for r in outcomes if r.status == RequestStatus.REJECTED]
    assert late and all("pinned level full cannot meet the deadline" in r.reason for r in late)


def test_queue_full_rejects_with_reason():
    plane = make_plane(workers=1, queue_capacity=2, slo_s=1000.0)
    outcomes = [plane.admit(request(plane, 0.0), 0.0) for _ in range(3)]
    assert [r.status for r in outcomes[:2]] == [RequestStatus.QUEUED] * 2
    assert outcomes[2].status == RequestStatus.REJECTED and outcomes[2].reason == "queue full"
    assert outcomes[2].rejection is Rejection.QUEUE_FULL


def test_every_rejection_maps_to_one_http_status_and_code():
    from argus.runtime.base import REJECTION_HTTP, Overloaded

    assert set(REJECTION_HTTP) == set(Rejection)
    assert REJECTION_HTTP[Rejection.QUEUE_FULL][0] == 429  # slow down
    assert {REJECTION_HTTP[r][0] for r in (Rejection.OVERLOADED, Rejection.EXPIRED)} == {503}
    error = Overloaded.of(Rejection.EXPIRED, "deadline passed while queued", 3.0)
    assert (error.status_code, error.code, error.retry_after_s) == (503, "deadline_passed", 3.0)


def test_no_request_vanishes_under_random_operations():
    rng = random.Random(5)
    plane = make_plane(workers=3, queue_capacity=40)
    all_requests: list[Request] = []
    running: dict[int, list[Request]] = {}
    now = 0.0
    for _ in range(3000):
        now += rng.expovariate(4.0)
        op = rng.random()
        if op < 0.5:
            all_requests.append(plane.admit(request(plane, now, sim=rng.random()), now))
        elif op < 0.75:
            w = rng.randrange(3)
            if w not in running:
                batch = plane.next_batch(w, now, 4)
                if batch:
                    running[w] = batch
        elif op < 0.9 and running:
            w = rng.choice(sorted(running))
            for r in running.pop(w):
                if rng.random() < 0.1:
                    plane.requeue(r, now)
                else:
                    plane.complete(r, now)
        elif all_requests:
            plane.cancel(rng.choice(all_requests).request_id)
        plane.tick(now)
    plane.take_rejected()
    queued = {r.request_id for r in plane.queues.queued()}
    held = {r.request_id for batch in running.values() for r in batch}
    for r in all_requests:
        if r.request_id in queued:
            assert r.status == RequestStatus.QUEUED
        elif r.request_id in held:
            assert r.status == RequestStatus.RUNNING
        else:
            assert r.status.finished, r
            if r.status in (RequestStatus.REJECTED, RequestStatus.FAILED):
                assert r.reason
    assert len(queued) == plane.queues.total == sum(plane.queues.count)


def test_requeue_retries_once_then_fails(sdxl_plane):
    plane = sdxl_plane
    r = plane.admit(request(plane, 0.0), 0.0)
    (got,) = plane.next_batch(0, 0.0, 1)
    plane.requeue(got, 1.0)
    assert r.status == RequestStatus.QUEUED
    (again,) = plane.next_batch(0, 1.0, 1)
    plane.requeue(again, 2.0)
    assert r.status == RequestStatus.FAILED and "failed twice" in r.reason
    assert plane.take_rejected() == [r]


def test_cancel_removes_queued_request(sdxl_plane):
    r = sdxl_plane.admit(request(sdxl_plane, 0.0), 0.0)
    assert sdxl_plane.cancel(r.request_id) is r
    assert r.status == RequestStatus.CANCELLED
    assert sdxl_plane.cancel(r.request_id) is None
    assert sdxl_plane.next_batch(0, 0.0, 8) == []


def test_expired_requests_are_rejected_not_served():
    profile = two_level_profile()
    config = config_for_profile(profile, server={"slo_s": 3.0, "queue_capacity": 1000})
    plane = ControlPlane(config, profile, num_workers=1)
    r = plane.admit(Request("p", 0.0, 3.0), 0.0)
    assert plane.next_batch(0, 2.9, 1) == []
    assert r.status == RequestStatus.REJECTED and r.reason == "deadline passed while queued"
    assert plane.take_rejected() == [r]


def test_tick_replans_each_period_and_snapshot(sdxl_plane):
    plane = sdxl_plane
    for i in range(40):
        plane.admit(request(plane, i * 0.1, sim=0.9), i * 0.1)
    assert plane.tick(1.0) is None
    plan = plane.tick(plane.period_s)
    assert plan is not None and plan.workers.sum() == plane.num_workers
    snap = plane.snapshot()
    for key in ("workers_per_level", "forecast_rps", "queue_lengths", "level_share"):
        assert key in snap
    assert sum(snap["workers_per_level"].values()) == plane.num_workers
    assert snap["forecast_rps"] > 0
    assert sum(snap["level_share"].values()) == pytest.approx(1.0)


def test_worker_level_follows_plan_with_free_moves_first(sdxl_plane):
    plane = sdxl_plane
    target = np.zeros(len(plane.table), int)
    target[plane.table.index["sdxl-k25"]] = 3
    target[plane.table.index["sd15"]] = 1
    plane._apply(Plan(time_s=1.0, workers=target))
    levels = [plane.worker_level(w) for w in range(4)]
    assert sorted(levels) == ["sd15", "sdxl-k25", "sdxl-k25", "sdxl-k25"]


def test_profile_from_config_is_modelled_and_usable():
    base = config_for_profile(a100_sdxl())
    profile = profile_from_config(base)
    assert profile.quality_source == "modelled"
    assert {lv.name for lv in profile.levels} == {lv.name for lv in base.levels}
    full = profile.level(profile.full_level)
    assert full.mean_quality == 1.0 and full.cache_k == 0
    k25 = profile.level("sdxl-k25")
    assert k25.service_time(1) == pytest.approx(full.service_time(1) * 25 / 50)
    plane = ControlPlane(base, profile, num_workers=2)
    assert plane.admit(Request("p", 0.0, 100.0), 0.0).status == RequestStatus.QUEUED


@pytest.fixture
def scratch_registry():
    """Policies registered by a test leave the registry afterwards (other suites iterate it)."""
    before = dict(policy_module._REGISTRY)
    yield
    policy_module._REGISTRY.clear()
    policy_module._REGISTRY.update(before)


def test_policy_registry_and_custom_policy(scratch_registry):
    assert "argus" in policy_names()
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("no-such-policy")

    @register_policy("test-all-fast")
    class AllFast(Policy):
        def plan(self, now, demand):
            workers = np.zeros(len(self.plane.table), int)
            workers[self.plane.table.index["fast"]] = self.plane.num_workers
            return Plan(time_s=now, workers=workers)

        def route(self, request, now):
            return self.plane.table.index["fast"]

    profile = two_level_profile()
    plane = ControlPlane(config_for_profile(profile), profile, num_workers=2,
                         policy="test-all-fast")
    r = plane.admit(Request("p", 0.0, 100.0), 0.0)
    assert r.level == "fast" and plane.worker_level(0) == "fast"


def test_cascade_on_complete_redispatches(scratch_registry):
    @register_policy("test-cascade")
    class Cascade(Policy):
        def plan(self, now, demand):
            return Plan(time_s=now, workers=np.array([1, 1]))

        def route(self, request, now):
            return self.plane.table.index["fast"]

        def on_complete(self, request, now):
            return self.plane.table.index["full"] if request.level == "fast" else None

    profile = two_level_profile()
    plane = ControlPlane(config_for_profile(profile), profile, num_workers=2,
                         policy="test-cascade")
    r = plane.admit(Request("p", 0.0, 100.0), 0.0)
    (b,) = plane.next_batch(0, 0.0, 1)
    plane.complete(b, 0.5)
    assert r.status == RequestStatus.QUEUED and r.level == "full"
    (b,) = plane.next_batch(1, 0.5, 1)
    plane.complete(b, 1.5)
    assert r.status == RequestStatus.COMPLETED and plane.completed == 1


def test_abort_releases_running_and_queued(sdxl_plane):
    plane = sdxl_plane
    running = plane.admit(request(plane, 0.0, sim=0.2), 0.0)
    queued = plane.admit(request(plane, 0.0, sim=0.2), 0.0)
    (got,) = plane.next_batch(0, 0.0, 1)
    assert got is running and plane._running_s[0] > 0
    plane.abort(running, 1.0, "client went away")
    assert running.status == RequestStatus.CANCELLED and plane._running_s[0] == 0.0
    plane.abort(queued, 1.0, "timeout", RequestStatus.FAILED)
    assert queued.status == RequestStatus.FAILED and plane.queues.total == 0
    assert plane.completed == 0


def test_load_estimator_tracks_rate_and_headroom():
    from argus.control.load import LoadEstimator

    est = LoadEstimator(window_s=10.0, headroom=0.1)
    for i in range(200):  # 10 req/s for 20 s
        est.observe(i * 0.1)
    assert est.forecast(20.0) == pytest.approx(11.0, rel=0.1)
    # A burst raises the forecast within a period; silence lets it decay.
    for i in range(100):
        est.observe(20.0 + i * 0.02)
    burst = est.forecast(22.0)
    assert burst > 12.0
    for t in range(25, 200, 5):  # the plane forecasts once per period
        quiet = est.forecast(float(t))
    assert quiet < 0.05 * burst


def test_prepare_predicts_in_bulk_as_admit_would():
    """Bulk prediction (the simulator's) gives the same dicts and optimal levels as admitting
    each request with nothing prepared; the argus policy's text predictor is installed."""
    profile = a100_sdxl()
    rng = np.random.default_rng(3)
    picks = rng.integers(0, len(profile.prompts), 400).tolist()
    sims = [None if i % 7 == 0 else float(s) for i, s in enumerate(rng.random(400))]
    sims[1:7] = [0.0025, 0.0075, 1.3, -0.2, 1.0, float("nan")]  # half-way, out of range, NaN

    def requests() -> list[Request]:
        return [Request(profile.prompts[p].prompt, 0.0, 30.0, str(i), cache_similarity=s)
                for i, (p, s) in enumerate(zip(picks, sims, strict=True))]

    lazy_plane, bulk_plane = make_plane(profile), make_plane(profile)
    assert type(bulk_plane.predictor).__name__ == "CachedLinearPredictor"
    lazy, bulk = requests(), requests()
    bulk_plane.prepare(bulk)
    assert all(r.predicted_quality is not None for r in bulk)
    for a, b in zip(lazy, bulk, strict=True):
        lazy_plane.admit(a, 0.0)
        bulk_plane.admit(b, 0.0)
        assert a.predicted_quality == b.predicted_quality
        assert a.optimal_level == b.optimal_level
        assert bulk_plane.predictor.predict(b) is b.predicted_quality  # one dict per input
    assert len({r.optimal_level for r in bulk}) > 2  # the texts really differ


def test_replans_for_a_new_prompt_mix_not_for_sampling_noise():
    """At 20 req/s the class shares of a steady mix move by sampling noise alone each period:
    the solved plan is kept (no MILP); a real change of the mix re-solves."""
    plane = make_plane(workers=64)
    rng = np.random.default_rng(1)
    now, solved = 0.0, []

    def run(periods: int, similarity) -> None:  # noqa: ANN001 - () -> float
        nonlocal now
        for _ in range(periods):
            end = now + plane.period_s
            while (now := now + rng.exponential(1 / 20)) < end:
                plane.admit(Request("", now, now + plane.slo_s, cache_similarity=similarity()),
                            now)
            now = end
            plan = plane.tick(end)
            assert plan is not None
            solved.append(plan.solve_ms > 0)

    run(36, lambda: rng.uniform(0.6, 1.0))
    steady = solved[6:]
    assert sum(steady) <= len(steady) // 4, steady
    solved.clear()
    run(3, lambda: 0.0)  # every prompt a cache miss now: the classes change
    assert any(solved), solved


def test_share_noise_is_the_expected_l1_between_sampled_shares():
    from argus.control.policies import share_noise

    rng = np.random.default_rng(0)
    share = np.array([0.5, 0.3, 0.15, 0.05])
    small = rng.multinomial(200, share, 4000) / 200
    large = rng.multinomial(600, share, 4000) / 600
    independent = np.abs(small - large).sum(axis=1).mean()
    assert share_noise(share, 200, 600, periods=50) == pytest.approx(independent, rel=0.05)
    assert share_noise(share, 0.0, 600, periods=50) == 0.0  # unknown: no allowance
    # The plane's EWMA (weight 0.5, 100 requests a period): estimates 1 and 3 periods apart
    # share samples, so they differ less than independent ones of the same size (3 x 100).
    estimates = [rng.multinomial(100, share, 4000) / 100]
    for _ in range(40):
        estimates.append(0.5 * rng.multinomial(100, share, 4000) / 100 + 0.5 * estimates[-1])
    for apart in (1, 3):
        measured = np.abs(estimates[-1] - estimates[-1 - apart]).sum(axis=1).mean()
        assert share_noise(share, 300, 300, periods=apart) == pytest.approx(measured, rel=0.05)


def test_measured_service_times_scale_the_estimates():
    """A cluster running slower than its profile (a shared machine) is admitted against the
    measured speed, so answers do not come back late; the simulator (exactly the profile) stays
    at 1."""
    plane = make_plane(two_level_profile(full_time=1.0, fast_time=0.5), workers=1, slo_s=10.0)
    before = plane.finish_estimate(0, 0.0)
    for _ in range(30):
        plane.observe_service("full", 1, 1.0, 2.0)  # every batch takes twice its profile
    assert plane.slowdown == pytest.approx(2.0, rel=0.01)
    assert plane.finish_estimate(0, 0.0) == pytest.approx(2 * before, rel=0.01)
    plane.observe_service("full", 1, 1.0, 1e9)  # one stalled batch moves it by a bounded step
    assert plane.calibration.mean <= 2.0 + 0.2 * (4.0 - 2.0) + 1e-9
    assert plane.slowdown < 4.0


def test_noisy_service_times_are_promised_at_mean_plus_spread():
    """Batches alternating 1.0x and 1.5x their profile: deadlines are checked at the mean plus
    one standard deviation (a promise on the mean breaks half the time), load is planned at the
    mean; the first measurement replaces the prior of 1."""
    plane = make_plane(two_level_profile(full_time=1.0, fast_time=0.5), workers=1, slo_s=10.0)
    plane.observe_service("full", 1, 1.0, 1.5)
    assert plane.slowdown == pytest.approx(1.5)
    for i in range(60):
        plane.observe_service("full", 1, 1.0, 1.0 if i % 2 else 1.5)
    assert 1.15 < plane.load_scale < 1.35
    assert plane.slowdown == pytest.approx(plane.calibration.mean + 0.25, abs=0.05)
