"""Bounded cost on a real worker process (one worker, a 2.5 s SLO, a 5 s job time limit): a batch
poisoned by one bad job still answers the others; behind a stopped worker, queued requests get
their 503 at their deadline (a timer, not a freed worker), /ready turns false with a reason, and
the stopped job is aborted at the time limit with that reason, its worker restarted."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest
from runtime_helpers import SLOW_STEPS, RuntimeThread, runtime_config

from argus.runtime.base import (
    GenerationCancelledError,
    GenerationFailed,
    InvalidGenerationInput,
    JobHandle,
    Overloaded,
)

SLO_S = 2.5
MAX_JOB_S = 5.0
LONG_STEPS = 1000
"""About 8 s on the tiny model: far past the job limit."""


@pytest.fixture(scope="module")
def rt() -> RuntimeThread:
    config = runtime_config(workers=1, slo_s=SLO_S, max_job_s=MAX_JOB_S, worker_stall_s=60.0)
    runtime = RuntimeThread(config)
    runtime.wait_ready()
    yield runtime
    runtime.close()


def wait_running(rt: RuntimeThread, handle: JobHandle) -> None:
    assert rt.next_progress(handle) is not None, "finished before running"


def resume(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


def test_batch_poisoned_by_one_bad_job_answers_the_others(rt: RuntimeThread) -> None:
    blocker = rt.submit(steps=SLOW_STEPS)
    wait_running(rt, blocker)
    good = [rt.submit(steps=4, seed=s) for s in (1, 2)]
    bad = rt.submit(steps=4, prompt="a red \ud800 circle")  # bypasses the API's validation
    assert rt.call(rt.runtime.cancel(blocker.request_id))  # the three run as one batch
    for handle in good:
        outcome = rt.outcome(handle, timeout_s=30)
        assert outcome.steps_run == 4 and len(outcome.images_png) == 1
    with pytest.raises(InvalidGenerationInput, match="rejected this request's input"):
        rt.outcome(bad, timeout_s=30)
    with pytest.raises(GenerationCancelledError):
        rt.outcome(blocker, timeout_s=5)
    assert rt.outcome(rt.submit(steps=4)).steps_run == 4  # the worker serves on


def test_stopped_worker_expiry_readiness_and_job_time_limit(rt: RuntimeThread) -> None:
    deaths = rt.runtime.worker_deaths
    blocker = rt.submit(steps=LONG_STEPS)
    wait_running(rt, blocker)
    dispatched = time.monotonic()
    pid = rt.runtime.pool.pids()[0]
    os.kill(pid, signal.SIGSTOP)
    try:
        rt.wait_for(lambda: not rt.runtime.ready(), 2.0, "/ready stayed true")
        reason = rt.on_loop(rt.runtime.not_ready_reason)
        assert reason is not None and "worker 0 is stopped" in reason
        submitted = time.monotonic()
        queued = rt.submit(steps=4)
        with pytest.raises(Overloaded) as expired:
            rt.outcome(queued, timeout_s=SLO_S + 5)
        waited = time.monotonic() - submitted
        assert expired.value.status_code == 503 and "deadline passed while queued" in str(
            expired.value
        )
        assert SLO_S - 0.1 <= waited <= SLO_S + 1.0, waited  # at its deadline, by the timer
        print(f"queued request behind a stopped worker answered 503 after {waited:.2f} s")
        with pytest.raises(GenerationFailed, match="exceeded the job time limit") as over:
            rt.outcome(blocker, timeout_s=MAX_JOB_S + 5)
        ran = time.monotonic() - dispatched
        assert MAX_JOB_S - 0.1 <= ran <= MAX_JOB_S + 1.5, ran
        assert "crash" not in str(over.value)
        # It cannot honour the cancel while stopped: restarted after the grace period.
        rt.wait_for(lambda: rt.runtime.worker_deaths == deaths + 1, 10.0, "not restarted")
    finally:
        resume(pid)
    rt.wait_for(rt.runtime.ready, 60, "restarted worker not ready")
    assert rt.on_loop(rt.runtime.not_ready_reason) is None
    assert rt.outcome(rt.submit(steps=4)).steps_run == 4


def test_idle_stopped_worker_is_not_ready(rt: RuntimeThread) -> None:
    rt.wait_for(rt.runtime.ready, 60, "not ready")
    pid = rt.runtime.pool.pids()[0]
    os.kill(pid, signal.SIGSTOP)  # idle: it sends nothing a watchdog could miss
    try:
        rt.wait_for(lambda: not rt.runtime.ready(), 2.0, "/ready stayed true")
        assert rt.on_loop(rt.runtime.snapshot)["runtime"]["workers"][0]["stopped"] is True
    finally:
        resume(pid)
    rt.wait_for(rt.runtime.ready, 2.0, "resumed worker not ready")
