"""The simulated executor: profiled service and load times on a virtual clock.

`run` and `load` push the moment the worker will be done onto an event heap that the simulator
(or a test) pops in time order, reporting each to the `ClusterLoop` (`finish_batch` or
`variant_loaded`). Nothing else differs from live workers: the same loop decides.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from argus.control.dispatcher import batch_time
from argus.control.levels import LevelTable
from argus.types import Request


class SimulatedExecutor:
    def __init__(self, table: LevelTable, on_unserved: Callable[[Request], None]) -> None:
        self.events: list[tuple[float, int, int]] = []
        """(time, sequence, worker) when a worker's batch or load is done: a heap."""
        self._seq = 0
        self._service_of = {name: table.service_s[i] for name, i in table.index.items()}
        self._load_time = table.load_time_s
        self._on_unserved = on_unserved

    def load(self, worker: int, variant: int, now: float) -> None:
        self._seq += 1
        heapq.heappush(self.events, (now + self._load_time[variant], self._seq, worker))

    def run(self, worker: int, batch: list[Request], now: float) -> bool:
        first = batch[0]
        if len(batch) == 1:
            images = first.n
        else:
            images = 0
            for request in batch:
                images += request.n
        self._seq += 1
        done = now + batch_time(self._service_of[first.level], images) * first.work_scale
        heapq.heappush(self.events, (done, self._seq, worker))
        return True

    def unserved(self, requests: list[Request], now: float) -> None:
        for request in requests:
            self._on_unserved(request)

    def next_time(self) -> float:
        return self.events[0][0] if self.events else float("inf")
