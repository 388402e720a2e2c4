"""The live runtime on real worker processes: serving, progress, cancel, crash recovery, drain."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal

import pytest
from PIL import Image
from runtime_helpers import CRASH_STEPS, SLOW_STEPS, STALL_S, RuntimeThread, runtime_config

from argus.runtime.base import (
    GenerationCancelledError,
    GenerationFailed,
    GenerationRequest,
    Overloaded,
)
from argus.runtime.pool import threads_per_worker


@pytest.fixture(scope="module")
def rt() -> RuntimeThread:
    runtime = RuntimeThread(runtime_config(workers=2))
    runtime.wait_ready()
    runtime.wait_for(
        lambda: all(w.loaded for w in runtime.runtime._workers.values()), 120, "workers loading"
    )
    yield runtime
    runtime.close()


def wait_running(rt: RuntimeThread, handle, min_step: int = 1) -> int:
    """Block until the request has done `min_step` steps; returns the last step seen."""
    step = 0
    while step < min_step:
        update = rt.next_progress(handle)
        assert update is not None, "finished before running"
        step = update.step
    return step


def test_serves_request_with_progress_per_step(rt: RuntimeThread) -> None:
    handle = rt.submit(steps=10, n=2, seed=5)
    outcome = rt.outcome(handle)
    assert outcome.level == "full" and outcome.steps == outcome.steps_run == 10
    assert outcome.seed == 5 and len(outcome.images_png) == 2
    for png in outcome.images_png:
        assert Image.open(io.BytesIO(png)).size == (32, 32)
    assert outcome.images_png[0] != outcome.images_png[1]  # seeds 5 and 6
    steps = [u.step for u in rt.drain_progress(handle) if u is not None]
    assert steps == list(range(1, 11))
    assert {"queue", "run", "total"} <= set(outcome.timings_ms)


def test_same_seed_same_png_on_any_worker(rt: RuntimeThread) -> None:
    first, second = rt.submit(steps=4, seed=11), rt.submit(steps=4, seed=11)
    assert rt.outcome(first).images_png == rt.outcome(second).images_png


def test_cancel_running_stops_within_a_step_and_frees_worker(rt: RuntimeThread) -> None:
    handle = rt.submit(steps=SLOW_STEPS)
    seen = wait_running(rt, handle, min_step=2)
    worker_id, _ = rt.worker_of(handle.request_id)
    assert rt.call(rt.runtime.cancel(handle.request_id))
    with pytest.raises(GenerationCancelledError):
        rt.outcome(handle, timeout_s=10)
    after = [u.step for u in rt.drain_progress(handle) if u is not None]
    # In-flight events aside, the worker stops at the first step boundary after the cancel.
    assert max(after, default=seen) <= seen + 2 < SLOW_STEPS
    rt.wait_for(lambda: rt.runtime._workers[worker_id].batch_id is None, 2.0, "worker still busy")
    assert rt.outcome(rt.submit(steps=4)).steps_run == 4


def test_cancel_queued_request(rt: RuntimeThread) -> None:
    blockers = [rt.submit(steps=SLOW_STEPS, seed=s) for s in (1, 2)]
    for b in blockers:
        wait_running(rt, b)
    queued = rt.submit(steps=4)
    assert rt.call(rt.runtime.cancel(queued.request_id))
    with pytest.raises(GenerationCancelledError, match="queued"):
        rt.outcome(queued, timeout_s=5)
    for b in blockers:
        rt.call(rt.runtime.cancel(b.request_id))
        with pytest.raises(GenerationCancelledError):
            rt.outcome(b, timeout_s=10)
    assert not rt.call(rt.runtime.cancel(queued.request_id))  # already gone


def test_queued_requests_run_as_one_batch_and_cancel_one_of_them(rt: RuntimeThread) -> None:
    blockers = [rt.submit(steps=SLOW_STEPS, seed=s) for s in (1, 2)]
    for b in blockers:
        wait_running(rt, b)
    first, second = rt.submit(steps=CRASH_STEPS, seed=21), rt.submit(steps=CRASH_STEPS, seed=22)
    rt.call(rt.runtime.cancel(blockers[0].request_id))  # frees one worker for both
    wait_running(rt, first)
    wait_running(rt, second)
    worker_a, _ = rt.worker_of(first.request_id)
    assert rt.worker_of(second.request_id)[0] == worker_a  # one batch on one worker
    rt.call(rt.runtime.cancel(first.request_id))
    with pytest.raises(GenerationCancelledError):
        rt.outcome(first, timeout_s=10)
    assert rt.outcome(second, timeout_s=60).steps_run == CRASH_STEPS  # its batch mate went on
    rt.call(rt.runtime.cancel(blockers[1].request_id))
    for b in blockers:
        with pytest.raises(GenerationCancelledError):
            rt.outcome(b, timeout_s=10)


def test_worker_crash_retries_request_and_restarts_worker(rt: RuntimeThread) -> None:
    deaths = rt.runtime.worker_deaths
    handle = rt.submit(steps=CRASH_STEPS, seed=3)
    wait_running(rt, handle)
    worker_id, pid = rt.worker_of(handle.request_id)
    os.kill(pid, signal.SIGKILL)
    outcome = rt.outcome(handle, timeout_s=60)
    assert outcome.steps_run == CRASH_STEPS and len(outcome.images_png) == 1
    assert rt.runtime.worker_deaths == deaths + 1

    def restarted() -> bool:
        state = rt.runtime.snapshot()["runtime"]
        return state["workers"][worker_id]["ready"] and state["pids"][worker_id] not in (None, pid)

    rt.wait_for(restarted, 60, "killed worker did not come back")


def test_second_crash_fails_the_request_with_a_clear_error(rt: RuntimeThread) -> None:
    rt.wait_for(rt.runtime.ready, 60, "not ready")
    handle = rt.submit(steps=SLOW_STEPS, seed=4)
    killed: set[int] = set()

    def running_on_a_live_worker() -> bool:
        snap = rt.runtime.snapshot()["runtime"]
        return any(
            handle.request_id in w["running"] and snap["pids"][i] not in killed | {None}
            for i, w in snap["workers"].items()
        )

    for _attempt in (1, 2):
        rt.wait_for(running_on_a_live_worker, 60, "request is not running")
        wait_running(rt, handle)
        _, pid = rt.worker_of(handle.request_id)
        os.kill(pid, signal.SIGKILL)
        killed.add(pid)
    with pytest.raises(GenerationFailed, match="twice"):
        rt.outcome(handle, timeout_s=30)


def test_hung_worker_is_restarted_and_its_request_retried(rt: RuntimeThread) -> None:
    rt.wait_for(rt.runtime.ready, 60, "not ready")
    deaths = rt.runtime.worker_deaths
    handle = rt.submit(steps=CRASH_STEPS, seed=8)
    wait_running(rt, handle)
    _, pid = rt.worker_of(handle.request_id)
    os.kill(pid, signal.SIGSTOP)  # alive but silent: only the stall watchdog can tell
    try:
        outcome = rt.outcome(handle, timeout_s=STALL_S + 30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    assert outcome.steps_run == CRASH_STEPS
    assert rt.runtime.worker_deaths == deaths + 1


def test_threads_never_oversubscribe_cores() -> None:
    cores = os.cpu_count() or 1
    for workers in (1, 2, 4):
        threads = threads_per_worker(runtime_config(workers, threads_per_worker=0), workers)
        assert threads >= 1 and (workers * threads <= cores or threads == 1)


def test_graceful_shutdown_drains_admitted_requests() -> None:
    rt = RuntimeThread(runtime_config(workers=1, worker_stall_s=600.0))
    handle = rt.submit(steps=10)  # admitted before the worker is even ready
    late = GenerationRequest(prompt="late", pinned_variant="tiny", pinned_steps=4)

    async def shutdown_then_submit() -> Overloaded:
        stopping = asyncio.create_task(rt.runtime.shutdown(drain_timeout_s=120))
        await asyncio.sleep(0)
        with pytest.raises(Overloaded) as refused:
            await rt.runtime.submit(late)
        await stopping
        return refused.value

    try:
        refused = rt.call(shutdown_then_submit(), timeout_s=150)
        assert refused.status_code == 503 and "shutting down" in refused.reason
        assert rt.outcome(handle, timeout_s=5).steps_run == 10
        assert all(pid is None for pid in rt.runtime.pool.pids().values())
    finally:
        rt.loop.call_soon_threadsafe(rt.loop.stop)


def test_request_during_boot_waits_for_a_worker_not_its_deadline() -> None:
    """The SLO clock starts once a worker can serve: a request sent while the only worker still
    boots (seconds: it imports torch) is served even with a 0.5 s SLO; with a short boot wait it
    gets a clear 503 instead."""
    rt = RuntimeThread(runtime_config(workers=1, slo_s=0.5))
    try:
        assert not rt.on_loop(rt.runtime.ready)
        assert rt.outcome(rt.submit(steps=4), timeout_s=120).steps_run == 4
    finally:
        rt.close()
    impatient = RuntimeThread(runtime_config(workers=1, boot_wait_s=0.01))
    try:
        with pytest.raises(Overloaded) as refused:
            impatient.submit(steps=4)
        assert refused.value.status_code == 503 and "no worker became ready" in refused.value.reason
        assert refused.value.retry_after_s > 0
    finally:
        impatient.close()
