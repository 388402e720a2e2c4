"""The live runtime on Ray actors: one real two-node Ray cluster (`ray.cluster_utils.Cluster`,
one CPU per node, both on this machine) for the whole session, a Dispatcher over a `RayPool` of
two workers on it (one actor per node), tiny random-weight models."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from unittest import mock

import pytest

ray = pytest.importorskip("ray")

import runtime_helpers  # noqa: E402
from PIL import Image  # noqa: E402
from runtime_helpers import (  # noqa: E402
    CRASH_STEPS,
    SLOW_STEPS,
    STALL_S,
    RuntimeThread,
    runtime_config,
)
from test_runtime_pool import wait_running  # noqa: E402

from argus.runtime.base import GenerationCancelledError  # noqa: E402
from argus.runtime.pool import pool_class  # noqa: E402
from argus.runtime.ray_pool import RayPool  # noqa: E402


@pytest.fixture(scope="session")
def cluster() -> Iterator[object]:
    from ray.cluster_utils import Cluster

    two_nodes = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    two_nodes.add_node(num_cpus=1)
    two_nodes.wait_for_nodes()
    ray.init(address=two_nodes.address, log_to_driver=False)
    yield two_nodes
    ray.shutdown()
    two_nodes.shutdown()


def ray_runtime(workers: int) -> RuntimeThread:
    """`RuntimeThread` (a Dispatcher on its own loop) over a `RayPool` instead of local workers."""
    with mock.patch.object(runtime_helpers, "LocalWorkerPool", RayPool):
        return RuntimeThread(runtime_config(workers=workers, runtime="ray"))


@pytest.fixture(scope="module")
def rt(cluster: object) -> Iterator[RuntimeThread]:
    runtime = ray_runtime(workers=2)
    runtime.wait_for(
        lambda: all(w.loaded for w in runtime.runtime._workers.values()), 120, "workers loading"
    )
    yield runtime
    runtime.close()
    assert all(pid is None for pid in runtime.runtime.pool.pids().values())


def test_ray_backend_is_imported_only_when_selected() -> None:
    code = (
        "import sys\n"
        "from argus.runtime.dispatcher import build_runtime\n"
        "from argus.runtime.pool import pool_class\n"
        "assert 'ray' not in sys.modules\n"
        "assert pool_class('ray').__name__ == 'RayPool' and 'ray' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert pool_class("ray") is RayPool


def test_image_through_dispatcher_on_actors_on_both_nodes(rt: RuntimeThread) -> None:
    handle = rt.submit(steps=10, n=2, seed=5)
    outcome = rt.outcome(handle)
    assert outcome.steps == outcome.steps_run == 10 and len(outcome.images_png) == 2
    for png in outcome.images_png:
        assert Image.open(io.BytesIO(png)).size == (32, 32)
    assert outcome.images_png[0] != outcome.images_png[1]
    steps = [u.step for u in rt.drain_progress(handle) if u is not None]
    assert steps == list(range(1, 11))  # one Progress per step, in order
    pool = rt.runtime.pool
    assert rt.on_loop(rt.runtime.snapshot)["runtime"]["backend"] == "RayPool"
    pids = pool.pids()
    assert None not in pids.values() and os.getpid() not in pids.values()
    placement = pool.placement()
    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert {placement[w]["node_id"] for w in (0, 1)} == nodes and len(nodes) == 2
    assert {placement[w]["device"] for w in (0, 1)} == {"cpu"}


def test_same_seed_same_png_on_either_node(rt: RuntimeThread) -> None:
    blocker = rt.submit(steps=SLOW_STEPS, seed=1)  # the two run on different workers
    wait_running(rt, blocker)
    first = rt.submit(steps=4, seed=11)
    rt.call(rt.runtime.cancel(blocker.request_id))
    with pytest.raises(GenerationCancelledError):
        rt.outcome(blocker)
    second = rt.submit(steps=4, seed=11)
    assert rt.outcome(first).images_png == rt.outcome(second).images_png


def test_cancel_between_steps_on_an_actor(rt: RuntimeThread) -> None:
    handle = rt.submit(steps=SLOW_STEPS)
    seen = wait_running(rt, handle, min_step=2)
    worker_id, _ = rt.worker_of(handle.request_id)
    assert rt.call(rt.runtime.cancel(handle.request_id))
    with pytest.raises(GenerationCancelledError):
        rt.outcome(handle, timeout_s=10)
    after = [u.step for u in rt.drain_progress(handle) if u is not None]
    assert max(after, default=seen) <= seen + 5 < SLOW_STEPS  # events in flight aside
    rt.wait_for(lambda: rt.runtime._workers[worker_id].batch_id is None, 2.0, "worker busy")


def test_killed_actor_mid_batch_every_request_answered(rt: RuntimeThread) -> None:
    deaths = rt.runtime.worker_deaths
    handles = [rt.submit(steps=CRASH_STEPS, seed=s) for s in (31, 32, 33)]
    wait_running(rt, handles[0])
    worker_id, pid = rt.worker_of(handles[0].request_id)
    os.kill(pid, signal.SIGKILL)
    for handle in handles:
        outcome = rt.outcome(handle, timeout_s=90)
        assert outcome.steps_run == CRASH_STEPS and len(outcome.images_png) == 1
    assert rt.runtime.worker_deaths == deaths + 1

    def restarted() -> bool:
        state = rt.runtime.snapshot()["runtime"]
        return state["workers"][worker_id]["ready"] and state["pids"][worker_id] not in (None, pid)

    rt.wait_for(restarted, 90, "killed actor was not re-created")


def test_hung_actor_is_restarted_by_the_stall_watchdog(rt: RuntimeThread) -> None:
    rt.wait_for(lambda: all(w.ready for w in rt.runtime._workers.values()), 90, "not ready")
    deaths = rt.runtime.worker_deaths
    handle = rt.submit(steps=CRASH_STEPS, seed=8)
    wait_running(rt, handle)
    _, pid = rt.worker_of(handle.request_id)
    os.kill(pid, signal.SIGSTOP)  # alive but silent: only the watchdog's restart can tell
    try:
        outcome = rt.outcome(handle, timeout_s=STALL_S + 60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    assert outcome.steps_run == CRASH_STEPS
    assert rt.runtime.worker_deaths == deaths + 1


def test_node_loss_requeues_and_worker_returns_on_a_new_node(rt: RuntimeThread, cluster) -> None:
    rt.wait_for(lambda: all(w.ready for w in rt.runtime._workers.values()), 90, "not ready")
    pool = rt.runtime.pool
    lost = next(n for n in cluster.list_all_nodes() if n is not cluster.head_node)
    on_lost = [w for w, p in pool.placement().items() if p["node_id"] == lost.node_id]
    assert len(on_lost) == 1
    handles = [rt.submit(steps=CRASH_STEPS, seed=s) for s in (41, 42)]
    for handle in handles:
        wait_running(rt, handle)
    cluster.remove_node(lost)
    for handle in handles:
        assert rt.outcome(handle, timeout_s=90).steps_run == CRASH_STEPS
    new = cluster.add_node(num_cpus=1)

    def back_on_new_node() -> bool:
        state = rt.runtime.snapshot()["runtime"]["workers"][on_lost[0]]
        where = pool.placement().get(on_lost[0], {})
        return state["ready"] and where.get("node_id") == new.node_id

    rt.wait_for(back_on_new_node, 90, "lost worker did not come back on the new node")
