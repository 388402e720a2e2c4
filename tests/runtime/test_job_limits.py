"""The job time limit on a worker that honours it, and the stall watchdog's reason: a job past
`server.max_job_s` is aborted with its own reason and the worker, which stops at the next step,
is not restarted; a request whose single step legitimately outlasts `server.worker_stall_s`
fails naming the watchdog, not a crash."""

from __future__ import annotations

import time

import pytest
from runtime_helpers import RuntimeThread, runtime_config

from argus.runtime.base import GenerationFailed

MAX_JOB_S = 3.0
STALL_S = 1.0
"""Far above a 32 px step (~10 ms), far below a 512 px one (seconds)."""


@pytest.fixture(scope="module")
def rt() -> RuntimeThread:
    config = runtime_config(workers=1, max_job_s=MAX_JOB_S, worker_stall_s=STALL_S)
    runtime = RuntimeThread(config)
    runtime.wait_ready()
    yield runtime
    runtime.close()


def test_job_past_its_time_limit_is_aborted_and_the_worker_serves_on(rt: RuntimeThread) -> None:
    deaths = rt.runtime.worker_deaths
    start = time.monotonic()
    handle = rt.submit(steps=1000)  # ~8 s on the tiny model
    with pytest.raises(GenerationFailed, match="exceeded the job time limit") as over:
        rt.outcome(handle, timeout_s=MAX_JOB_S + 10)
    took = time.monotonic() - start
    assert f"the limit is {MAX_JOB_S:g} s (server.max_job_s)" in str(over.value)
    assert MAX_JOB_S <= took <= MAX_JOB_S + 1.5, took
    rt.wait_for(lambda: rt.runtime._workers[0].batch_id is None, 5.0, "worker did not stop")
    assert rt.runtime.worker_deaths == deaths  # it stopped at the next step: no restart
    assert rt.outcome(rt.submit(steps=4)).steps_run == 4


def test_stall_watchdog_names_itself_when_a_step_outlasts_it(rt: RuntimeThread) -> None:
    deaths = rt.runtime.worker_deaths
    handle = rt.submit(steps=2, width=512, height=512)  # one step takes seconds
    with pytest.raises(GenerationFailed) as failed:
        rt.outcome(handle, timeout_s=60)
    message = str(failed.value)
    assert message.startswith("failed twice: its worker reported no progress for 1 s")
    assert "server.worker_stall_s" in message and "crash" not in message
    assert rt.runtime.worker_deaths == deaths + 2
    rt.wait_for(rt.runtime.ready, 60, "restarted worker not ready")
