"""x0 previews on the worker side: which steps a job previews, and how the engine's decoded
previews ride on the `Progress` event of their step.

Kept out of `worker.py`: the worker only wraps its `emit` and hands the engine the collector.
Nothing here runs unless a job asks for `partial_images`, so plain generation is not slowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from argus.runtime.messages import Job, Progress, WorkerEvent

if TYPE_CHECKING:
    import numpy as np

Emit = Callable[[WorkerEvent], None]
Collect = Callable[[int, dict[int, "np.ndarray"]], None]


def job_preview_steps(job: Job) -> tuple[int, ...]:
    """The steps (done) after which `job` gets a preview: evenly spaced over what it runs."""
    if not job.partial_images:
        return ()
    from argus.engine.generate import preview_steps

    return preview_steps(job.partial_images, job.first_step, job.steps)


def with_previews(jobs: Sequence[Job], emit: Emit) -> tuple[Emit, Collect | None]:
    """(emit that adds the step's PNG previews to its `Progress` event, the engine's `preview`
    callback). When no job asks for previews: (`emit` itself, None), i.e. no x0 decoding."""
    if not any(job.partial_images for job in jobs):
        return emit, None
    owners = [job.request_id for job in jobs for _ in range(job.n)]
    """Spec index in the engine batch -> its request (a job's images are consecutive)."""
    pending: dict[int, dict[str, list[bytes]]] = {}

    def collect(step: int, images: dict[int, np.ndarray]) -> None:
        from argus.runtime.worker import encode_png

        per_request: dict[str, list[bytes]] = {}
        for index in sorted(images):
            per_request.setdefault(owners[index], []).append(encode_png(images[index]))
        pending[step] = per_request

    def emit_with_previews(event: WorkerEvent) -> None:
        if isinstance(event, Progress) and not event.previews and event.step in pending:
            found = pending.pop(event.step)
            for stale in [s for s in pending if s < event.step]:
                del pending[stale]
            previews = {r: tuple(p) for r, p in found.items() if r in event.request_ids}
            event = dataclasses.replace(event, previews=previews)
        emit(event)

    return emit_with_previews, collect
