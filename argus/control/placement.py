"""Where pinned and stranded work runs: workers lent to a variant no plan gives one, and plans
that never strand queued work. A mixin of `ControlPlane` (it uses the plane's table, queues,
`workers`, running work and admission helpers); split out to keep the facade readable."""

from __future__ import annotations

import math

import numpy as np

from argus.control.dispatcher import batch_time
from argus.control.relevel import UPGRADE_EXTRA_SHARE
from argus.types import Rejection, Request


class PlacementMixin:
    """Lending workers, re-homing orphans and routing to served levels, for `ControlPlane`."""

    def _admit_pinned(self, request: Request, now: float) -> Request:
        level = self.pinned_level(request)
        if level is None:
            return self._reject(request, self.steps.pin_reason(request), Rejection.UNKNOWN_VARIANT)
        request.optimal_level = self.table.names[level]
        # Capacity for its level, but no quality sample: it can be served nowhere else.
        self.demand.count(level, self._pinned_quality[level], request.n)
        if self.queues.images + request.n > self.queue_capacity and self.queues.total:
            return self._reject(request, "queue full", Rejection.QUEUE_FULL)
        self.steps.override(request, level)
        v = self.table.variant[level]
        if not self.workers.per_variant[v] and not self.workers.lent_from[v]:
            return self._admit_by_lending(request, level, now)
        late = self.finish_estimate(level, now, request.n, request.work_scale) - \
            request.deadline_s
        if late > 0 and self._make_room(request, level, now) is not None:
            late = 0.0
        if late > 0:
            why = "no worker runs it" if math.isinf(late) else f"predicted {late:.2f} s late"
            return self._reject(
                request, f"pinned level {self.table.names[level]} cannot meet the deadline ({why})",
                Rejection.NO_WORKER if math.isinf(late) else Rejection.OVERLOADED,
            )
        return self._enqueue(request, level)

    def pinned_level(self, request: Request) -> int | None:
        """The one level a pinned request may run at (`StepModel.pinned_level`)."""
        return self.steps.pinned_level(request)

    def _admit_by_lending(self, request: Request, level: int, now: float) -> Request:
        """A pinned variant no worker holds: lend one when it can load the variant and serve
        the request in time (its current batch first), else reject with that reason."""
        table = self.table
        worker = self.workers.lender(self._running_s, table.variant[level])
        name = table.variant_names[table.variant[level]]
        if worker is None:
            return self._reject(request, f"no worker can load {name}", Rejection.NO_WORKER)
        own = table.variant[self.workers.level[worker]]
        finish = now + self._running_s[own] / max(1, self.workers.per_variant[own]) + \
            table.load_time_s[table.variant[level]] + \
            batch_time(table.service_s[level], request.n) * request.work_scale
        if finish > request.deadline_s:
            late = finish - request.deadline_s
            return self._reject(request, f"pinned level {table.names[level]} cannot meet the "
                                f"deadline (loading {name} on a worker: predicted {late:.2f} s "
                                "late)", Rejection.OVERLOADED)
        self.workers.lend(worker, level, now)
        return self._enqueue(request, level)

    def _route_to_served(self, request: Request, level: int, now: float) -> int:
        """Routed to a level no worker serves (before the first plan, or a class the plan
        routes to itself): its best in-time level, though not much dearer than the one routed
        (an idle worker given the costliest level is lost to a burst arriving meanwhile), else
        its best in-time level, else its optimal level among those served."""
        fix = self.fastest_fix(request, now, level, dearest_s=self.releveler.alone_s(
            request, level) + UPGRADE_EXTRA_SHARE * self.slo_s * self.num_workers)
        if fix is None:
            fix = self.fastest_fix(request, now, level)
        return self._served_level(request, level) if fix is None else fix

    def _served(self, variant: int) -> bool:
        return bool(self.workers.per_variant[variant] or self.workers.lent_from[variant])

    def _served_level(self, request: Request, level: int) -> int:
        """A level no worker serves (before the first plan, or a class the plan routes to
        itself): the request's optimal level among those workers run now, the cheapest whose
        predicted quality meets its floor (else the best of them); `level` if none runs."""
        table, quality = self.table, request.predicted_quality or {}
        floor = self.floor if request.quality_floor is None else request.quality_floor
        served = [j for j in reversed(table.rank) if self._served(table.variant[j])]
        return next((j for j in served if quality.get(table.names[j], 0.0) >= floor),
                    max(served, key=lambda j: quality.get(table.names[j], 0.0), default=level))

    def fastest_fix(self, request: Request, now: float, level: int, overloaded: bool = False,
                    dearest_s: float = math.inf) -> int | None:
        """The compatible level (`lowest_quality`) with the best predicted quality that still
        finishes in time; None if there is none. `overloaded`: only other variants' levels
        (re-levelling has tried this one's); `dearest_s`: only levels that run the request alone
        within this long."""
        table = self.table
        quality = request.predicted_quality or {}
        lowest = self.lowest_quality(request, overloaded)
        own = table.variant[level]
        best, best_q = None, -1.0
        for j in range(len(table)):
            q = quality.get(table.names[j], table.mean_quality[j])
            if j == level or q < lowest or q <= best_q or (overloaded and table.variant[j] == own) \
                    or self.releveler.alone_s(request, j) > dearest_s:
                continue
            if self.finish_estimate(j, now, request.n) <= request.deadline_s:
                best, best_q = j, q
        return best

    def release_lent(self, worker_id: int, now: float) -> bool:
        """Executors call this before offering a worker work: a lent worker whose borrowed
        variant has nothing queued returns to its planned level (True: its level changed)."""
        planned = self.workers.lent.get(worker_id)
        if planned is None:
            return False
        if self.queues.variant_count[self.table.variant[self.workers.level[worker_id]]]:
            return False
        self.workers.give_back(worker_id, now)
        return True

    def _return_wait_s(self, variant: int) -> float:
        """Until the workers `variant` lent away are back: their borrowed work and two loads."""
        table = self.table
        lent = [w for w, planned in self.workers.lent.items()
                if table.variant[planned] == variant]
        return min(table.load_time_s[table.variant[self.workers.level[w]]]
                   + self.queues.work_s[table.variant[self.workers.level[w]]]
                   + table.load_time_s[variant] for w in lent)

    def _keep_queued_served(self, target: np.ndarray) -> np.ndarray:
        """A plan never strands queued work: a variant that holds workers and has requests
        queued keeps one of them (no load) until they are served, taken from the variant the
        plan gives the most workers, or from one with nothing queued (its work is forecast, not
        waiting: the next plan moves the worker once the queue is served)."""
        table, queues = self.table, self.queues
        target = target.copy()
        planned = np.bincount(table.variant, weights=target, minlength=len(table.load_time_s))
        for v, held in enumerate(self.workers.per_variant):
            if not held or planned[v] or not queues.variant_count[v]:
                continue
            donor = max(range(len(target)), key=lambda lv: (planned[table.variant[lv]],
                                                            target[lv]))
            if planned[table.variant[donor]] <= 1 and queues.variant_count[table.variant[donor]]:
                break
            target[donor] -= 1
            planned[table.variant[donor]] -= 1
            busiest = max(self._variant_levels[v], key=lambda lv: queues.count[lv])
            target[busiest] += 1
            planned[v] += 1
        return target

    def _rehome_orphans(self, now: float) -> None:
        """Requests queued at a variant no worker runs any more move to a level that can still
        serve them in time (pinned ones cannot move); the rest keep a worker lent to their
        variant until they are served (rejected, with the reason, only if none can be lent)."""
        table, queues = self.table, self.queues
        for v, workers in enumerate(self.workers.per_variant):
            if workers or not queues.variant_count[v]:
                continue
            stuck: list[tuple[Request, int]] = []
            for j in self._variant_levels[v]:
                while (request := queues.pop(j)) is not None:
                    moved = None if request.pinned else self.fastest_fix(request, now, j)
                    if moved is None:
                        stuck.append((request, j))
                    else:
                        request.reason = f"moved from {table.names[j]} to " \
                            f"{table.names[moved]} after a re-plan"
                        self._queue(request, moved)
            # A lent worker loads the variant first: only those it can still serve in time wait.
            ready = now + table.load_time_s[v]
            servable = [(r, j) for r, j in stuck
                        if ready + table.service_s[j][0] * r.work_scale <= r.deadline_s]
            worker = self.workers.lender(self._running_s, v) if servable else None
            if worker is not None:
                self.workers.lend(worker, servable[0][1], now)
            for request, j in stuck:
                if worker is not None and (request, j) in servable:
                    self._queue(request, j)
                else:
                    self.rejected_later.append(self._reject(
                        request, f"re-plan left no worker on level {table.names[j]}",
                        Rejection.NO_WORKER))
