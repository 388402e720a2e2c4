"""The approximate cache's seam in the live runtime (contract D): the dispatcher calls a
`CacheHook` before admission, at dispatch and after completion (`argus.cache.serving`
implements it); `NoCache` serves every job from noise."""

from __future__ import annotations

from typing import Protocol

from argus.config import LevelConfig
from argus.runtime.base import CacheInfo, GenerationRequest
from argus.runtime.messages import Job, JobDone
from argus.types import Request


class CacheHook(Protocol):
    """The approximate cache's seam (contract D); it lives in this (front-end) process."""

    def annotate(self, request: Request, spec: GenerationRequest) -> None:
        """Before admission: e.g. set `request.cache_similarity` from a lookup."""

    def prepare(self, request: Request, job: Job, level: LevelConfig) -> tuple[Job, CacheInfo]:
        """At dispatch: return the job with `start_step`/`start_latents`/`capture_steps` set."""

    def store(self, request: Request, job: Job, done: JobDone) -> None:
        """After completion: keep `done.captured` (asynchronously)."""


class NoCache:
    """No approximate cache: every job starts from noise and nothing is captured."""

    def annotate(self, request: Request, spec: GenerationRequest) -> None:
        return None

    def prepare(self, request: Request, job: Job, level: LevelConfig) -> tuple[Job, CacheInfo]:
        return job, CacheInfo()

    def store(self, request: Request, job: Job, done: JobDone) -> None:
        return None
