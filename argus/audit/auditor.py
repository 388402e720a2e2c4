"""The audit loop: sample served images, generate their full-level references through the
runtime on spare capacity, score both off the event loop, feed `AuditStats`.

Off the request path by construction: `offer` (called when a request completes) only decides and
enqueues, never blocks (a full queue drops the sample); one asyncio task takes samples one at a
time, waits until the runtime has no queued work (`audit.reference_max_queued`), submits the
reference (same prompt, seed and size at the full level, `quality: high`, tenant `argus-audit`)
and scores both images in a single scoring thread.
"""

from __future__ import annotations

import asyncio
import io
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from argus.audit.stats import AuditStats, Sample
from argus.config import ArgusConfig, LevelConfig
from argus.control.predictor import OffsetPredictor
from argus.runtime.base import GenerationRequest, JobOutcome, Runtime, ServingError
from argus.scorers import ImageScorer, make_scorer

log = logging.getLogger("argus.audit")

AUDIT_TENANT = "argus-audit"
SPARE_POLL_S = 0.1
QUALITY_FLOOR = 0.05
"""As `argus.profiling`: a full-level value below this is floored (relative quality = ratio)."""
RELATIVE_CAP = 2.0


def relative(value: float, full: float) -> float:
    """Measured relative quality, defined as the profiler defines it."""
    if value < QUALITY_FLOOR and full < QUALITY_FLOOR:
        return 1.0
    return min(value / max(full, QUALITY_FLOOR), RELATIVE_CAP)


@dataclass(frozen=True)
class Pending:
    """A sampled image waiting for its reference and scores."""

    level: str
    prompt: str
    request: GenerationRequest
    outcome: JobOutcome
    predicted: float
    offset: float


def audit_scorer_spec(config: ArgusConfig) -> str | None:
    """`audit.scorer`, else `shapes` when every variant is a shipped shapes model, else None."""
    if config.audit.scorer:
        return config.audit.scorer
    shapes = all(v.source.startswith("builtin:shapes") for v in config.variants)
    return "shapes" if shapes else None


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


