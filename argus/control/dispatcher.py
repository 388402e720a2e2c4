"""Per-level request queues, earliest deadline first, with the queued work each variant's workers
still have to do (the admission estimate).

Removal is lazy: each push gives the request a fresh token (`Request.queue_seq`) that its heap entry
carries; an entry whose token no longer matches (the request was cancelled, ran, or moved to
another level by `move`) is skipped on pop, so cancel and move are O(log n) and nothing is lost:
every request leaves a queue only through `pop` (to a worker or to an explicit rejection), `remove`
(cancelled by its client) or `move` (re-levelled, still queued).

Every request passes through `push` and `take_batch` (the simulator's hot path, millions of calls):
both are kept flat on purpose.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Sequence

from argus.types import Rejection, Request, RequestStatus

_QUEUED = RequestStatus.QUEUED
_RUNNING = RequestStatus.RUNNING
_REJECTED = RequestStatus.REJECTED
_heappush = heapq.heappush
_heappop = heapq.heappop


def batch_time(service_s: tuple[float, ...], images: int) -> float:
    """Service time of a batch of `images` (linear beyond the largest profiled batch)."""
    if images <= len(service_s):
        return service_s[images - 1]
    return service_s[-1] * images / len(service_s)


class LevelQueues:
    def __init__(self, level_variant: tuple[int, ...], image_time_s: tuple[float, ...]) -> None:
        self.level_variant = level_variant
        self.image_time_s = image_time_s
        self.heaps: list[list[tuple[float, int, Request]]] = [[] for _ in level_variant]
        """Per level: (deadline, arrival order, request) entries, a heap."""
        self.count = [0] * len(level_variant)
        """Live queued requests per level."""
        self.work_s = [0.0] * (max(level_variant) + 1)
        """Queued worker-seconds per variant."""
        self.variant_count = [0] * (max(level_variant) + 1)
        """Live queued requests per variant."""
        self.total = 0
        """Live queued requests."""
        self.images = 0
        """Live queued images (requests weighted by `n`)."""
        self._seq = itertools.count()
        self._by_id: dict[str, tuple[Request, int]] = {}

    def __len__(self) -> int:
        return self.total

    def push(self, request: Request, level: int) -> None:
        request.status = _QUEUED
        seq = request.queue_seq = next(self._seq)
        _heappush(self.heaps[level], (request.deadline_s, seq, request))
        self._by_id[request.request_id] = (request, level)
        self.count[level] += 1
        v = self.level_variant[level]
        self.work_s[v] += request.n * self.image_time_s[level] * request.work_scale
        self.variant_count[v] += 1
        self.total += 1
        self.images += request.n

    def _forget(self, request: Request, level: int) -> None:
        del self._by_id[request.request_id]
        request.queue_seq = -1
        self.count[level] -= 1
        v = self.level_variant[level]
        self.work_s[v] -= request.n * self.image_time_s[level] * request.work_scale
        self.variant_count[v] -= 1
        self.total -= 1
        self.images -= request.n

    def level_of(self, request_id: str) -> int:
        """Level position a queued request waits at; -1 if it is not queued."""
        entry = self._by_id.get(request_id)
        return -1 if entry is None else entry[1]

    def move(self, request: Request, level: int) -> None:
        """Re-level a queued request (its old heap entry goes stale); it then runs its new
        level's steps."""
        self._forget(request, self._by_id[request.request_id][1])
        request.run_steps, request.work_scale = None, request.run_fraction
        self.push(request, level)

    def head(self, level: int) -> Request | None:
        """The queued request with the earliest deadline at this level (not removed)."""
        heap = self.heaps[level]
        while heap and heap[0][2].queue_seq != heap[0][1]:
            _heappop(heap)
        return heap[0][2] if heap else None

    def earliest(self, levels: Sequence[int]) -> int:
        """Of `levels`, the one whose queued head has the earliest deadline (the first of equal
        ones), or -1 if they are all empty."""
        count, heaps = self.count, self.heaps
        level, first = -1, math.inf
        for j in levels:
            if count[j]:
                heap = heaps[j]
                if heap[0][2].queue_seq != heap[0][1]:
                    self.head(j)  # drop stale entries off the top
                deadline = heap[0][2].deadline_s
                if deadline < first:
                    level, first = j, deadline
        return level

    def earliest_requests(self, levels: Sequence[int], count: int) -> list[tuple[Request, int]]:
        """Up to `count` queued (request, level) pairs of `levels`, earliest deadline first,
        left queued. A best-first walk down each heap's tree: O(count log count) however long
        the queues are (stale entries are stepped over, their children still searched)."""
        heaps = self.heaps
        frontier = [(heaps[j][0], j, 0) for j in levels if heaps[j]]
        heapq.heapify(frontier)
        out: list[tuple[Request, int]] = []
        while frontier and len(out) < count:
            entry, j, i = heapq.heappop(frontier)
            if entry[2].queue_seq == entry[1]:
                out.append((entry[2], j))
            heap = heaps[j]
            for child in (2 * i + 1, 2 * i + 2):
                if child < len(heap):
                    heapq.heappush(frontier, (heap[child], j, child))
        return out

    def pop(self, level: int) -> Request | None:
        heap = self.heaps[level]
        while heap:
            _, seq, request = _heappop(heap)
            if request.queue_seq == seq:
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
        stretch: float = 1.0,
    ) -> tuple[list[Request], list[Request], int]:
        """Earliest-deadline-first batch of up to `limit` images from one level, marked RUNNING,
        that finishes by its earliest deadline (at least one request), plus the requests that
        would finish after `arrival + expire_after_slo x SLO` (taken out, marked REJECTED; the
        caller reports them), and the batch's image count. Profiled times are stretched by
        `stretch` (the plane's calibration: a request that would answer late is not started)."""
        heap = self.heaps[level]
        batch: list[Request] = []
        expired: list[Request] = []
        by_id = self._by_id
        image_time = self.image_time_s[level]
        v = self.level_variant[level]
        work_s = self.work_s
        images = 0
        deadline = math.inf
        while heap:
            _, seq, request = heap[0]
            if request.queue_seq != seq:
                _heappop(heap)
                continue
            size = images + request.n
            if size > limit and batch:
                break
            # A request wider than the limit runs alone rather than blocking its queue forever.
            scale = (batch[0].work_scale if batch else request.work_scale) * stretch
            finish = now + batch_time(service_s, size) * scale
            # It expires only if it cannot make it even alone: one that only misses in this
            # (grown) batch waits for the next one.
            if expire_after_slo is not None and (
                now + batch_time(service_s, request.n) * request.work_scale * stretch
                if batch else finish
            ) > request.arrival_s + expire_after_slo * (request.deadline_s - request.arrival_s):
                _heappop(heap)
                self._forget(request, level)
                request.status = _REJECTED
                request.reason = "deadline passed while queued"
                request.rejection = Rejection.EXPIRED
                expired.append(request)
                continue
            # One batch is one engine call: its requests run the same step count and share
            # the engine's other terms.
            if batch and (finish > deadline or request.run_steps != batch[0].run_steps
                          or request.batch_key != batch[0].batch_key):
                break
            _heappop(heap)
            # `_forget`, inlined (the counters are settled once after the loop).
            del by_id[request.request_id]
            request.queue_seq = -1
            work_s[v] -= request.n * image_time * request.work_scale
            request.status = _RUNNING
            request.start_s = now
            if request.deadline_s < deadline:
                deadline = request.deadline_s
            batch.append(request)
            images = size
        taken = len(batch)
        if taken:
            self.count[level] -= taken
            self.variant_count[v] -= taken
            self.total -= taken
            self.images -= images
        return batch, expired, images

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
