"""Wire messages between the dispatcher (front-end process) and workers.

Immutable and picklable, kept apart from the control plane's mutable `Request`. Every backend
(local processes now, Ray actors later) moves exactly these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class EditInput:
    """An edit's input (POST /v1/images/edits): image-to-image, or inpainting with a mask."""

    images: tuple[np.ndarray, ...]
    """uint8 (H, W, 3) at the output size; image i of the request starts from
    images[i % len(images)]."""
    mask: np.ndarray | None = None
    """bool (H, W) at the output size, True = repaint (inpainting); None: image-to-image."""
    strength: float = 0.8
    """Fraction of the schedule re-run, in (0, 1]: the run starts at step
    K = round((1 - strength) x N), at most N - 1."""

    def start_step(self, steps: int) -> int:
        """K for an N-step schedule."""
        return min(max(round((1 - self.strength) * steps), 0), steps - 1)

    def image(self, i: int) -> np.ndarray:
        """Image i's start as the engine takes it: float32 in [0, 1]."""
        return self.images[i % len(self.images)].astype(np.float32) / 255.0

    def repaint(self) -> np.ndarray | None:
        return None if self.mask is None else self.mask.astype(np.float32)


@dataclass(frozen=True)
class Job:
    """One request's work: `n` images of one prompt at one level (contract D seam included)."""

    request_id: str
    prompt: str
    seed: int
    """Image i uses seed + i."""
    steps: int
    height: int
    width: int
    guidance_scale: float
    negative_prompt: str = ""
    n: int = 1
    start_step: int = 0
    """K > 0: resume from `start_latents` (approximate-cache hit)."""
    start_latents: tuple[np.ndarray, ...] | None = None
    """One latent per image, each the latents before step K of an N-step run."""
    capture_steps: tuple[int, ...] = ()
    """Steps whose pre-step latents come back in `JobDone.captured` (for the cache to store)."""
    partial_images: int = 0
    """Previews per image (0-3): the worker decodes the predicted clean image (x0) at this many
    evenly spaced steps of the run it does (`argus.engine.generate.preview_steps`, so a cache
    resume or a re-levelled step count still gets them) and sends them in `Progress.previews`."""
    edit: EditInput | None = None
    """Image-to-image / inpainting: the run starts at the edit's own K (never a cache resume)."""
    feature_cache: str = ""
    """The level's transformer feature cache (`LevelConfig.feature_cache`); batch-wide."""

    @property
    def first_step(self) -> int:
        """K: the step the run starts at (an edit's from its strength, else `start_step`)."""
        return self.start_step if self.edit is None else self.edit.start_step(self.steps)

    def compatibility_key(self) -> tuple[int, int, int, int, float, str]:
        return (self.steps, self.first_step, self.height, self.width, self.guidance_scale,
                self.feature_cache)


# Dispatcher -> worker.


@dataclass(frozen=True)
class RunBatch:
    batch_id: int
    variant: str
    """Loaded first if the worker holds another variant."""
    jobs: tuple[Job, ...]


@dataclass(frozen=True)
class LoadVariant:
    variant: str


@dataclass(frozen=True)
class CancelJobs:
    """Stop these requests at their next step boundary (ignored for unknown ids)."""

    request_ids: tuple[str, ...]


@dataclass(frozen=True)
class Shutdown:
    """Finish the current batch, then exit."""


# Worker -> dispatcher.


@dataclass(frozen=True)
class WorkerReady:
    worker_id: int
    pid: int


@dataclass(frozen=True)
class VariantLoaded:
    worker_id: int
    variant: str
    load_time_s: float
    probe: tuple[str, float] | None = None
    """(level, seconds) of one timed batch-1 generation at the variant's cheapest level after
    the warm-up: calibrates the plane to this machine's speed before the first request."""


@dataclass(frozen=True)
class Progress:
    worker_id: int
    request_ids: tuple[str, ...]
    step: int
    """Steps done, counting the K skipped ones (so a resumed run starts at K + 1)."""
    total_steps: int
    previews: dict[str, tuple[bytes, ...]] = field(default_factory=dict)
    """request id -> one PNG per image of the x0 preview after this step (only for requests
    with `Job.partial_images` and only at their preview steps)."""


@dataclass(frozen=True)
class JobDone:
    worker_id: int
    request_id: str
    images_png: tuple[bytes, ...]
    captured: tuple[dict[int, np.ndarray], ...]
    """Per image: step -> latents, for the steps asked in `Job.capture_steps`."""
    steps_run: int
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class JobCancelled:
    worker_id: int
    request_id: str
    step: int


@dataclass(frozen=True)
class JobFailed:
    worker_id: int
    request_id: str
    error: str


@dataclass(frozen=True)
class BatchFinished:
    """The worker is idle again."""

    worker_id: int
    batch_id: int


@dataclass(frozen=True)
class WorkerDied:
    """Emitted by the pool (not the worker) when a worker process exits unexpectedly."""

    worker_id: int
    exitcode: int | None


WorkerEvent = (
    WorkerReady
    | VariantLoaded
    | Progress
    | JobDone
    | JobCancelled
    | JobFailed
    | BatchFinished
    | WorkerDied
)
