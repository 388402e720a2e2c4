"""A batch poisoned by one job the engine rejects: the worker (the real engine, in this process)
re-runs the batch's jobs alone, fails only the culprit (as the input's fault) and answers the
rest; their progress is not shown twice."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from runtime_helpers import runtime_config

from argus.runtime.messages import (
    BatchFinished,
    Job,
    JobCancelled,
    JobDone,
    JobFailed,
    Progress,
    RunBatch,
    WorkerEvent,
)
from argus.runtime.worker import JobInputRejected, Worker, WorkerLoop, failure_event

BAD_PROMPT = "a red \ud800 circle"
"""A lone surrogate: the API refuses it, but a job that bypasses the API fails the tokenizer
(TypeError), and before isolation it failed every job of its engine batch."""


def job(request_id: str, prompt: str = "a red circle", seed: int = 1, n: int = 1) -> Job:
    return Job(request_id=request_id, prompt=prompt, seed=seed, steps=3, height=32, width=32,
               guidance_scale=1.0, n=n)


@pytest.fixture(scope="module")
def worker() -> Worker:
    import torch

    torch.set_num_threads(1)
    return Worker(0, runtime_config(workers=1))


def run(worker: Worker, *jobs: Job, cancel: tuple[str, ...] = ()) -> list[WorkerEvent]:
    events: list[WorkerEvent] = []
    loop = WorkerLoop(worker, events.append)
    loop.cancel(cancel)
    loop.handle(RunBatch(1, "tiny", jobs))
    return events


def outcome_of(events: list[WorkerEvent], request_id: str) -> WorkerEvent:
    ends = [e for e in events if isinstance(e, JobDone | JobFailed | JobCancelled)
            and e.request_id == request_id]
    assert len(ends) == 1, ends
    return ends[0]


def test_one_bad_job_fails_alone_and_its_batch_mates_are_answered(worker: Worker) -> None:
    events = run(worker, job("good-1", seed=1), job("bad", BAD_PROMPT), job("good-2", seed=2, n=2))
    bad = outcome_of(events, "bad")
    assert isinstance(bad, JobInputRejected)
    assert "rejected this request's input" in bad.error and "TypeError" in bad.error
    for request_id, images in (("good-1", 1), ("good-2", 2)):
        done = outcome_of(events, request_id)
        assert isinstance(done, JobDone) and done.steps_run == 3
        assert len(done.images_png) == images
        assert Image.open(io.BytesIO(done.images_png[0])).size == (32, 32)
    assert isinstance(events[-1], BatchFinished)
    for request_id in ("good-1", "good-2"):  # each step shown once, though run twice
        steps = [e.step for e in events if isinstance(e, Progress) and request_id in e.request_ids]
        assert steps == [1, 2, 3]


def test_isolated_results_equal_an_unpoisoned_run(worker: Worker) -> None:
    alone = outcome_of(run(worker, job("a", seed=7)), "a")
    poisoned = outcome_of(run(worker, job("a", seed=7), job("bad", BAD_PROMPT)), "a")
    assert isinstance(alone, JobDone) and isinstance(poisoned, JobDone)
    assert alone.images_png == poisoned.images_png


def test_a_lone_bad_job_fails_without_a_retry(worker: Worker) -> None:
    events = run(worker, job("bad", BAD_PROMPT))
    assert isinstance(outcome_of(events, "bad"), JobInputRejected)
    assert not [e for e in events if isinstance(e, Progress)]


def test_cancelled_batch_mate_is_not_rerun(worker: Worker) -> None:
    events = run(worker, job("bad", BAD_PROMPT), job("gone"), job("good"), cancel=("gone",))
    assert isinstance(outcome_of(events, "gone"), JobCancelled)
    assert isinstance(outcome_of(events, "good"), JobDone)


def test_server_side_errors_are_not_blamed_on_the_input() -> None:
    assert isinstance(failure_event(0, "r", TypeError("bad text")), JobInputRejected)
    oom = failure_event(0, "r", RuntimeError("CUDA out of memory"))
    assert type(oom) is JobFailed and "RuntimeError: CUDA out of memory" in oom.error
