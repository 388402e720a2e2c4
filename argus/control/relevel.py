"""Degrade before drop: re-level queued requests to cheaper compatible levels when the queued work
of a variant cannot all finish by its deadlines.

Queued requests are not committed to a level until they start. The problem, per variant v with
W workers and queued requests r in EDF order, each at a level l_r among its compatible levels C_r
(levels of v predicted at or above its floor minus the redirect tolerance, or the overload
floor for requests on the default floor: `ControlPlane.lowest_quality`; pinned requests have
one):

    maximise   sum_r n_r q_r(l_r)
    subject to now + (R_v / 2 + sum_{s <= r} n_s t(l_s)) / W + tail_r <= d_r   for every r

with t(l) the worker-seconds per image at the level's planning batch, R_v the running work and
tail_r the service time of the batch r joins (the plane's `finish_estimate`, the fluid model
admission uses). For a late arrival, every saving
by a request due no later than it counts the same, so its constraint is a knapsack, and the
greedy that solves the knapsack's fractional relaxation applies: take the move with the least
predicted quality loss per worker-second saved (ties: earliest deadline), along each request's
lower convex hull of (time, quality), until the arrival fits. It is admitted by such moves only
while the quality they cost stays below the quality the arrival itself is predicted to get (an
extra request served is worth one request's quality; anything dearer is a rejection: the last
resort, with its reason).

Two refinements. The queue's debt (work already queued past the arrival's deadline, because the
workers ran slower than planned) is repaired by the same moves, but their loss is not charged to
the arrival. And at dispatch, under load, one batch is one level (`coalesce`): the earliest
requests join at the level best for them that costs no more than their queued levels were
charged, so the queue runs as full batches in deadline order.

Cost: candidate moves live in one heap per variant, built from that variant's queue the first
time it is overloaded and kept (each push adds its next move, a move adds the one after) until
the variant's queue empties; stale entries are skipped by the queue token. An admission that needs
no move costs nothing; one that does costs O(moves x log n).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable

from argus.control.dispatcher import LevelQueues, batch_time
from argus.control.levels import LevelTable
from argus.types import Request

__all__ = ["Releveler"]

UPGRADE_MARGIN = 1.25
"""Quality up when idle only where the better level's run, stretched by this factor, still ends
by the deadline: an upgrade must never make an answer late (service times vary live)."""
UPGRADE_EXTRA_SHARE = 0.05
"""An upgrade's extra run time (over the request's own level) is at most this share of what its
variant's workers serve in one SLO window (SLO x workers): the worker it holds is lost to a burst
that arrives meanwhile. (On one worker, a request upgraded to the costliest level on an idle
server cost a burst a fifth of its window; on a large cluster the bound is loose.)"""
CREDIT_SPENT = 0.5
"""Share of a variant's credit (`coalesce`) one joint batch may spend: the rest is a cushion for
the queue's tail, whose partial batches cost more per image than admission charged."""
MEMO_SIZE = 1 << 14
"""Next moves remembered (then the memory starts over)."""
_Move = tuple[float, float, int, Request, int, int, int]
"""(loss per worker-second saved, deadline, order, request, its queue token, from, to)."""


