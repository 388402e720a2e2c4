"""A real Dispatcher over real worker processes, driven from synchronous tests.

The dispatcher lives on its own event loop in a thread (as it does under uvicorn); tests call
into it with `run_coroutine_threadsafe`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from argus.config import ArgusConfig, parse_config
from argus.control.builtin import profile_from_config
from argus.runtime.base import GenerationRequest, JobHandle, JobOutcome, ProgressUpdate
from argus.runtime.dispatcher import Dispatcher
from argus.runtime.pool import LocalWorkerPool

T = TypeVar("T")

SLOW_STEPS = 300
CRASH_STEPS = 60
"""Long enough to kill a worker mid-run, short enough to rerun."""
STALL_S = 4.0
"""Busy workers silent this long are restarted (far above a tiny model's step time)."""


def runtime_config(workers: int = 2, **server: Any) -> ArgusConfig:
    """One tiny unguided variant; levels of 4 and 10 steps and a slow one for cancel/crash."""
    return parse_config({
        "variants": [{
            "name": "tiny", "source": "random:pixel-small", "default_steps": 10,
            "resolution": 32, "guidance_scale": 1.0,
        }],
        "levels": [
            {"name": "fast", "variant": "tiny", "steps": 4},
            {"name": "full", "variant": "tiny", "steps": 10},
            {"name": "crash", "variant": "tiny", "steps": CRASH_STEPS},
            {"name": "slow", "variant": "tiny", "steps": SLOW_STEPS},
        ],
        "server": {
            "workers": workers, "threads_per_worker": 1, "slo_s": 120.0,
            "worker_stall_s": STALL_S, **server,
        },
    })


class RuntimeThread:
    def __init__(self, config: ArgusConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        pool = LocalWorkerPool(config)
        self.runtime = Dispatcher(config, pool, profile_from_config(config))
        self.call(self.runtime.start())

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def on_loop(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()

        return self.call(run())

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        self.wait_for(self.runtime.ready, timeout_s, "no worker became ready")

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.on_loop(predicate):
            if time.monotonic() > deadline:
                raise AssertionError(what)
            time.sleep(0.05)

    def submit(self, steps: int, n: int = 1, **fields: Any) -> JobHandle:
        spec = GenerationRequest(
            prompt=fields.pop("prompt", "a red circle"), n=n, pinned_variant="tiny",
            pinned_steps=steps, seed=fields.pop("seed", 1), **fields,
        )
        return self.call(self.runtime.submit(spec))

    def outcome(self, handle: JobHandle, timeout_s: float = 60.0) -> JobOutcome:
        async def wait() -> JobOutcome:
            return await asyncio.wait_for(asyncio.shield(handle.outcome), timeout_s)

        return self.call(wait(), timeout_s + 5)

    def next_progress(self, handle: JobHandle, timeout_s: float = 60.0) -> ProgressUpdate | None:
        async def get() -> ProgressUpdate | None:
            return await asyncio.wait_for(handle.progress.get(), timeout_s)

        return self.call(get(), timeout_s + 5)

    def drain_progress(self, handle: JobHandle) -> list[ProgressUpdate | None]:
        def take() -> list[ProgressUpdate | None]:
            items = []
            while not handle.progress.empty():
                items.append(handle.progress.get_nowait())
            return items

        return self.on_loop(take)

    def worker_of(self, request_id: str) -> tuple[int, int]:
        """(worker id, pid) of the worker running the request."""
        snap = self.on_loop(self.runtime.snapshot)["runtime"]
        for worker_id, state in snap["workers"].items():
            if request_id in state["running"]:
                return worker_id, snap["pids"][worker_id]
        raise AssertionError(f"{request_id} is not running: {snap}")

    def close(self) -> None:
        self.call(self.runtime.shutdown(drain_timeout_s=5.0), timeout_s=60.0)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5.0)
