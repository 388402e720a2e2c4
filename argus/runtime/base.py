"""The runtime interface the API uses, and the types that cross it.

The API validates HTTP input into a `GenerationRequest`, submits it and reads progress and the
outcome from a `JobHandle`. Which machinery serves it (the local dispatcher over worker processes
now, Ray later) stays behind `Runtime`.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from argus.runtime.messages import EditInput
from argus.types import Rejection


@dataclass(frozen=True)
class GenerationRequest:
    """A validated image request, as the API hands it over."""

    prompt: str
    n: int = 1
    negative_prompt: str = ""
    seed: int | None = None
    """None: the runtime picks one (and reports it)."""
    width: int | None = None
    """None (size `auto`): the serving variant's native resolution."""
    height: int | None = None
    guidance_scale: float | None = None
    """None: the serving variant's default."""
    pinned_variant: str | None = None
    pinned_steps: int | None = None
    """Run exactly this many steps."""
    pinned_level: str | None = None
    """The level `model` named, if it named one (`Request.pinned_level`)."""
    requested_steps: int | None = None
    """Asked-for steps the control plane may approximate against."""
    no_approximation: bool = False
    quality_floor: float | None = None
    tenant: str = "default"
    partial_images: int = 0
    """x0 previews per image sent with the progress updates (streaming `partial_images`)."""
    edit: EditInput | None = None
    """POST /v1/images/edits: the images (at the output size), mask and strength."""
    received_s: float | None = None
    """`time.monotonic()` when the HTTP request arrived: its SLO counts from there, not from
    when the runtime saw it (body parsing, fair-share waits and a burst's own queue on the event
    loop are part of the latency the client sees)."""


@dataclass(frozen=True)
class CacheInfo:
    hit: bool = False
    k: int = 0
    similarity: float | None = None
    entry_id: str | None = None
    """The cache entry resumed from (None on a miss)."""


@dataclass
class JobOutcome:
    """A completed request: its images and how it was served."""

    request_id: str
    images_png: list[bytes]
    variant: str
    level: str
    steps: int
    steps_run: int
    seed: int
    width: int
    height: int
    cache: CacheInfo = field(default_factory=CacheInfo)
    predicted_quality: float | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    """queue, run, total (plus the engine's encode/denoise/decode)."""
    met_slo: bool = True


@dataclass(frozen=True)
class ProgressUpdate:
    step: int
    total_steps: int
    previews: tuple[bytes, ...] = ()
    """One PNG per image of the request: the x0 preview after this step (else empty)."""


class ServingError(Exception):
    """Base of the errors a runtime reports to the API."""


REJECTION_HTTP: dict[Rejection, tuple[int, str]] = {
    Rejection.QUEUE_FULL: (429, "queue_full"),
    Rejection.OVERLOADED: (503, "overloaded"),
    Rejection.EXPIRED: (503, "deadline_passed"),
    Rejection.NO_WORKER: (503, "no_worker"),
    Rejection.UNKNOWN_VARIANT: (400, "model_not_found"),
    Rejection.POLICY: (503, "rejected_by_policy"),
    Rejection.FAILED: (503, "generation_failed"),
}
"""The one table from the control plane's typed rejection to HTTP status and error code: 429
means slow down (retry after the queue turns over), 503 that it cannot be served in time now."""


class Overloaded(ServingError):
    """Not admitted: the API answers `status_code` (429 queue full, 503 otherwise) with
    Retry-After and the error `code`."""

    def __init__(self, reason: str, retry_after_s: float, status_code: int = 429,
                 code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.status_code = status_code
        self.code = code or ("queue_full" if status_code == 429 else "overloaded")

    @classmethod
    def of(cls, rejection: Rejection | None, reason: str, retry_after_s: float) -> Overloaded:
        status, code = REJECTION_HTTP.get(rejection, (503, "overloaded")) if rejection else (
            503, "overloaded")
        return cls(reason, retry_after_s, status_code=status, code=code)


class GenerationFailed(ServingError):
    """Admitted but not served (e.g. its worker crashed twice, or it ran past the job time
    limit)."""


class InvalidGenerationInput(GenerationFailed):
    """The engine rejected this request's own input while its batch-mates were served (e.g. a
    prompt the tokenizer cannot take): the API answers 400, a retry would fail the same way."""


class GenerationCancelledError(ServingError):
    """Cancelled by the client (disconnect or DELETE)."""


class JobHandle:
    """What `Runtime.submit` returns: progress updates, then the outcome."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.progress: asyncio.Queue[ProgressUpdate | None] = asyncio.Queue()
        """Per-step updates; None after the outcome is set."""
        self.outcome: asyncio.Future[JobOutcome] = asyncio.get_running_loop().create_future()
        self.level: str | None = None
        self.predicted_quality: float | None = None

    def finish(self, outcome: JobOutcome | None = None, error: Exception | None = None) -> None:
        if self.outcome.done():
            return
        if error is not None:
            self.outcome.set_exception(error)
            self.outcome.exception()  # mark retrieved: a client that left must not warn
        else:
            self.outcome.set_result(outcome)
        self.progress.put_nowait(None)


class Runtime(ABC):
    """Serves `GenerationRequest`s. Implementations: `argus.runtime.dispatcher.Dispatcher`."""

    @abstractmethod
    async def start(self) -> None:
        """Start workers; returns once they are starting (see `ready`)."""

    @abstractmethod
    async def submit(self, request: GenerationRequest) -> JobHandle:
        """Admit the request or raise `Overloaded`; never blocks on the queue."""

    @abstractmethod
    async def cancel(self, request_id: str) -> bool:
        """Stop a queued or running request at its next step; False if unknown or finished."""

    @abstractmethod
    def ready(self) -> bool:
        """True when at least one worker can take work and the runtime is not draining."""

    def not_ready_reason(self) -> str | None:
        """Why `ready` is false, in words for the /ready body (None when ready)."""
        return None if self.ready() else "no worker is ready yet (or the server is draining)"

    @abstractmethod
    def snapshot(self) -> dict[str, Any]:
        """Cluster state (control-plane snapshot plus workers), served as GET /v1/cluster."""

    @abstractmethod
    def queue_lengths(self) -> dict[str, int]:
        """Queued requests per level."""

    @abstractmethod
    async def shutdown(self, drain_timeout_s: float = 30.0) -> None:
        """Stop admitting, let admitted requests finish (up to the timeout), stop workers."""