class Releveler:
    def __init__(
        self,
        table: LevelTable,
        queues: LevelQueues,
        lowest: Callable[[Request], float],
        finish: Callable[[int, float, int, float, float], float],
        variant_workers: Callable[[int], int],
        queue_debt: Callable[[int, float, float], float] | None = None,
    ) -> None:
        self.table = table
        self.queues = queues
        self.lowest = lowest
        """The least predicted quality a request may be moved to under load."""
        self.finish = finish
        """The plane's `finish_estimate(level, now, images, scale, saved_s)`."""
        self.variant_workers = variant_workers
        self.queue_debt = queue_debt
        """Worker-seconds of a variant's queued and running work past a deadline
        (`ControlPlane.queue_debt_s(variant, now, deadline)`)."""
        variants = len(table.load_time_s)
        # Per variant: its levels from the most to the least work per image.
        self._ladder = [
            sorted(table.levels_of_variant(v), key=lambda i: -table.image_time_s[i])
            for v in range(variants)
        ]
        self._moves: list[list[_Move] | None] = [None] * variants
        self._upgrade_ladders: dict[tuple, list[int]] = {}
        """(variant, level, n, run fraction, workers) -> the levels an upgrade may take."""
        self._credit = [0.0] * variants
        """Per variant: worker-seconds its joint batches saved against their charge (`coalesce`)."""
        self._active = 0
        self._order = itertools.count()
        self.moved = 0
        """Requests re-levelled so far (each move counts)."""
        self._memo: dict[tuple, tuple[dict[str, float], tuple[float, int] | None]] = {}

    # ----------------------------------------------------------------- candidates
    def next_move(self, request: Request, level: int, scale: float | None = None) \
            -> tuple[float, int] | None:
        """The request's next step down its convex hull from `level`: (quality loss per
        worker-second saved, target level), or None when no cheaper level is compatible.
        `scale`: its cost relative to the level's (default: its own `work_scale`)."""
        scale = request.work_scale if scale is None else scale
        quality = request.predicted_quality or {}
        # Requests with the same prediction (predictors share their dicts), level and floor
        # share their next move: computed once (the dict is kept with it, so its id is safe).
        key = (id(quality), level, scale, request.quality_floor, request.pinned)
        cached = self._memo.get(key)
        if cached is not None and cached[0] is quality:
            return cached[1]
        table = self.table
        names, means, image_time = table.names, table.mean_quality, table.image_time_s
        t_now = image_time[level] * scale
        q_now = quality.get(names[level], means[level])
        best: tuple[float, int] | None = None
        for j in self._compatible(request, level, t_now):
            ratio = max(q_now - quality.get(names[j], means[j]), 0.0) / (t_now - image_time[j])
            if best is None or ratio < best[0]:
                best = (ratio, j)
        if len(self._memo) >= MEMO_SIZE:
            self._memo.clear()
        self._memo[key] = (quality, best)
        return best

    def note_queued(self, request: Request, level: int) -> None:
        """A request was queued at `level`: it becomes a candidate while its variant is
        overloaded."""
        moves = self._moves[self.table.variant[level]]
        if moves is not None:
            self._push(moves, request, level)

    def _push(self, moves: list[_Move], request: Request, level: int) -> None:
        step = self.next_move(request, level)
        if step is not None:
            heapq.heappush(moves, (step[0], request.deadline_s, next(self._order), request,
                                   request.queue_seq, level, step[1]))

    @property
    def active(self) -> bool:
        """Whether some variant is overloaded (queued requests are candidates)."""
        return self._active > 0

    def _heap(self, variant: int) -> list[_Move]:
        moves = self._moves[variant]
        if moves is None:  # an overload starts: its credit too (`coalesce`)
            moves = self._moves[variant] = []
            self._active += 1
            self._credit[variant] = 0.0
            queues = self.queues
            for request in queues.queued():
                level = queues.level_of(request.request_id)
                if self.table.variant[level] == variant:
                    self._push(moves, request, level)
        return moves

    def forget_idle(self) -> None:
        """Drop the candidate heaps of variants with nothing queued (overload is over)."""
        for v, moves in enumerate(self._moves):
            if moves is not None and not self.queues.variant_count[v]:
                self._moves[v] = None
                self._active -= 1
            if not self.queues.variant_count[v]:
                self._credit[v] = 0.0

    # ----------------------------------------------------------------- moves
    def make_room(self, request: Request, level: int, now: float) -> int | None:
        """The level at which the (not yet queued) `request` finishes by its deadline after
        re-levelling queued requests of the same variant, the moves applied; None (nothing
        changed) if no set of moves costing less quality than the request itself does it."""
        table = self.table
        names, means, image_time = table.names, table.mean_quality, table.image_time_s
        v = table.variant[level]
        workers = self.variant_workers(v)
        if not workers:
            return None
        moves = self._heap(v)
        quality = request.predicted_quality or {}
        own, own_next = level, self.next_move(request, level)
        saved_s = loss = repaired = 0.0
        # The queue's debt: work already queued past this arrival's deadline (the workers ran
        # slower than planned, or a re-plan moved capacity). Its repair is owed to the requests
        # queued, not to the arrival: those moves do not count against what it brings.
        debt_s = 0.0 if self.queue_debt is None else self.queue_debt(v, now, request.deadline_s)
        taken: list[tuple[Request, int, int, _Move | None]] = []
        chained: list[_Move] = []  # next steps of requests moved in this call (not yet applied)
        skipped: list[_Move] = []  # due after the arrival: moving them would not help it
        while True:
            scale = request.work_scale if own == level else 1.0
            late = self.finish(own, now, request.n, scale, saved_s) - request.deadline_s
            worth = request.n * quality.get(names[own], means[own])
            if late <= 0 or loss - repaired >= worth:
                break
            self._drop_stale(moves, request.deadline_s, skipped)
            best = min((m for m in (moves[0] if moves else None,
                                    chained[0] if chained else None) if m is not None),
                       default=None)
            if own_next is not None and (best is None or own_next[0] <= best[0]):
                target = own_next[1]
                loss += request.n * (quality.get(names[own], means[own])
                                     - quality.get(names[target], means[target]))
                own, own_next = target, self.next_move(request, target)
                continue
            if best is None:
                break
            move = heapq.heappop(moves if moves and best is moves[0] else chained)
            other, source, target = move[3], move[5], move[6]
            first = move[4] >= 0  # a chained step starts from a level it runs unscaled
            saved = other.n * (image_time[source] * (other.work_scale if first else 1.0)
                               - image_time[target])
            if saved_s < debt_s:
                repaired += move[0] * min(saved, debt_s - saved_s)
            saved_s += saved
            loss += move[0] * saved
            taken.append((other, source, target, move if first else None))
            step = self.next_move(other, target, 1.0)
            if step is not None:
                heapq.heappush(chained, (step[0], other.deadline_s, next(self._order), other,
                                         -1, target, step[1]))
        for move in skipped:
            heapq.heappush(moves, move)
        if late > 0 or loss - repaired >= worth:
            for _, _, _, move in taken:
                if move is not None:
                    heapq.heappush(moves, move)
            return None
        self._apply(moves, taken)
        return own

    def rescue(self, request: Request, level: int, now: float, slowdown: float = 1.0) -> bool:
        """At dispatch: a queued request that can no longer finish by its deadline at its level
        moves to the best compatible level of the same variant at which it still can, run at
        once on its own; False (nothing changed) if there is none."""
        best = self._best_in_time(request, self._compatible(request, level), now, slowdown)
        if best < 0:
            return False
        self._move(request, level, best, "to meet its deadline at dispatch")
        return True

    def upgrade_alone(self, level: int, now: float, slowdown: float = 1.0) -> int:
        """Quality up when idle, in place: the only request queued at its variant starts on a
        free worker at the best level of that variant it still finishes at alone, by its
        deadline (an upgrade only; pinned and asked-for step counts stay). Returns its level."""
        if self._ladder[self.table.variant[level]][0] == level:  # its variant's costliest
            return level
        request = self.queues.head(level)
        if request is None or request.pinned or request.requested_steps is not None:
            return level
        best = self._better_in_time(request, self.table.variant[level], level, now, slowdown)
        if best < 0:
            return level
        self._move(request, level, best, "onto a free worker (quality up)")
        return best

    def _best_in_time(self, request: Request, candidates: list[int], now: float,
                      stretch: float, than: float = -1.0) -> int:
        """The candidate level predicted best for the request (better than `than`) at which it
        still finishes alone by its deadline, its profiled time stretched by `stretch`; -1 if
        none."""
        table = self.table
        names, quality = table.names, request.predicted_quality or {}
        best, best_q = -1, than
        for j in candidates:
            q = quality.get(names[j], table.mean_quality[j])
            if q > best_q and self.in_time(request, j, now, stretch):
                best, best_q = j, q
        return best

    def in_time(self, request: Request, level: int, now: float, stretch: float = 1.0) -> bool:
        """Whether the request, started now alone at `level`, finishes by its deadline (its
        profiled time stretched by `stretch`: the measured slowdown, a margin)."""
        return now + self.alone_s(request, level) * stretch <= request.deadline_s

    def _better_in_time(self, request: Request, variant: int, level: int, now: float,
                        slowdown: float) -> int:
        """An upgrade: the best level of `variant` better than `level` that finishes in time
        with `UPGRADE_MARGIN` to spare (a wrong upgrade costs the deadline) and runs at most
        `UPGRADE_EXTRA_SHARE` of its workers' SLO window longer than `level` would."""
        table = self.table
        quality = request.predicted_quality or {}
        current = quality.get(table.names[level], table.mean_quality[level])
        workers = self.variant_workers(variant)
        key = (variant, level, request.n, request.run_fraction, workers)
        candidates = self._upgrade_ladders.get(key)
        if candidates is None:  # the same few keys recur: computed once each
            limit = self.alone_s(request, level) + UPGRADE_EXTRA_SHARE * table.slo_s * max(
                1, workers)
            candidates = [j for j in self._ladder[variant] if self.alone_s(request, j) <= limit]
            if len(self._upgrade_ladders) >= MEMO_SIZE:
                self._upgrade_ladders.clear()
            self._upgrade_ladders[key] = candidates
        return self._best_in_time(request, candidates, now, slowdown * UPGRADE_MARGIN,
                                  than=current)

    def alone_s(self, request: Request, level: int) -> float:
        """Profiled time of the request run alone at `level` (linear beyond the largest
        profiled batch, as `batch_time` and the dispatch check count it)."""
        return batch_time(self.table.service_s[level], request.n) * request.run_fraction

    def upgrade_into(self, variant: int, now: float, slowdown: float = 1.0) -> bool:
        """Quality up when idle: a worker of `variant` has nothing of its own queued, so the
        queued request (earliest deadline first, among the heads of other variants' queues)
        predicted better at one of its levels moves there, to the best one it still finishes at
        alone, by its deadline; False if none gains. It only takes work a busy variant would
        have made wait, onto a worker that would otherwise idle (work-conserving)."""
        table, queues = self.table, self.queues
        count = queues.count
        candidates = []
        for level, queued in enumerate(count):
            if queued and table.variant[level] != variant:
                head = queues.head(level)
                if head is not None and not head.pinned and head.requested_steps is None:
                    candidates.append((head.deadline_s, level, head))
        for _, level, request in sorted(candidates, key=lambda c: (c[0], c[1])):
            best = self._better_in_time(request, variant, level, now, slowdown)
            if best >= 0:
                self._move(request, level, best, "onto an idle worker (quality up)")
                return True
        return False

    def coalesce(self, variant: int, now: float, limit: int, stretch: float = 1.0) -> int:
        """One batch is one level. Under load (admission has re-levelled requests of the
        variant since its queue was last empty, or a full batch waits for each of its workers),
        with a full batch queued or the whole queue fitting one, the variant's earliest-deadline
        requests run together, whatever levels they wait at, at one level: the best for them
        (total predicted quality) whose batch takes no more worker time than their queued levels
        were charged (what admission promised the requests behind them) plus part of the
        variant's credit, that finishes by their earliest deadline (profiled time x `stretch`)
        and that each may take (its floor under load, or no worse than its own level). They move
        there; returns it, or -1 (nothing changed) when the earliest request cannot join others
        or no level qualifies. The whole queue in one batch answers to deadlines only.

        (Queued at mixed levels, the same requests would run as several partial batches, each
        dearer per image than admission charged, and out of deadline order.) The credit is what
        earlier joint batches of the variant saved against their charge in this overload (from
        the first re-levelling until the plan finds its queue empty): time every request behind
        them gained, so a later batch may spend it (else each batch would round down to the
        cheaper level and the queue drift to the cheapest).
        """
        queued = self.queues.variant_count[variant]
        if queued < 2 or (self._moves[variant] is None
                          and queued < limit * self.variant_workers(variant)):
            return -1  # not under load: requests keep the levels admission gave them
        if not self._mixed(variant):
            return -1
        members, images, budget = self._earliest_joinable(variant, limit)
        whole = len(members) == queued
        if len({level for _, level in members}) < 2 or (images < limit and not whole):
            return -1
        # The whole queue in one batch: nothing behind it to keep a promise to, only deadlines.
        allowed = math.inf if whole else (
            budget + CREDIT_SPENT * self._credit[variant]) * (1 + 1e-9)
        best, run = self._joint_level(variant, members, images, allowed, now, stretch)
        if best < 0:
            return -1
        if not whole:
            self._credit[variant] += budget - run
        for request, level in members:
            if level != best:
                self._move(request, level, best, "into one batch under load")
        return best

    def _mixed(self, variant: int) -> bool:
        """Whether requests of `variant` wait at two levels or more."""
        count, seen = self.queues.count, 0
        for j in self._ladder[variant]:
            if count[j]:
                seen += 1
                if seen > 1:
                    return True
        return False

    def _earliest_joinable(self, variant: int, limit: int) \
            -> tuple[list[tuple[Request, int]], int, float]:
        """The earliest-deadline queued requests of `variant` that may share a batch with the
        first one, up to `limit` images: (request, level) pairs, their images and the worker
        time their queued levels were charged; none if the first may not join others."""
        image_time = self.table.image_time_s
        members: list[tuple[Request, int]] = []
        images, budget = 0, 0.0
        for request, level in self.queues.earliest_requests(self._ladder[variant], limit):
            if not self._joinable(request, members[0][0] if members else None):
                if not members:
                    break
                continue
            if images + request.n > limit:
                break
            members.append((request, level))
            images += request.n
            budget += request.n * image_time[level]
        return members, images, budget

    def _joint_level(self, variant: int, members: list[tuple[Request, int]], images: int,
                     allowed: float, now: float, stretch: float) -> tuple[int, float]:
        """The level of `variant` best for `members` together (total predicted quality) whose
        batch takes at most `allowed` worker-seconds and ends by their earliest deadline (with
        `UPGRADE_MARGIN` where it costs more than each member's own level): (level, its batch
        time), or (-1, 0) if none. Never a latent-reuse level: its cost rests on each request's
        own cache hit (a miss at dispatch runs every step)."""
        table = self.table
        due = min(request.deadline_s for request, _ in members)
        costliest = max(table.image_time_s[level] for _, level in members)
        best, best_q, best_run = -1, -1.0, 0.0
        for j in self._ladder[variant]:
            service = table.service_s[j]
            if table.cache_k[j] or images > len(service):
                continue
            run = service[images - 1]
            margin = UPGRADE_MARGIN if table.image_time_s[j] > costliest else 1.0
            if run > allowed or now + run * stretch * margin > due:
                continue
            total = self._joint_quality(members, j)
            if total > best_q:
                best, best_q, best_run = j, total, run
        return best, best_run

    @staticmethod
    def _joinable(request: Request, first: Request | None) -> bool:
        """Free to move and to share an engine call with `first`."""
        if request.pinned or request.requested_steps is not None or request.work_scale != 1.0:
            return False
        return first is None or request.batch_key == first.batch_key

    def _joint_quality(self, members: list[tuple[Request, int]], level: int) -> float:
        """Total predicted quality of `members` at `level`; -1 if one may not take it."""
        names, means = self.table.names, self.table.mean_quality
        total = 0.0
        for request, own in members:
            quality = request.predicted_quality or {}
            q = quality.get(names[level], means[level])
            if q < self.lowest(request) and q < quality.get(names[own], means[own]):
                return -1.0
            total += request.n * q
        return total

    def _compatible(self, request: Request, level: int, t_now: float | None = None) -> list[int]:
        """Levels of the same variant cheaper than `level` (or than `t_now` per image) that the
        request's floor allows."""
        if request.pinned:
            return []
        table = self.table
        quality = request.predicted_quality or {}
        lowest = self.lowest(request)
        if t_now is None:
            t_now = table.image_time_s[level] * request.work_scale
        return [j for j in self._ladder[table.variant[level]]
                if table.image_time_s[j] < t_now
                and quality.get(table.names[j], table.mean_quality[j]) >= lowest]

    def _move(self, request: Request, source: int, target: int, why: str) -> None:
        names = self.table.names
        self.queues.move(request, target)
        request.level = names[target]
        request.reason = f"re-levelled from {names[source]} to {names[target]} {why}"
        self.moved += 1
        moves = self._moves[self.table.variant[target]]
        if moves is not None:
            self._push(moves, request, target)

    def _drop_stale(self, moves: list[_Move], deadline: float, skipped: list[_Move]) -> None:
        """Pop stale tops (the request ran, left or moved since) and set aside the moves of
        requests due after `deadline`, until the top is a move that can be taken."""
        while moves:
            top = moves[0]
            if top[3].queue_seq != top[4]:
                heapq.heappop(moves)
            elif top[1] > deadline:
                skipped.append(heapq.heappop(moves))
            else:
                return

    def _apply(self, moves: list[_Move], taken: list[tuple[Request, int, int, _Move | None]]) \
            -> None:
        final: dict[str, tuple[Request, int, int]] = {}
        for request, source, target, _ in taken:
            first = final.get(request.request_id)
            final[request.request_id] = (request, first[1] if first else source, target)
        for request, source, target in final.values():
            self._move(request, source, target, "under load")
