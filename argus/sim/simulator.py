"""Discrete-event cluster simulator driving the unchanged `ControlPlane`.

Simulated workers take the profiled service time of their batch and pay the variant's load time
when the plan moves them to another variant. Events: arrivals (a pre-sorted array, merged with a
pointer), worker completions and loads (a heap), and planning ticks every period. After the last
arrival the cluster drains (bounded by `drain_s`); requests still unfinished then count as SLO
violations. Everything random is drawn up front from `seed`, so a seed reproduces a run exactly.
"""

from __future__ import annotations

import gc
import heapq
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, field, fields
from itertools import repeat

import numpy as np

from argus.control.cluster import ClusterLoop, WorkerStatus
from argus.control.plane import ControlPlane
from argus.sim.executor import SimulatedExecutor
from argus.sim.quality import QualityModel, sample_similarity
from argus.sim.traces import Trace
from argus.types import Request, RequestStatus

_COMPLETED = RequestStatus.COMPLETED
_REJECTED = RequestStatus.REJECTED
_LOADING = WorkerStatus.LOADING
UNFINISHED = "unfinished at the end of the run"


@dataclass
class RunRecord:
    """Per-request outcomes of one run (index = position in the trace)."""

    arrival: np.ndarray
    deadline: np.ndarray
    finish: np.ndarray
    """NaN when not served."""
    level: np.ndarray
    """Level position served at, -1 when not served."""
    quality: np.ndarray
    """Relative quality of served requests (NaN otherwise)."""
    reasons: dict[str, int]
    plans: list[tuple[float, np.ndarray, float]] = field(default_factory=list)
    """(time, workers per level, forecast rps) at each planning tick."""
    loads: int = 0
    """Variant loads paid by workers."""


