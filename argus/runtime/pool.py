"""Worker pools: the backend seam. The dispatcher drives any `WorkerPool`; `LocalWorkerPool` runs
worker processes on this machine, and `RayPool` (`argus.runtime.ray_pool`, imported only when
`server.runtime: ray` selects it) runs actors on a Ray cluster behind the same interface.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing as mp
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from pathlib import Path

from argus.config import ArgusConfig
from argus.runtime.messages import (
    CancelJobs,
    LoadVariant,
    RunBatch,
    Shutdown,
    WorkerDied,
    WorkerEvent,
)
from argus.runtime.worker import worker_process_main

log = logging.getLogger("argus.runtime")

WorkerCommand = RunBatch | LoadVariant | CancelJobs
EventSink = Callable[[WorkerEvent], None]

RESTART_BACKOFF_S = (1.0, 30.0)
"""Delay before restarting a worker that died young, doubling per quick death up to the cap
(no hot crash loop); a worker that lived longer than the cap restarts after the minimum."""
PRELOAD = ["argus.runtime.worker", "argus.engine.generate"]
"""Imported once by the fork server, so a (re)started worker forks ready-made in a fraction of
the 10-30 s a fresh interpreter needs to import torch and diffusers on a busy machine."""


def _context() -> mp.context.BaseContext:
    """Fork server: fast worker starts without forking the threaded API process itself."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


class WorkerPool(ABC):
    """Runs commands on numbered workers and reports their events.

    Guarantees: events of one worker arrive in the order it sent them; a worker that dies is
    reported once by `WorkerDied` (after its last events), then restarted and announced again
    by `WorkerReady`. `on_event` is called from a pool thread, never concurrently.
    """

    num_workers: int

    @abstractmethod
    def start(self, on_event: EventSink) -> None:
        """Start every worker; each announces itself with `WorkerReady`."""

    @abstractmethod
    def send(self, worker_id: int, command: WorkerCommand) -> None:
        """Deliver a command; a dead worker's commands are dropped (its death is reported)."""

    @abstractmethod
    def stop(self, timeout_s: float = 10.0) -> None:
        """Let workers finish their current batch, then end them (forcefully past timeout)."""

    @abstractmethod
    def restart(self, worker_id: int) -> None:
        """End a hung worker; it is then reported dead and restarted like a crashed one."""

    @abstractmethod
    def pids(self) -> dict[int, int | None]:
        """Worker id -> process id (None while not running); for monitoring and tests."""

    def placement(self) -> dict[int, dict[str, str]]:
        """Worker id -> where it runs (e.g. node id, node address, device), for monitoring;
        empty where the backend has nothing to add (all local workers share this machine)."""
        return {}

    def stopped_workers(self) -> set[int]:
        """Workers alive but suspended (e.g. SIGSTOP): they cannot serve, and an idle one sends
        nothing a watchdog could miss. Empty where the backend cannot tell."""
        return set()


class Restarter:
    """Brings dead workers back after `RESTART_BACKOFF_S` (the minimum after a long life, else
    double the last delay), on a timer thread; never once the pool is stopping."""

    def __init__(self, spawn: Callable[[int], None], stopping: threading.Event) -> None:
        self._spawn = spawn
        self._stopping = stopping
        self._delay_s: dict[int, float] = {}

    def schedule(self, worker_id: int, lived_s: float) -> None:
        low, high = RESTART_BACKOFF_S
        last = self._delay_s.get(worker_id, low / 2)
        delay = low if lived_s > high else min(high, 2 * last)
        self._delay_s[worker_id] = delay
        timer = threading.Timer(delay, self._restart, [worker_id])
        timer.daemon = True
        timer.start()

    def _restart(self, worker_id: int) -> None:
        if not self._stopping.is_set():
            self._spawn(worker_id)


