"""Which level each worker runs: the plan's assignment, plus workers lent for a pinned variant.

A worker holding a variant runs any of its levels; moving it to another variant makes it load
that variant first. Plans move as few workers as possible, same-variant moves (free) first. A
request pinned to a variant no worker holds borrows one worker for as long as that variant has
queued work (`lend`), and the worker returns to its planned level afterwards (`give_back`);
every plan first takes lent workers back, then the plane lends again where pinned work still
waits.
"""

from __future__ import annotations

import heapq

import numpy as np

from argus.control.levels import LevelTable

__all__ = ["WorkerLevels"]


class WorkerLevels:
    def __init__(self, table: LevelTable, num_workers: int) -> None:
        self.table = table
        self.level = [table.full] * num_workers
        """Level position of every worker: a live view (executors read it; it changes in
        place)."""
        self.per_level = np.zeros(len(table), int)
        self.per_variant = [0] * len(table.load_time_s)
        self.lent: dict[int, int] = {}
        """Lent worker -> the planned level it returns to."""
        self.lent_from = [0] * len(table.load_time_s)
        """Per variant: its planned workers lent away now."""
        self._last_lent: dict[int, int] = {}
        self.changes = 0
        """Bumped on every change (executors that keep idle lists re-read the view then)."""
        self._held = [table.variant[table.full]] * num_workers
        self._held_batch_s = [table.batch_time_s[table.full]] * num_workers
        self.loading: list[list[float]] = [[] for _ in table.load_time_s]
        self._loading_sum = [0.0] * len(table.load_time_s)
        """Per variant: when each worker moved onto it will have loaded it (capacity that is
        still loading is not available: `loading_s`)."""
        self._count(0.0)

    def _count(self, now: float) -> None:
        self.changes += 1
        table = self.table
        variant, load_time = table.variant, table.load_time_s
        for worker, level in enumerate(self.level):
            v = variant[level]
            if v != self._held[worker]:
                # It loads once its current batch is done (counted as a full batch).
                until = now + self._held_batch_s[worker] + load_time[v]
                heapq.heappush(self.loading[v], until)
                self._loading_sum[v] += until
                self._held[worker] = v
            self._held_batch_s[worker] = table.batch_time_s[level]
        self.per_level = np.bincount(self.level, minlength=len(self.table))
        self.per_variant = [0] * len(self.per_variant)
        for lv, n in enumerate(self.per_level):
            self.per_variant[self.table.variant[lv]] += int(n)

    def loading_s(self, variant: int, now: float) -> float:
        """Worker-seconds of `variant`'s capacity still loading at `now` (O(1) amortised: a
        heap of ready times and their running sum)."""
        pending = self.loading[variant]
        while pending and pending[0] <= now:
            self._loading_sum[variant] -= heapq.heappop(pending)
        if not pending:
            self._loading_sum[variant] = 0.0
            return 0.0
        return self._loading_sum[variant] - len(pending) * now

    def assign(self, target: np.ndarray, now: float) -> bool:
        """Move workers to the plan's per-level counts; whether anything moved."""
        self.give_back_all(now)
        if np.array_equal(target, self.per_level):
            return False
        have = self.per_level.copy()
        free: list[int] = []
        for worker in range(len(self.level) - 1, -1, -1):
            level = self.level[worker]
            if have[level] > target[level]:
                have[level] -= 1
                free.append(worker)
        need = {lv: int(target[lv] - have[lv]) for lv in range(len(target))
                if target[lv] > have[lv]}
        variant = self.table.variant
        for same_variant in (True, False):
            for worker in list(free):
                old = variant[self.level[worker]]
                for lv in need:
                    if need[lv] > 0 and (variant[lv] == old) == same_variant:
                        self.level[worker] = lv
                        need[lv] -= 1
                        free.remove(worker)
                        break
        self._count(now)
        return True

    def lender(self, running_s: list[float], variant: int | None = None) -> int | None:
        """The worker to lend (to `variant`): the one lent to it last if it is free to lend
        (it may hold the variant already: lending it again costs no load), else one from the
        variant with the most workers, the least loaded among equals; None if every worker is
        lent already."""
        table = self.table
        candidates = [w for w in range(len(self.level)) if w not in self.lent]
        if not candidates:
            return None
        last = self._last_lent.get(variant) if variant is not None else None
        if last in candidates:
            return last
        return max(candidates, key=lambda w: (self.per_variant[table.variant[self.level[w]]],
                                              -running_s[table.variant[self.level[w]]], -w))

    def lend(self, worker: int, level: int, now: float) -> None:
        """`worker` runs `level` (a variant none holds) until `give_back`."""
        self._last_lent[self.table.variant[level]] = worker
        self.lent[worker] = self.level[worker]
        self.lent_from[self.table.variant[self.level[worker]]] += 1
        self.level[worker] = level
        self._count(now)

    def give_back(self, worker: int, now: float) -> None:
        planned = self.lent.pop(worker)
        self.lent_from[self.table.variant[planned]] -= 1
        self.level[worker] = planned
        self._count(now)

    def give_back_all(self, now: float) -> None:
        for worker in list(self.lent):
            self.give_back(worker, now)

    def lent_to(self, variant: int) -> list[int]:
        return [w for w in self.lent if self.table.variant[self.level[w]] == variant]
