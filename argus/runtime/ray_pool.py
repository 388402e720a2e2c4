"""A worker pool on a Ray cluster: each worker is an actor owning one pipeline.

Selected by `server.runtime: ray` (`pool_class` imports this module on demand, so `ray` is only
imported by a server that runs on it). The API process keeps the dispatcher and the control
plane; the actors run `argus.runtime.worker.WorkerLoop`, the same code a local worker process
runs, fed from an inbox instead of a pipe:

- commands go to `RayWorkerActor.send` with a per-worker sequence number (a threaded actor may
  start calls out of order; the actor releases them in order), cancels straight to the
  loop's cancel set, which it polls between steps;
- events go to an actor-side outbox that one pool thread long-polls (`events`) for every actor
  with `ray.wait`, so one worker's events arrive in order and `on_event` is never concurrent;
- a poll that raises (the actor's process was killed, its node was lost, `restart` killed it)
  reports `WorkerDied` and the actor is created again after the local pool's backoff.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from typing import Any

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # before ray reads it; a cluster may opt in

import ray
from ray.exceptions import GetTimeoutError, RayError

from argus.config import ArgusConfig, parse_config
from argus.runtime.messages import CancelJobs, Shutdown, WorkerDied, WorkerEvent, WorkerReady
from argus.runtime.pool import (
    EventSink,
    Restarter,
    WorkerCommand,
    WorkerPool,
    register_pool,
)
from argus.runtime.worker import Worker, WorkerLoop, set_torch_threads

log = logging.getLogger("argus.runtime")

POLL_S = 1.0
"""How long one `events` call waits on an idle actor before returning nothing."""
WAIT_S = 0.2
"""How often the pool thread looks up from `ray.wait` (to notice stop and new actors)."""
ACTOR_THREADS = 4
"""Threads of one actor for its short calls (send, events, info, join); batches run on the
actor's own loop thread."""