class Auditor:
    def __init__(self, config: ArgusConfig, runtime: Runtime, scorer: Callable[[], ImageScorer],
                 full: LevelConfig, predictor: OffsetPredictor | None = None,
                 clock: Callable[[], float] = time.monotonic, seed: int = 0) -> None:
        """`scorer`: builds the scorer in the scoring thread (a CLIP model loads there)."""
        self.config = config
        self.cfg = config.audit
        self.runtime = runtime
        self.full = full
        self.predictor = predictor
        self.clock = clock
        self.stats = AuditStats(self.cfg)
        self._make_scorer = scorer
        self._scorer: ImageScorer | None = None
        self._rng = random.Random(seed)
        self._queue: asyncio.Queue[Pending] | None = None
        self._task: asyncio.Task | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="argus-audit")
        self._started: deque[float] = deque()
        self._last_offer: dict[str, float] = {}
        self.dropped: dict[str, int] = {}
        self.references = 0
        """Reference generations submitted (they show in the plane's admitted counts)."""
        self.on_sample: list[Callable[[Sample], None]] = []
        """Called on the event loop after each audited sample (metrics, dashboard)."""

    # -- the request path: decide and enqueue, never wait --------------------------------
    def offer(self, request: GenerationRequest, outcome: JobOutcome) -> bool:
        """Called when a request completes; True if its first image was queued for audit."""
        if self._queue is None or not self._auditable(request, outcome):
            return False
        now = self.clock()
        level = outcome.level
        stale = now - self._last_offer.get(level, -float("inf")) >= self.cfg.stale_s
        if not stale and self._rng.random() >= self.cfg.share:
            return False
        while self._started and self._started[0] < now - 60.0:
            self._started.popleft()
        if len(self._started) >= self.cfg.budget_per_min:
            return self._drop("budget")
        pending = Pending(level, request.prompt, request, outcome, outcome.predicted_quality or 0.0,
                          self.stats.level(level).offset)
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            return self._drop("queue_full")
        self._started.append(now)
        self._last_offer[level] = now
        return True

    def _auditable(self, request: GenerationRequest, outcome: JobOutcome) -> bool:
        """Requests whose reference is the full level: not pinned, default step count."""
        return (outcome.predicted_quality is not None and bool(outcome.images_png)
                and request.pinned_variant is None and request.pinned_steps is None
                and request.requested_steps is None and not request.no_approximation
                and request.tenant != AUDIT_TENANT)

    def _drop(self, reason: str) -> bool:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        return False

    # -- the background loop --------------------------------------------------------------
    async def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.cfg.queue)
        self._task = asyncio.create_task(self._run(), name="argus-audit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._thread.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            pending = await self._queue.get()
            try:
                await self._audit(pending)
            except asyncio.CancelledError:
                raise
            except Exception:  # an audit must never take the server down
                log.exception("quality audit of a %s image failed", pending.level)
                self._drop("error")

    async def _audit(self, p: Pending) -> None:
        served = p.outcome.images_png[0]
        if self._is_full(p.level):
            reference = served  # the full level is its own reference
        else:
            reference = await self._reference(p)
            if reference is None:
                return
        loop = asyncio.get_running_loop()
        measured = await loop.run_in_executor(self._thread, self._score, served, reference,
                                              p.prompt)
        sample = Sample(self.clock(), p.level, measured, p.predicted, p.offset,
                        p.outcome.request_id, p.prompt)
        if self.stats.add(sample, sample.t_s) and self.predictor is not None:
            self.predictor.set_offsets(self.stats.offsets())
        for hook in self.on_sample:
            hook(sample)

    def _is_full(self, level: str) -> bool:
        return level == self.full.name

    async def _reference(self, p: Pending) -> bytes | None:
        """The full-level image of the same prompt, seed and size, generated on spare capacity;
        None (dropped) when the runtime stays busy or refuses it."""
        deadline = self.clock() + 60.0
        while sum(self.runtime.queue_lengths().values()) > self.cfg.reference_max_queued:
            if self.clock() > deadline:
                return self._drop("busy") or None
            await asyncio.sleep(SPARE_POLL_S)
        r, o = p.request, p.outcome
        spec = GenerationRequest(
            prompt=r.prompt, n=1, negative_prompt=r.negative_prompt, seed=o.seed,
            width=o.width, height=o.height, guidance_scale=r.guidance_scale,
            pinned_variant=self.full.variant, pinned_steps=self.full.steps,
            no_approximation=True, tenant=AUDIT_TENANT,
        )
        try:
            self.references += 1
            handle = await self.runtime.submit(spec)
            outcome = await handle.outcome
        except ServingError as err:
            log.info("quality audit reference not generated: %s", err)
            return self._drop("reference_failed") or None
        return outcome.images_png[0]

    def _score(self, served: bytes, reference: bytes, prompt: str) -> float:
        """In the scoring thread: both images through the family's scorer."""
        if self._scorer is None:
            self._scorer = self._make_scorer()
        value, full = (s.value for s in self._scorer.score(
            [decode(served), decode(reference)], [prompt, prompt]))
        return relative(value, full)

    def drifting(self) -> list[str]:
        """Levels whose drift alarm is raised (idle ones cleared first)."""
        self.stats.expire(self.clock())
        return self.stats.drifting()

    def snapshot(self) -> dict[str, Any]:
        self.stats.expire(self.clock())
        return {"enabled": True, "scorer": audit_scorer_spec(self.config), "full_level":
                self.full.name, "queued": self._queue.qsize() if self._queue else 0,
                "dropped": dict(self.dropped), "references": self.references,
                **self.stats.snapshot()}


def _scorer_factory(spec: str) -> Callable[[], ImageScorer]:
    def build() -> ImageScorer:
        if not spec.startswith("shapes"):
            import torch  # a model scorer: one thread, beside the workers

            torch.set_num_threads(1)
        return make_scorer(spec)

    return build


def full_level(config: ArgusConfig, runtime: Runtime) -> LevelConfig:
    """The plane's full level (relative quality 1.0), else the first configured level."""
    plane = getattr(runtime, "plane", None)
    if plane is not None:
        return config.level(plane.table.names[plane.table.full])
    return config.levels[0]


def build_auditor(config: ArgusConfig, runtime: Runtime) -> Auditor | None:
    """The configured auditor, its offsets installed in the runtime's predictor; None when the
    audit is off or no scorer fits the family."""
    spec = audit_scorer_spec(config)
    if not config.audit.enabled or spec is None:
        return None
    plane = getattr(runtime, "plane", None)
    predictor = None
    if plane is not None:
        predictor = OffsetPredictor(plane.predictor, config.audit.offsets)
        plane.predictor = predictor
    return Auditor(config, runtime, _scorer_factory(spec), full_level(config, runtime), predictor)
