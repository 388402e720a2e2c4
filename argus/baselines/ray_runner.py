"""Comparisons on a Ray cluster: each call of a list runs as a Ray task.

`compare(spec, runner=ray_map)` runs each policy's simulation (`run_policy`, the first one also
solving the oracle LP) as one task, so a study's policies run side by side over a cluster's CPUs;
the simulator is deterministic per seed, so the results are the local run's. What comes back is
the summary, the per-request record (a few arrays) and the oracle bound, never a simulator.
`ray` is imported only here and only when called (`pip install -e '.[ray]'`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # before ray reads it; a cluster may opt in


@contextlib.contextmanager
def ray_connection(address: str = "") -> Iterator[None]:
    """Join the cluster at `address` (`""`: start a new local Ray, never one found running on
    this machine; `auto`, `host:6379`, `ray://host:10001`) for the block; a process already
    connected stays connected, and only a Ray this call started or joined is shut down."""
    import ray

    if ray.is_initialized():
        yield
        return
    if address:
        ray.init(address=address)
    else:
        ray.init(address="local", include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()


def ray_map(fn: Callable[..., Any], calls: list[tuple], num_cpus: float = 1.0) -> Iterator[Any]:
    """`fn(*args)` for each args tuple as one Ray task (`num_cpus` each), all submitted at once;
    yields the results in order (Ray must be connected: `ray_connection`)."""
    import ray

    task = ray.remote(num_cpus=num_cpus)(fn)  # a task lost with its node is run again
    refs = [task.remote(*args) for args in calls]
    for ref in refs:
        yield ray.get(ref)