class RayWorkerActor:
    """One worker in a Ray actor (threaded, so cancels and polls arrive while a batch runs)."""

    def __init__(self, worker_id: int, config_data: dict[str, Any], threads: int) -> None:
        set_torch_threads(threads)
        import argus.engine.generate  # noqa: F401  (torch, diffusers load before "ready")

        self.device = "cuda:0" if ray.get_gpu_ids() else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES
        self._outbox: queue.Queue[WorkerEvent] = queue.Queue()
        self._inbox: queue.Queue[Any] = queue.Queue()
        worker = Worker(worker_id, parse_config(config_data), self.device)
        self.loop = WorkerLoop(worker, self._outbox.put)
        self._held: dict[int, Any] = {}
        self._next_seq = 0
        self._order = threading.Lock()
        self._outbox.put(WorkerReady(worker_id, os.getpid()))
        self._thread = threading.Thread(
            target=self.loop.run, args=(self._inbox.get,), name="argus-worker", daemon=True
        )
        self._thread.start()

    def send(self, seq: int, message: Any) -> None:
        """Release commands in the pool's order: cancels at once, the rest to the loop."""
        with self._order:
            self._held[seq] = message
            while self._next_seq in self._held:
                released = self._held.pop(self._next_seq)
                self._next_seq += 1
                if isinstance(released, CancelJobs):
                    self.loop.cancel(released.request_ids)
                else:
                    self._inbox.put(released)

    def events(self, timeout_s: float) -> list[WorkerEvent]:
        """The events emitted since the last call, waiting up to `timeout_s` for the first."""
        try:
            found = [self._outbox.get(timeout=timeout_s)]
        except queue.Empty:
            return []
        while True:
            try:
                found.append(self._outbox.get_nowait())
            except queue.Empty:
                return found

    def info(self) -> dict[str, Any]:
        context = ray.get_runtime_context()
        return {
            "pid": os.getpid(),
            "node_id": context.get_node_id(),
            "node_ip": ray.util.get_node_ip_address(),
            "device": self.device,
        }

    def join(self, timeout_s: float) -> bool:
        """Wait for the loop to end (after Shutdown); True if it did."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()


def ray_threads(config: ArgusConfig, workers: int) -> int:
    """Configured threads, else the cluster's CPUs split evenly over the workers, at most the
    largest node's CPUs (an actor lives on one node)."""
    if config.server.threads_per_worker:
        return config.server.threads_per_worker
    node_cpus = [n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n["Alive"]]
    total = int(sum(node_cpus))
    return max(1, min(int(max(node_cpus, default=1.0)), total // workers))


def connect(address: str) -> bool:
    """Join the cluster at `address` ("" starts a new local Ray, never one found running on
    this machine); True if this call connected (so the pool disconnects on stop), False if the
    process was connected already."""
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address)
    else:
        ray.init(address="local", include_dashboard=False)
    return True


class _Slot:
    """The pool's view of one worker: its actor, outstanding poll and where it runs."""

    def __init__(self, actor: Any, started_s: float) -> None:
        self.actor = actor
        self.started_s = started_s
        self.poll: Any = actor.events.remote(POLL_S)
        self.info_ref: Any = actor.info.remote()
        self.info: dict[str, Any] | None = None
        self.seq = 0

    def post(self, message: Any) -> None:
        """Send with the next sequence number (callers hold the pool's lock or own the slot)."""
        self.actor.send.remote(self.seq, message)
        self.seq += 1


def kill(actor: Any) -> None:
    with contextlib.suppress(RayError, ValueError):  # already gone
        ray.kill(actor, no_restart=True)


class RayPool(WorkerPool):
    """Workers as Ray actors, one GPU each where the cluster has GPUs, else `threads` CPUs."""

    def __init__(self, config: ArgusConfig, num_workers: int | None = None) -> None:
        self.config = config
        self.num_workers = num_workers or config.server.workers
        self.threads = 1
        self._owns_ray = False
        self._lock = threading.Lock()
        self._slots: dict[int, _Slot] = {}
        self._stopping = threading.Event()
        self._restarter = Restarter(self._spawn, self._stopping)
        self._reader: threading.Thread | None = None
        self._on_event: EventSink = lambda event: None

    def start(self, on_event: EventSink) -> None:
        self._on_event = on_event
        self._owns_ray = connect(self.config.server.ray_address)
        self.threads = ray_threads(self.config, self.num_workers)
        for worker_id in range(self.num_workers):
            self._spawn(worker_id)
        self._reader = threading.Thread(target=self._read_loop, name="argus-ray-pool", daemon=True)
        self._reader.start()

    def resources(self) -> dict[str, float]:
        """One GPU per actor where the cluster has any, else the CPUs its torch threads use."""
        if ray.cluster_resources().get("GPU", 0.0) >= 1.0:
            return {"num_gpus": 1.0, "num_cpus": 1.0}
        return {"num_cpus": float(self.threads)}

    def _spawn(self, worker_id: int) -> None:
        actor_class = ray.remote(RayWorkerActor).options(
            max_concurrency=ACTOR_THREADS,
            max_restarts=0,  # the pool re-creates a dead actor itself, with backoff
            **self.resources(),
        )
        config_data = self.config.model_dump(mode="json")
        actor = actor_class.remote(worker_id, config_data, self.threads)
        with self._lock:
            if self._stopping.is_set():  # a restart timer that fired as the pool stopped
                kill(actor)
                return
            self._slots[worker_id] = _Slot(actor, time.monotonic())
        log.info("ray worker %d requested (%s)", worker_id, self.resources())

    def send(self, worker_id: int, command: WorkerCommand) -> None:
        with self._lock:
            slot = self._slots.get(worker_id)
            if slot is not None:  # a dead actor's call fails unread: its poll reports it
                slot.post(command)

    def restart(self, worker_id: int) -> None:
        with self._lock:
            slot = self._slots.get(worker_id)
        if slot is not None:
            kill(slot.actor)  # its poll then fails: reported as a death

    def pids(self) -> dict[int, int | None]:
        with self._lock:
            infos = {w: s.info for w, s in self._slots.items()}
        return {w: (infos.get(w) or {}).get("pid") for w in range(self.num_workers)}

    def placement(self) -> dict[int, dict[str, str]]:
        with self._lock:
            infos = {w: s.info for w, s in self._slots.items() if s.info}
        return {
            w: {k: str(v) for k, v in info.items() if k != "pid"} for w, info in infos.items()
        }

    def _read_loop(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                by_ref = {s.poll: w for w, s in self._slots.items()}
            if not by_ref:
                time.sleep(WAIT_S)
                continue
            ready, _ = ray.wait(list(by_ref), num_returns=1, timeout=WAIT_S)
            for ref in ready:
                if not self._stopping.is_set():
                    self._take(by_ref[ref], ref)

    def _take(self, worker_id: int, ref: Any) -> None:
        with self._lock:
            slot = self._slots[worker_id]
        try:
            events = ray.get(ref)
        except RayError as err:
            self._handle_death(worker_id, slot, err)
            return
        slot.poll = slot.actor.events.remote(POLL_S)
        for event in events:
            if isinstance(event, WorkerReady):
                slot.info = self._placement_of(worker_id, slot)
            self._on_event(event)

    def _placement_of(self, worker_id: int, slot: _Slot) -> dict[str, Any]:
        try:  # ready: the actor answers at once
            info = ray.get(slot.info_ref, timeout=10.0)
        except (RayError, GetTimeoutError):
            info = {"pid": None}
        log.info("ray worker %d ready: %s", worker_id, info)
        return info

    def _handle_death(self, worker_id: int, slot: _Slot, err: Exception) -> None:
        with self._lock:
            del self._slots[worker_id]
        kill(slot.actor)  # if only unreachable, make sure it is gone
        log.warning("ray worker %d (pid %s) died: %s", worker_id, (slot.info or {}).get("pid"),
                    type(err).__name__)
        self._on_event(WorkerDied(worker_id, None))
        self._restarter.schedule(worker_id, time.monotonic() - slot.started_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        if self._reader is not None:
            self._reader.join(timeout=2.0)
        with self._lock:
            slots = dict(self._slots)
            self._slots.clear()
        for slot in slots.values():  # finish the current batch, then end
            slot.post(Shutdown())
        joins = [s.actor.join.remote(timeout_s) for s in slots.values()]
        if joins:
            ray.wait(joins, num_returns=len(joins), timeout=timeout_s + 2.0)
        for slot in slots.values():
            kill(slot.actor)
        if self._owns_ray:
            ray.shutdown()


register_pool("ray", RayPool)
