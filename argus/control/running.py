"""What the busy workers still have to run: each started batch ends at its start plus its service
time, so an arrival waits for the remainder of the batches running now, not for a guess at it.

(The guess was half the running work: when a burst meets one long batch, say one request running
alone at the costliest level, half its work is 0.2-0.3 s short of what is left, and admission
promised that time to the burst.)

Per variant: a heap of the batch ends and their running sum, so `left_s` costs O(1) amortised;
an end that has passed drops out (a batch running over its estimate counts nothing more).
"""

from __future__ import annotations

import heapq

__all__ = ["RunningWork"]


class RunningWork:
    def __init__(self, variants: int, workers: int) -> None:
        self._entry: list[list | None] = [None] * workers
        """Per worker: [variant, end, token, counted] of the batch it runs, or None."""
        self._ends: list[list[tuple[float, int, int]]] = [[] for _ in range(variants)]
        """Per variant: (end, token, worker), a heap (entries of freed workers go stale)."""
        self._sum = [0.0] * variants
        self._count = [0] * variants
        self._token = 0

    def start(self, worker: int, variant: int, end: float) -> None:
        """`worker` started a batch of `variant` that ends at `end` (its previous one is over)."""
        self.free(worker)
        self._token += 1
        self._entry[worker] = [variant, end, self._token, True]
        heapq.heappush(self._ends[variant], (end, self._token, worker))
        self._sum[variant] += end
        self._count[variant] += 1

    def free(self, worker: int) -> None:
        """`worker`'s batch is over (finished, cut short, or the worker died)."""
        entry = self._entry[worker]
        if entry is None:
            return
        self._entry[worker] = None
        if entry[3]:
            self._uncount(entry[0], entry[1])

    def left_s(self, variant: int, now: float) -> float:
        """Worker-seconds the batches of `variant` running at `now` still take."""
        if not self._count[variant]:
            return 0.0  # (ended entries left in the heap are popped when it is next counted)
        ends = self._ends[variant]
        while ends and ends[0][0] <= now:
            end, token, worker = heapq.heappop(ends)
            entry = self._entry[worker]
            if entry is not None and entry[2] == token and entry[3]:
                entry[3] = False
                self._uncount(variant, end)
        return max(self._sum[variant] - self._count[variant] * now, 0.0)

    def _uncount(self, variant: int, end: float) -> None:
        self._count[variant] -= 1
        self._sum[variant] = self._sum[variant] - end if self._count[variant] else 0.0
