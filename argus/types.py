"""Types shared by the API, the control plane, the runtime and the simulator.

`Request` is the control plane's view of one generation request: the same object is queued,
planned and dispatched whether a real worker or a simulated one serves it. Wire formats (HTTP
bodies, worker messages) live next to their transport and convert to and from these.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field


class RequestStatus(enum.IntEnum):
    QUEUED = 0
    RUNNING = 1
    # Every terminal status comes after RUNNING.
    COMPLETED = 2
    REJECTED = 3
    CANCELLED = 4
    FAILED = 5

    @property
    def finished(self) -> bool:
        return self >= RequestStatus.COMPLETED


class Rejection(enum.Enum):
    """Why the control plane did not serve a request: one typed reason, mapped to an HTTP status
    and error code in one table (`argus.runtime.base.REJECTION_HTTP`); `Request.reason` carries
    the words for the client."""

    QUEUE_FULL = "queue_full"
    """No room in the queue now: slow down and retry."""
    OVERLOADED = "overloaded"
    """No compatible level can finish it before its deadline."""
    EXPIRED = "deadline_passed"
    """Its deadline passed while it was queued."""
    NO_WORKER = "no_worker"
    """No worker runs (or can load in time) what it is pinned to, or a re-plan left none."""
    UNKNOWN_VARIANT = "unknown_variant"
    POLICY = "policy"
    """The serving policy declined it."""
    FAILED = "failed"
    """It failed twice (a worker crashed while generating it)."""


def new_request_id() -> str:
    return f"img-{uuid.uuid4().hex[:20]}"


@dataclass(slots=True)
class Request:
    """Mutable control-plane state of one request (times in seconds on the caller's clock)."""

    prompt: str
    arrival_s: float
    deadline_s: float
    """Absolute time by which the response must be sent (arrival + SLO)."""
    request_id: str = field(default_factory=new_request_id)
    n: int = 1
    """Images in this request (all served at one level, in one batch slot each)."""
    tenant: str = "default"
    seed: int | None = None
    quality_floor: float | None = None
    """Minimum relative quality; None = the configured default."""
    pinned_variant: str | None = None
    pinned_steps: int | None = None
    """Run exactly this many steps (with `no_approximation`, or a trace/API pin)."""
    pinned_level: str | None = None
    """`model: <level name>`: run at exactly that level (`StepModel.pinned_level`), which tells
    apart levels of one variant and step count that differ in their feature cache."""
    requested_steps: int | None = None
    """Asked-for step count: the reference quality it may be approximated against
    (`argus.control.steps`); None = the variant's own."""
    no_approximation: bool = False
    """`quality: high`: serve the full level only."""
    prompt_id: int | None = None
    """Index into a profile's per-prompt table (simulator and offline studies)."""
    cache_similarity: float | None = None
    """Top-1 similarity to the approximate cache, when known before dispatch."""
    predicted_quality: dict[str, float] | None = None
    """Predicted relative quality per level name, filled by the predictor."""
    optimal_level: str | None = None
    level: str | None = None
    """Level it was (or will be) served at."""
    status: RequestStatus = RequestStatus.QUEUED
    reason: str | None = None
    """Why it was rejected or moved, in words a client can read."""
    rejection: Rejection | None = None
    """Why it was not served (set with status REJECTED or FAILED)."""
    start_s: float | None = None
    finish_s: float | None = None
    run_steps: int | None = None
    """Steps it runs when not its level's (an exact run of a count the profile lacks)."""
    work_scale: float = 1.0
    """Its cost per image relative to its level's (exact runs of other step counts), times
    `run_fraction`."""
    run_fraction: float = 1.0
    """Its base cost per image relative to a plain run of its level, kept through any override:
    the share of its schedule it runs (an edit starts at step K = (1 - strength) x N, so costs
    about `strength` of a run from noise) times its pixel area over the native size's."""
    batch_key: tuple = ()
    """What batch-mates must share besides their level and step count, so that one batch is
    one engine call (the runtime sets the engine's terms: size, guidance, an edit's input)."""
    queue_seq: int = -1
    """Token of its live queue entry (`LevelQueues`); -1 when not queued. An entry whose token
    differs is stale (the request moved level, ran or left)."""

    @property
    def pinned(self) -> bool:
        """Pinned requests run at one level (or exact step count) and are never re-levelled."""
        return self.no_approximation or self.pinned_variant is not None or (
            self.pinned_steps is not None
        )

    @property
    def latency_s(self) -> float | None:
        if self.finish_s is None:
            return None
        return self.finish_s - self.arrival_s

    @property
    def met_slo(self) -> bool:
        return self.status == RequestStatus.COMPLETED and self.finish_s is not None and (
            self.finish_s <= self.deadline_s
        )
