"""Per-level request queues, earliest deadline first, with the queued work each variant's workers
still have to do (the admission estimate).

Removal is lazy: a cancelled request stays in its heap marked CANCELLED and is skipped on pop, so
cancel is O(1) and nothing is lost: every request leaves a queue only through `pop` (to a worker or
to an explicit rejection) or `remove` (cancelled by its client).
"""

from __future__ import annotations

import heapq
import itertools

from argus.types import Request, RequestStatus

_QUEUED = RequestStatus.QUEUED
_RUNNING = RequestStatus.RUNNING
_REJECTED = RequestStatus.REJECTED
# Batches group equal resolutions once requests carry one (contract B); until then one level
# is one compatible group.
_HAS_RESOLUTION = "resolution" in getattr(Request, "__slots__", ())


class LevelQueues:
    def __init__(self, level_variant: tuple[int, ...], image_time_s: tuple[float, ...]) -> None:
        self.level_variant = level_variant
        self.image_time_s = image_time_s
        self.heaps: list[list[tuple[float, int, int, Request]]] = [[] for _ in level_variant]
        self.count = [0] * len(level_variant)
        """Live queued requests per level."""
        self.work_s = [0.0] * (max(level_variant) + 1)
        """Queued worker-seconds per variant."""
        self.variant_count = [0] * (max(level_variant) + 1)
        """Live queued requests per variant."""
        self.total = 0
        self._seq = itertools.count()
        self._by_id: dict[str, tuple[Request, int]] = {}

    def __len__(self) -> int:
        return self.total

    def push(self, request: Request, level: int) -> None:
        request.status = _QUEUED
        heapq.heappush(self.heaps[level], (request.deadline_s, next(self._seq), level, request))
        self._by_id[request.request_id] = (request, level)
        self.count[level] += 1
        v = self.level_variant[level]
        self.work_s[v] += request.n * self.image_time_s[level]
        self.variant_count[v] += 1
        self.total += 1

    def _forget(self, request: Request, level: int) -> None:
        del self._by_id[request.request_id]
        self.count[level] -= 1
        v = self.level_variant[level]
        self.work_s[v] -= request.n * self.image_time_s[level]
        self.variant_count[v] -= 1
        self.total -= 1

    def head(self, level: int) -> Request | None:
        """The queued request with the earliest deadline at this level (not removed)."""
        heap = self.heaps[level]
        while heap and heap[0][3].status is not _QUEUED:
            heapq.heappop(heap)
        return heap[0][3] if heap else None

    def pop(self, level: int) -> Request | None:
        heap = self.heaps[level]
        while heap:
            request = heapq.heappop(heap)[3]
            if request.status is _QUEUED:
                self._forget(request, level)
                return request
        return None

    def take_batch(
        self,
        level: int,
        now: float,
        limit: int,
        service_s: tuple[float, ...],
        expire_after_slo: float | None,
    ) -> tuple[list[Request], list[Request]]:
        """Earliest-deadline-first batch of up to `limit` images from one level, marked RUNNING,
        that finishes by its earliest deadline (at least one request), plus the requests that
        would finish after `arrival + expire_after_slo x SLO` (taken out, marked REJECTED; the
        caller reports them)."""
        heap = self.heaps[level]
        batch: list[Request] = []
        expired: list[Request] = []
        images = 0
        deadline = float("inf")
        while heap:
            request = heap[0][3]
            if request.status is not _QUEUED:
                heapq.heappop(heap)
                continue
            size = images + request.n
            if size > limit:
                break
            finish = now + service_s[size - 1]
            if expire_after_slo is not None and finish > request.arrival_s + expire_after_slo * (
                request.deadline_s - request.arrival_s
            ):
                heapq.heappop(heap)
                self._forget(request, level)
                request.status = _REJECTED
                request.reason = "deadline passed while queued"
                expired.append(request)
                continue
            if batch and (finish > deadline or (
                _HAS_RESOLUTION and request.resolution != batch[0].resolution  # type: ignore[attr-defined]
            )):
                break
            heapq.heappop(heap)
            self._forget(request, level)
            request.status = _RUNNING
            request.start_s = now
            if request.deadline_s < deadline:
                deadline = request.deadline_s
            batch.append(request)
            images = size
        return batch, expired

    def remove(self, request_id: str) -> Request | None:
        entry = self._by_id.get(request_id)
        if entry is None:
            return None
        request, level = entry
        self._forget(request, level)
        request.status = RequestStatus.CANCELLED
        return request

    def queued(self) -> list[Request]:
        return [request for request, _ in self._by_id.values()]