class Simulator:
    def __init__(
        self,
        plane: ControlPlane,
        trace: Trace,
        seed: int = 0,
        max_batch: int | None = None,
        drain_s: float | None = None,
    ) -> None:
        self.plane = plane
        self.trace = trace
        table = plane.table
        self.max_batch = max_batch or max(len(s) for s in table.service_s)
        self.drain_s = 3 * plane.slo_s if drain_s is None else drain_s
        rng = np.random.default_rng(seed + 7919)
        count = len(trace)
        profile = table.profile
        self.quality_model = QualityModel(
            table, plane.config.cache.similarity_bands, plane.config.cache.band_steps
        )
        self.similarity = sample_similarity(profile.similarity_distribution, count, rng)
        self.difficulty = rng.standard_normal(count)
        self.prompt_id = (
            rng.integers(0, len(profile.prompts), count)
            if profile.prompts else np.zeros(count, int)
        )
        self.plane.oracle = self._oracle

    def _oracle(self, request: Request, level: str) -> float:
        i = int(request.request_id)
        lv = np.array([self.plane.table.index[level]])
        sim = None if self.similarity is None else self.similarity[i : i + 1]
        return float(self.quality_model.of(lv, self.prompt_id[i : i + 1],
                                           self.difficulty[i : i + 1], sim)[0])

    def _requests(self) -> list[Request]:
        """One `Request` per trace entry (id = its position), built column-wise: every field
        not given a column keeps its default."""
        trace = self.trace
        count = len(trace)
        arrival = trace.arrival_s
        prompt_ids = self.prompt_id.tolist()
        table_prompts = self.plane.profile.prompts
        columns: dict[str, object] = {
            "arrival_s": arrival.tolist(),
            "deadline_s": (arrival + self.plane.finish_within_s).tolist(),
            "request_id": map(str, range(count)),
            "prompt_id": prompt_ids,
        }
        if trace.prompt:
            columns["prompt"] = trace.prompt
        elif table_prompts:
            columns["prompt"] = [table_prompts[pid].prompt for pid in prompt_ids]
        else:
            columns["prompt"] = repeat("", count)
        if self.similarity is not None:
            columns["cache_similarity"] = self.similarity.tolist()
        if trace.steps is not None:  # asked-for counts, approximated against (like the API's)
            columns["requested_steps"] = [s if s else None for s in trace.steps.tolist()]
        if trace.n is not None:
            columns["n"] = trace.n.tolist()
        if trace.tenant is not None:
            columns["tenant"] = trace.tenant
        args = []
        for f in fields(Request):
            if f.name in columns:
                args.append(columns[f.name])
            elif f.default is not MISSING:
                args.append(repeat(f.default, count))
            else:
                args.append(f.default_factory() for _ in range(count))  # type: ignore[misc]
        return list(map(Request, *args))

    def run(self, duration_s: float, progress: bool = False) -> RunRecord:
        plane = self.plane
        requests = self._requests()
        plane.prepare(requests)
        count = len(requests)
        arrivals = [r.arrival_s for r in requests]
        reasons: dict[str, int] = {}
        record = RunRecord(
            arrival=np.asarray(arrivals), deadline=np.asarray([r.deadline_s for r in requests]),
            finish=np.zeros(0), level=np.zeros(0), quality=np.zeros(0), reasons=reasons,
        )

        def note_rejected(request: Request) -> None:
            key = (request.reason or "rejected").split(" (")[0]
            reasons[key] = reasons.get(key, 0) + 1

        executor = SimulatedExecutor(plane.table, note_rejected)
        cluster = self.cluster = ClusterLoop(plane, executor, self.max_batch)
        heap = executor.events
        heappop = heapq.heappop
        admit, finish_batch, variant_loaded = (
            cluster.admit, cluster.finish_batch, cluster.variant_loaded
        )
        status = cluster.status

        plane.tick(0.0)
        next_tick = plane.next_plan_s  # the plane may bring it forward (a burst)
        end = duration_s + self.drain_s
        i = 0
        inf = math.inf
        next_arrival = arrivals[0] if count else inf
        bar = _progress(count, progress)
        # The loop makes no reference cycles: automatic collections would only traverse every
        # live request again and again; young objects are collected at planning ticks instead.
        with _young_collections_only():
            cluster.wake_all(0.0)
            while True:
                t_event = heap[0][0] if heap else inf
                if next_arrival <= t_event and next_arrival <= next_tick:
                    # Arrivals up to the next completion or tick (a dispatch may bring that closer).
                    limit = t_event if t_event < next_tick else next_tick
                    while True:
                        request = requests[i]
                        i += 1
                        admit(request, next_arrival)
                        if plane.next_plan_s < next_tick:
                            next_tick = plane.next_plan_s
                            if next_tick < limit:
                                limit = next_tick
                        if request.status is _REJECTED:
                            note_rejected(request)
                        if heap and heap[0][0] < limit:  # it started a batch (or a load)
                            limit = heap[0][0]
                        if bar is not None and not i & 4095:
                            bar.update(4096)
                        if i >= count:
                            next_arrival = inf
                            break
                        next_arrival = arrivals[i]
                        if next_arrival > limit:
                            break
                elif t_event <= next_tick:
                    # Completions (and loads) up to the next arrival or tick.
                    while True:
                        now, _, w = heappop(heap)
                        if status[w] is _LOADING:
                            variant_loaded(w, now)
                        else:
                            finish_batch(w, now)
                        if not heap:
                            break
                        t_event = heap[0][0]
                        if t_event > next_tick or t_event >= next_arrival:
                            break
                else:
                    if i >= count and not heap and not plane.queues.total:
                        break
                    if next_tick > end:
                        break
                    plan = cluster.tick(next_tick)
                    if plan is not None:
                        record.plans.append((next_tick, plan.workers.copy(), plan.forecast_rps))
                    next_tick = plane.next_plan_s
                    gc.collect(1)
        cluster.settle(end)
        record.loads = cluster.loads
        if bar is not None:
            bar.update(count - bar.n)
            bar.close()
        self._finish_record(record, requests, reasons)
        return record

    def _finish_record(
        self, record: RunRecord, requests: list[Request], reasons: dict[str, int]
    ) -> None:
        """Per-request outcomes from the requests themselves (nothing recorded in the loop)."""
        index = self.plane.table.index
        done = [r.status is _COMPLETED for r in requests]
        record.finish = np.array([r.finish_s if d else math.nan
                                  for r, d in zip(requests, done, strict=True)])
        record.level = np.array([index[r.level] if d else -1
                                 for r, d in zip(requests, done, strict=True)], dtype=int)
        served = record.level >= 0
        quality = np.full(len(requests), np.nan)
        if served.any():
            sim = None if self.similarity is None else self.similarity[served]
            quality[served] = self.quality_model.of(
                record.level[served], self.prompt_id[served], self.difficulty[served], sim
            )
        self._relative_to_requested(requests, served, quality)
        record.quality = quality
        leftover = len(requests) - int(served.sum()) - sum(reasons.values())
        if leftover:
            reasons[UNFINISHED] = leftover


    def _relative_to_requested(
        self, requests: list[Request], served: np.ndarray, quality: np.ndarray
    ) -> None:
        """Requests that asked for a step count are judged against a reference run of that
        count (`argus.control.steps`, interpolated over the true quality of the full variant's
        cache-free levels); an exact run of it is worth 1."""
        asked = np.array([r.requested_steps is not None for r in requests]) & served
        if not asked.any():
            return
        table = self.plane.table
        steps_model = self.plane.steps
        idx = np.flatnonzero(asked)
        sim = None if self.similarity is None else self.similarity[idx]
        ladder = [i for i in table.levels_of_variant(table.variant[table.full])
                  if table.cache_k[i] == 0]
        true = {i: self.quality_model.of(np.full(len(idx), i), self.prompt_id[idx],
                                         self.difficulty[idx], sim) for i in ladder}
        for row, i in enumerate(idx):
            request = requests[i]
            if request.run_steps is not None:
                quality[i] = 1.0
                continue
            levels = {table.names[j]: float(true[j][row]) for j in ladder}
            reference = steps_model.quality(table.variant[table.full], request.requested_steps,
                                            levels)
            quality[i] = min(quality[i] / max(reference, 1e-9), 1.0)


@contextmanager
def _young_collections_only() -> Iterator[None]:
    """Automatic garbage collection off (restored after); the caller collects young ones."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _progress(total: int, enabled: bool):  # noqa: ANN202 - tqdm or None
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="req", delay=2.0, mininterval=0.5, desc="simulate")
