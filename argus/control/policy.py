"""The policy interface: what a serving policy (Argus or a baseline) decides, and its registry.

A `Policy` plugs into `ControlPlane`, which owns everything policies share: per-level EDF queues,
compatible batching, admission bookkeeping, worker-to-level assignment, load estimation and
snapshots. A policy decides three things, through three hooks the plane calls:

1. `plan(now, demand) -> Plan` once per planning period (and once at start, with zero demand):
   how many workers run each level, and optionally the routing matrix
   `routing[c, l]` = probability that a prompt whose optimal level is c goes to level l.
   The plane moves workers to match `Plan.workers` (same-variant moves first: they are free).
2. `route(request, now) -> int | None` per admitted request: the level position to queue it at
   (`plane.table.names[i]`), or None to reject it (set `request.reason`, else a generic one is
   used). The default follows `Plan.routing` deterministically (a low-discrepancy cycle).
   If the plane then predicts the deadline is missed there, it calls
   `on_late(request, now, level)`, which returns another level or None (reject). The default
   moves the request to the faster compatible level with the best predicted quality.
3. `on_complete(request, now) -> int | None` when a worker finishes a request: a level position to
   re-dispatch it to (a cascade: DiffServe re-runs a light result on the heavy level), or None
   when it is done. Re-dispatched requests keep their deadline and go straight into the queue.

Policies also set `expire_after_slo`: a queued request whose batch would finish later than
`arrival + expire_after_slo x SLO` is rejected at dequeue ("deadline passed while queued") instead
of wasting a worker; None serves everything however late. Policies must be deterministic for a
given `seed`. They see the plane as a `PolicyContext` (its read-only state and estimates) and
change it only through the return values of these hooks.

Register a policy with `@register_policy("name")`; `make_policy(name, seed=...)` builds it. The
built-in ones live in `argus.control.policies`; baselines in `argus.baselines` register on import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

from argus.types import Request

if TYPE_CHECKING:
    from argus.config import ArgusConfig
    from argus.control.levels import LevelTable
    from argus.control.load import LoadEstimator
    from argus.control.predictor import QualityPredictor
    from argus.control.profile import Profile


class PolicyContext(Protocol):
    """What a policy sees of the control plane (the plane is one): read-only state and the
    plane's estimates. A policy changes the plane only through its hooks' return values, and
    may install its own `predictor` in `bind` (the plane reads it after `bind` returns)."""

    config: ArgusConfig
    profile: Profile
    table: LevelTable
    num_workers: int
    floor: float
    tolerance: float
    overload_floor: float
    predictor: QualityPredictor
    load: LoadEstimator
    oracle: Callable[[Request, str], float] | None
    """True quality of a request at a level (the simulator's oracle baselines); None live."""

    @property
    def slowdown(self) -> float:
        """Deadline estimates' factor on profiled times (`argus.control.calibration`)."""
        ...

    @property
    def load_scale(self) -> float:
        """Load in the profile's time: the mean measured / profiled ratio, rounded."""
        ...

    def workers_per_level(self) -> np.ndarray: ...

    def finish_estimate(self, level: int, now: float, images: int = 1, scale: float = 1.0,
                        saved_s: float = 0.0) -> float: ...

    def fastest_fix(self, request: Request, now: float, level: int,
                    overloaded: bool = False) -> int | None: ...


ROUTE_CYCLE = 1024
"""Length of a routing cycle: shares are exact to 1/1024 over every cycle."""
GOLDEN = 0.6180339887498949


DEMAND_SMOOTHING = 0.5
"""EWMA weight of the newest period's class shares and qualities in a `Demand`."""


@dataclass(frozen=True)
class Demand:
    """What the plane measured for the next period."""

    time_s: float
    forecast_rps: float
    """Requests/s expected next period (EWMA + burst headroom)."""
    class_share: np.ndarray
    """Per level position: share of requests whose optimal level it is (sums to 1 or is 0)."""
    class_quality: np.ndarray
    """(class, level): mean predicted quality of that class's requests at each level."""
    workers: np.ndarray
    """Workers per level now."""
    queued: np.ndarray
    """Queued requests per level now."""
    share_samples: float = 0.0
    """Effective number of requests behind `class_share` (its sampling noise); 0 = unknown."""


@dataclass(frozen=True)
class Plan:
    time_s: float
    workers: np.ndarray
    """int, per level position; sums to the cluster size."""
    routing: np.ndarray | None = None
    """(class, level) probabilities, rows sum to 1; None if the policy routes by itself."""
    forecast_rps: float = 0.0
    load_rps: np.ndarray | None = None
    """Planned requests/s per level."""
    unserved_rps: float = 0.0
    solve_ms: float = 0.0
    changed: bool = True
    """False when hysteresis kept the previous allocation."""
    info: dict = field(default_factory=dict)


class Policy:
    """Base class: routes by the plan's matrix, moves late requests to faster levels."""

    name: ClassVar[str] = ""
    expire_after_slo: float | None = 1.0
    degrade_queued: ClassVar[bool] = False
    """Whether the plane may re-level queued requests to make room for a late arrival (degrade
    before drop, `argus.control.relevel`); baselines keep their published behaviour."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.plane: PolicyContext | None = None
        self._routes: list[list[int]] = []
        self._cursor: list[int] = []
        self._matrix: np.ndarray | None = None
        """The routing matrix installed last (None until a plan brings one)."""

    def bind(self, plane: PolicyContext) -> None:
        """Called once by the plane before anything else."""
        self.plane = plane
        self._matrix = None

    def plan(self, now: float, demand: Demand) -> Plan:
        raise NotImplementedError

    def set_routing(self, routing: np.ndarray) -> None:
        """Install the matrix `route` follows (the plane calls it when a plan has one; each call
        restarts the cycles, and an unchanged matrix keeps its tables)."""
        matrix = np.asarray(routing, float)
        self._cursor = [0] * len(matrix)
        if self._matrix is None or not np.array_equal(matrix, self._matrix):
            self._matrix = matrix.copy()
            self.install_routes(self._matrix)

    def install_routes(self, matrix: np.ndarray) -> None:
        """Each row becomes a cycle of `ROUTE_CYCLE` levels from a golden-ratio sequence: every
        stretch of requests of a class gets its row's shares, deterministically, at O(1) per
        request."""
        points = (np.arange(ROUTE_CYCLE) * GOLDEN) % 1.0
        self._routes = []
        for cls, row in enumerate(matrix):
            total = row.sum()
            if total <= 0:
                self._routes.append([cls] * ROUTE_CYCLE)
                continue
            cumulative = np.cumsum(row) / total
            levels = np.searchsorted(cumulative, points, side="right")
            self._routes.append(np.minimum(levels, len(row) - 1).tolist())

    def route(self, request: Request, now: float) -> int | None:
        """The next level of the request's optimal-level class in its routing cycle."""
        assert self.plane is not None
        cls = self.plane.table.index[request.optimal_level]
        if not self._routes:
            return cls
        i = self._cursor[cls]
        self._cursor[cls] = (i + 1) % ROUTE_CYCLE
        return self._routes[cls][i]

    def on_late(self, request: Request, now: float, level: int) -> int | None:
        assert self.plane is not None
        return self.plane.fastest_fix(request, now, level)

    def on_complete(self, request: Request, now: float) -> int | None:
        return None


_REGISTRY: dict[str, Callable[..., Policy]] = {}
"""Policies by name: the built-in ones (`argus.control.policies`, imported on first use) and any
that packages above the control plane register when imported (`argus.baselines`; the entry points
that offer every policy, `argus.cli`, `argus.runtime.dispatcher.build_runtime`, import it)."""


def register_policy(name: str) -> Callable[[type[Policy]], type[Policy]]:
    def wrap(cls: type[Policy]) -> type[Policy]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def _load_builtin() -> None:
    """Register the built-in policies. Their module imports this one (`register_policy`), so it
    is imported on first use rather than at the top."""
    import argus.control.policies  # noqa: F401


def policy_names() -> list[str]:
    """Every registered policy: the built-in ones and those of the packages imported so far."""
    _load_builtin()
    return sorted(_REGISTRY)


def make_policy(name: str, seed: int = 0) -> Policy:
    if name not in _REGISTRY:
        _load_builtin()
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown policy {name!r}; registered: {', '.join(sorted(_REGISTRY))} (policies "
            "outside argus.control register when their package is imported, e.g. argus.baselines)"
        )
    return _REGISTRY[name](seed=seed)
