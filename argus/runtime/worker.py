"""A worker: owns one loaded pipeline and runs the batches the dispatcher sends it.

Runs in its own process (local pool) or Ray actor (`argus.runtime.ray_pool`): `WorkerLoop` is
transport-free; `worker_process_main` binds it to a pipe, the Ray actor to its inbox. Torch's
thread count is set before torch is imported, since oversubscribed threads make CPU diffusion
20-35x slower.

Failure isolation: an engine batch that raises is re-run one job at a time, so one request the
engine cannot take (say a prompt its tokenizer rejects) fails alone and its batch-mates are
answered; a job that fails alone with an input-type error is reported as `JobInputRejected`
(the API answers 400), any other as `JobFailed`.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from argus.runtime.messages import (
    BatchFinished,
    CancelJobs,
    Job,
    JobCancelled,
    JobDone,
    JobFailed,
    LoadVariant,
    Progress,
    RunBatch,
    Shutdown,
    VariantLoaded,
    WorkerEvent,
    WorkerReady,
)
from argus.runtime.previews import job_preview_steps, with_previews

if TYPE_CHECKING:
    import numpy as np

    from argus.config import ArgusConfig
    from argus.engine.generate import GenerationResult, GenerationSpec
    from argus.engine.pipeline import Pipeline

Emit = Callable[[WorkerEvent], None]
PollCancels = Callable[[], set[str]]
"""Returns request ids cancelled since the last call (checked between steps)."""

INPUT_ERRORS: tuple[type[Exception], ...] = (ValueError, TypeError, LookupError)
"""Errors of a job that fails on its own that blame its input (a tokenizer that rejects the
prompt raises TypeError, a bad shape ValueError); anything else (RuntimeError: out of memory, a
device error) is the server's."""


@dataclass(frozen=True)
class JobInputRejected(JobFailed):
    """A `JobFailed` whose cause is the request's own input: the engine rejected it while its
    batch-mates ran (400-class, not worth a retry)."""


def failure_event(worker_id: int, request_id: str, err: Exception) -> JobFailed:
    """The event for a job that failed on its own, naming the error."""
    what = f"{type(err).__name__}: {err}"
    if isinstance(err, INPUT_ERRORS):
        return JobInputRejected(
            worker_id, request_id, f"the engine rejected this request's input ({what})"
        )
    return JobFailed(worker_id, request_id, f"generation failed ({what})")


