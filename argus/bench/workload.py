"""What the bench sends: arrival times from a trace, a prompt and a fresh seed per request, and
the trace's `steps`/`n` columns when it has them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from argus.sim.traces import Trace, load_trace

SHAPES_PROMPTS = "shapes"
SHAPES_POOL_MAX = 256
"""Distinct held-out shapes prompts drawn at most (the grammar's one-object prompts run out
near 270); requests sample from this pool."""
MAX_SEED = 2**31 - 1
SEED_HEADROOM = 64
"""Room above a request's seed for its images' seeds (the server uses seed + index)."""


@dataclass(frozen=True)
class PlannedRequest:
    index: int
    arrival_s: float
    prompt: str
    seed: int
    n: int = 1
    steps: int | None = None
    """`num_inference_steps` to pin, or None."""


def load_prompts(source: str, count: int, seed: int) -> list[str]:
    """The prompt pool: held-out shapes-world prompts (`shapes`) or a file, one per line."""
    if source == SHAPES_PROMPTS:
        from argus.shapes.grammar import sample_prompts

        return sample_prompts(seed, max(1, min(count, SHAPES_POOL_MAX)), held_out=True)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"--prompts {source}: not `shapes` or a file")
    prompts = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not prompts:
        raise ValueError(f"--prompts {source}: no prompts in the file")
    return prompts


def plan_requests(
    trace: Trace, prompts: str | None, seed: int, steps: int | None = None,
) -> list[PlannedRequest]:
    """One request per arrival. Prompts: the trace's `prompt` column when it has one and no
    prompt set is given, else sampled (seeded) from the set; seeds are fresh per request."""
    rng = np.random.default_rng([seed, 1])
    count = len(trace)
    if trace.prompt is not None and prompts is None:
        chosen = list(trace.prompt)
    else:
        pool = load_prompts(prompts or SHAPES_PROMPTS, count, seed)
        chosen = [pool[i] for i in rng.integers(0, len(pool), count)]
    seeds = rng.integers(0, MAX_SEED - SEED_HEADROOM, count)
    return [
        PlannedRequest(
            index=i,
            arrival_s=float(trace.arrival_s[i]),
            prompt=chosen[i],
            seed=int(seeds[i]),
            n=int(trace.n[i]) if trace.n is not None else 1,
            steps=_steps(trace, i, steps),
        )
        for i in range(count)
    ]


def _steps(trace: Trace, i: int, default: int | None) -> int | None:
    if trace.steps is not None and trace.steps[i] > 0:
        return int(trace.steps[i])
    return default


def build_workload(
    trace: str, rate: float | None, duration_s: float, seed: int = 0,
    prompts: str | None = None, steps: int | None = None, compress: bool = False,
    max_requests: int | None = None,
) -> tuple[Trace, list[PlannedRequest]]:
    """The trace (the simulator's `load_trace`) and the requests to send, at most
    `max_requests` of them (the first ones)."""
    if duration_s <= 0:
        raise ValueError("--duration must be > 0")
    loaded = load_trace(trace, rate, duration_s, seed=seed, compress=compress)
    planned = plan_requests(loaded, prompts, seed, steps)
    if max_requests is not None:
        planned = planned[:max_requests]
    return loaded, planned