def threads_per_worker(config: ArgusConfig, workers: int) -> int:
    """Configured threads, else the cores left after one for the API process, split evenly:
    workers x threads <= cores. Oversubscribed (or contended) OpenMP threads spin and make CPU
    diffusion 20-35x slower, so this errs low."""
    if config.server.threads_per_worker:
        return config.server.threads_per_worker
    cores = os.cpu_count() or 1
    spare = cores - 1 if cores > workers else cores
    return max(1, spare // workers)


class LocalWorkerPool(WorkerPool):
    """Worker processes (from a fork server, one pipe each) watched by one reader thread."""

    def __init__(self, config: ArgusConfig, num_workers: int | None = None) -> None:
        self.config = config
        self.num_workers = num_workers or config.server.workers
        self.threads = threads_per_worker(config, self.num_workers)
        self._ctx = _context()
        self._lock = threading.Lock()
        self._procs: dict[int, mp.process.BaseProcess] = {}
        self._conns: dict[int, Connection] = {}
        self._started_at: dict[int, float] = {}
        self._stopping = threading.Event()
        self._restarter = Restarter(self._spawn, self._stopping)
        self._reader: threading.Thread | None = None
        self._on_event: EventSink = lambda event: None

    def start(self, on_event: EventSink) -> None:
        self._on_event = on_event
        for worker_id in range(self.num_workers):
            self._spawn(worker_id)
        self._reader = threading.Thread(target=self._read_loop, name="argus-pool", daemon=True)
        self._reader.start()

    def _spawn(self, worker_id: int) -> None:
        parent, child = self._ctx.Pipe()
        config_data = self.config.model_dump(mode="json")
        proc = self._ctx.Process(
            target=worker_process_main,
            args=(worker_id, config_data, self.threads, child),
            name=f"argus-worker-{worker_id}",
            daemon=True,
        )
        proc.start()
        child.close()
        with self._lock:
            self._procs[worker_id] = proc
            self._conns[worker_id] = parent
            self._started_at[worker_id] = time.monotonic()
        log.info("worker %d started (pid %d, %d threads)", worker_id, proc.pid, self.threads)

    def send(self, worker_id: int, command: WorkerCommand) -> None:
        with self._lock:
            conn = self._conns.get(worker_id)
        if conn is None:
            return
        with contextlib.suppress(OSError):  # a dead worker: the reader thread reports it
            conn.send(command)

    def restart(self, worker_id: int) -> None:
        with self._lock:
            proc = self._procs.get(worker_id)
        if proc is not None and proc.is_alive():
            proc.kill()  # SIGKILL also ends a stopped or deadlocked process

    def pids(self) -> dict[int, int | None]:
        with self._lock:
            procs = dict(self._procs)
        return {
            w: procs[w].pid if w in procs and procs[w].is_alive() else None
            for w in range(self.num_workers)
        }

    def stopped_workers(self) -> set[int]:
        return {w for w, pid in self.pids().items() if pid and process_state(pid) in ("T", "t")}

    def _read_loop(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                by_conn = {c: w for w, c in self._conns.items()}
                by_sentinel = {p.sentinel: w for w, p in self._procs.items()}
            for ready in wait([*by_conn, *by_sentinel], timeout=0.2):
                if ready in by_conn:
                    self._drain(ready)
                elif not self._stopping.is_set():
                    self._handle_death(by_sentinel[ready])

    def _drain(self, conn: Connection) -> None:
        try:
            while conn.poll():
                self._on_event(conn.recv())
        except (EOFError, OSError):
            pass  # the sentinel reports the death

    def _handle_death(self, worker_id: int) -> None:
        with self._lock:  # forget it at once: its sentinel stays ready until the restart
            proc = self._procs.pop(worker_id)
            conn = self._conns.pop(worker_id)
        self._drain(conn)  # events it sent before dying come first
        conn.close()
        proc.join(timeout=1.0)
        log.warning("worker %d (pid %s) died, exit code %s", worker_id, proc.pid, proc.exitcode)
        self._on_event(WorkerDied(worker_id, proc.exitcode))
        self._restarter.schedule(worker_id, time.monotonic() - self._started_at[worker_id])

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        if self._reader is not None:
            self._reader.join(timeout=2.0)
        with self._lock:
            procs, conns = dict(self._procs), dict(self._conns)
        for worker_id in procs:
            self.send(worker_id, Shutdown())  # type: ignore[arg-type]
        deadline = time.monotonic() + timeout_s
        for proc in procs.values():
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=2.0)
        for conn in conns.values():
            conn.close()


def process_state(pid: int) -> str | None:
    """The kernel's one-letter state of a process (R, S, D, T stopped, t traced, Z, ...) from
    /proc; None where there is no /proc (not Linux) or no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces and ")"
    return fields[0] if fields else None


POOLS: dict[str, type[WorkerPool]] = {"local": LocalWorkerPool}
LAZY_POOLS = {"ray": "argus.runtime.ray_pool"}
"""Backends whose module registers them when imported, on first selection (so `ray` is imported
only by a server that runs on Ray)."""


def register_pool(name: str, cls: type[WorkerPool]) -> None:
    """Make a backend selectable as `server.runtime: <name>` (e.g. a Ray pool). Its class is
    built as `cls(config)` and must keep `WorkerPool`'s event guarantees."""
    POOLS[name] = cls


def pool_class(name: str) -> type[WorkerPool]:
    """The backend registered under `name` (`local` built in, `ray` imported on demand)."""
    if name not in POOLS and name in LAZY_POOLS:
        importlib.import_module(LAZY_POOLS[name])
    if name not in POOLS:
        raise ValueError(f"unknown runtime {name!r}; choose one of {sorted({*POOLS, *LAZY_POOLS})}")
    return POOLS[name]