def encode_png(image: np.ndarray) -> bytes:
    """Float (H, W, 3) in [0, 1] -> PNG bytes."""
    import numpy as np
    from PIL import Image

    pixels = (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def job_specs(job: Job) -> list[GenerationSpec]:
    from argus.engine.generate import GenerationSpec

    return [
        GenerationSpec(
            prompt=job.prompt,
            negative_prompt=job.negative_prompt,
            seed=job.seed + i,
            steps=job.steps,
            height=job.height,
            width=job.width,
            guidance_scale=job.guidance_scale,
            start_step=job.first_step,
            start_latents=job.start_latents[i] if job.start_latents else None,
            init_image=None if job.edit is None else job.edit.image(i),
            mask=None if job.edit is None else job.edit.repaint(),
            capture_steps=job.capture_steps,
            preview_steps=job_preview_steps(job),
            feature_cache=job.feature_cache,
        )
        for i in range(job.n)
    ]


class Worker:
    """Holds one variant's pipeline at a time; a switch costs a load."""

    def __init__(self, worker_id: int, config: ArgusConfig, device: str = "cpu") -> None:
        self.worker_id = worker_id
        self.config = config
        self.device = device
        self.pipeline: Pipeline | None = None

    def load(self, variant: str, emit: Emit) -> Pipeline:
        from argus.engine.pipeline import load_pipeline

        if self.pipeline is None or self.pipeline.name != variant:
            self.pipeline = None  # free the old weights before loading the new ones
            start = time.perf_counter()
            self.pipeline = load_pipeline(self.config.variant(variant), self.device)
            warm_up(self.pipeline, self.config.variant(variant).resolution)
            loaded_s = time.perf_counter() - start
            emit(VariantLoaded(self.worker_id, variant, loaded_s,
                               probe(self.pipeline, self.config, variant)))
        return self.pipeline

    def run_batch(self, batch: RunBatch, emit: Emit, poll_cancels: PollCancels) -> None:
        """Run the batch's jobs, one engine batch per compatible group."""
        cancelled: set[str] = set()
        try:
            pipe = self.load(batch.variant, emit)
        except Exception as err:  # a variant that cannot load fails its jobs, not the worker
            for job in batch.jobs:
                emit(JobFailed(self.worker_id, job.request_id, f"loading {batch.variant}: {err}"))
            emit(BatchFinished(self.worker_id, batch.batch_id))
            return
        groups: dict[tuple, list[Job]] = {}
        for job in batch.jobs:
            groups.setdefault(job.compatibility_key(), []).append(job)
        for jobs in groups.values():
            cancelled |= poll_cancels()
            live = [j for j in jobs if j.request_id not in cancelled]
            for job in jobs:
                if job.request_id in cancelled:
                    emit(JobCancelled(self.worker_id, job.request_id, 0))
            if live:
                self._run_group(pipe, live, emit, poll_cancels, cancelled)
        emit(BatchFinished(self.worker_id, batch.batch_id))

    def _run_group(
        self,
        pipe: Pipeline,
        jobs: list[Job],
        emit: Emit,
        poll_cancels: PollCancels,
        cancelled: set[str],
        reported: dict[str, int] | None = None,
    ) -> None:
        """One engine call for `jobs`; if it raises, each job runs again alone (once), so only
        the one(s) at fault fail. `reported`: the last step each request's progress showed (a
        re-run does not show steps again)."""
        from argus.engine.generate import GenerationCancelled, generate

        ids = tuple(j.request_id for j in jobs)
        specs = [spec for job in jobs for spec in job_specs(job)]
        emit, on_preview = with_previews(jobs, emit)  # x0 previews ride on Progress events
        shown = {} if reported is None else reported
        last_step = 0

        def on_step(step: int, total: int) -> bool:
            nonlocal last_step
            last_step = step
            cancelled.update(poll_cancels())
            live = tuple(i for i in ids if i not in cancelled)
            fresh = tuple(i for i in live if step > shown.get(i, 0))
            if fresh:
                shown.update(dict.fromkeys(fresh, step))
                emit(Progress(self.worker_id, fresh, step, total))
            return bool(live)  # stop only when every request of the group is cancelled

        try:
            results = generate(pipe, specs, on_step, preview=on_preview)
        except GenerationCancelled as stop:
            for request_id in ids:
                emit(JobCancelled(self.worker_id, request_id, stop.step))
            return
        except Exception as err:
            traceback.print_exc()
            if len(jobs) == 1 or reported is not None:
                for request_id in ids:
                    emit(failure_event(self.worker_id, request_id, err))
                return
            for job in jobs:  # find the culprit: every job alone, once
                cancelled.update(poll_cancels())
                if job.request_id in cancelled:
                    emit(JobCancelled(self.worker_id, job.request_id, last_step))
                else:
                    self._run_group(pipe, [job], emit, poll_cancels, cancelled, shown)
            return
        self._emit_results(jobs, results, emit, cancelled, last_step)

    def _emit_results(
        self,
        jobs: list[Job],
        results: list[GenerationResult],
        emit: Emit,
        cancelled: set[str],
        last_step: int,
    ) -> None:
        offset = 0
        for job in jobs:
            mine = results[offset : offset + job.n]
            offset += job.n
            if job.request_id in cancelled:
                emit(JobCancelled(self.worker_id, job.request_id, last_step))
                continue
            emit(
                JobDone(
                    worker_id=self.worker_id,
                    request_id=job.request_id,
                    images_png=tuple(encode_png(r.image) for r in mine),
                    captured=tuple(r.captured for r in mine),
                    steps_run=mine[0].steps_run,
                    timings_ms=mine[0].timings_ms,
                )
            )


class WorkerLoop:
    """A worker's message handling over any transport: `run` serves commands one at a time
    from a blocking `receive` (a pipe, an actor's inbox) until Shutdown or EOF; `cancel` may be
    called from any thread (a Ray actor's other thread) and is honoured at the next step."""

    def __init__(self, worker: Worker, emit: Emit) -> None:
        self.worker = worker
        self.emit = emit
        self.between_steps: Callable[[], None] = lambda: None
        """Called before cancels are read at each step (the local pool reads its pipe)."""
        self._cancels: set[str] = set()
        self._lock = threading.Lock()

    def cancel(self, request_ids: Iterable[str]) -> None:
        with self._lock:
            self._cancels.update(request_ids)

    def poll_cancels(self) -> set[str]:
        self.between_steps()
        with self._lock:
            found, self._cancels = self._cancels, set()
        return found

    def run(self, receive: Callable[[], Any]) -> None:
        while True:
            try:
                message = receive()
            except (EOFError, OSError):
                return
            if not self.handle(message):
                return

    def handle(self, message: Any) -> bool:
        """Carry out one command; False on Shutdown."""
        if isinstance(message, Shutdown):
            return False
        if isinstance(message, LoadVariant):
            try:  # a preload; a batch needing a variant that cannot load fails its jobs
                self.worker.load(message.variant, self.emit)
            except Exception:
                traceback.print_exc()
        elif isinstance(message, RunBatch):
            ids = {job.request_id for job in message.jobs}
            with self._lock:  # cancels of requests not in this batch are stale
                self._cancels &= ids
            self.worker.run_batch(message, self.emit, self.poll_cancels)
        elif isinstance(message, CancelJobs):
            self.cancel(message.request_ids)
        return True


def warm_up(pipe: Pipeline, resolution: int) -> None:
    """One 1-step generation, so the first request does not pay torch's lazy initialisation."""
    from argus.engine.generate import GenerationSpec, generate

    generate(pipe, [GenerationSpec("warm-up", 0, 1, resolution, resolution, guidance_scale=2.0)])


def probe(pipe: Pipeline, config: ArgusConfig, variant: str) -> tuple[str, float] | None:
    """Time one batch-1 generation at the variant's cheapest plain level (fewest steps, no
    cache), as `argus profile` runs it: the plane compares it with the profile."""
    from argus.engine.generate import GenerationSpec, generate

    plain = [lv for lv in config.levels
             if lv.variant == variant and not lv.cache_k and not lv.feature_cache]
    if not plain:
        return None
    level, spec = min(plain, key=lambda lv: lv.steps), config.variant(variant)
    start = time.perf_counter()
    generate(pipe, [GenerationSpec("probe", 0, level.steps, spec.resolution, spec.resolution,
                                   guidance_scale=spec.guidance_scale)])
    return level.name, time.perf_counter() - start


def worker_device(worker_id: int) -> str:
    """Spread workers over the GPUs when there are any, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return f"cuda:{worker_id % torch.cuda.device_count()}"
    return "cpu"


def set_torch_threads(threads: int) -> None:
    """Must run before torch is imported in this process."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set in this process
        torch.set_num_interop_threads(1)


def worker_process_main(worker_id: int, config_data: dict[str, Any], threads: int, conn) -> None:
    """Entry point of a local worker process: serve messages from `conn` until Shutdown/EOF."""
    set_torch_threads(threads)
    import argus.engine.generate  # noqa: F401  (torch, diffusers load before "ready")
    from argus.config import parse_config

    worker = Worker(worker_id, parse_config(config_data), worker_device(worker_id))
    loop = WorkerLoop(worker, conn.send)
    pending: list[Any] = []

    def read_pipe() -> None:  # between steps: cancels now, anything else after the batch
        while conn.poll():
            message = conn.recv()
            if isinstance(message, CancelJobs):
                loop.cancel(message.request_ids)
            else:
                pending.append(message)  # arrives mid-batch only on shutdown

    loop.between_steps = read_pipe
    conn.send(WorkerReady(worker_id, os.getpid()))
    loop.run(lambda: pending.pop(0) if pending else conn.recv())
