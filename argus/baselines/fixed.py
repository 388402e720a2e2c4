"""Baselines without a planner: Clipper at one fixed level, and NIRVANA's approximate caching.

- `clipper-ha`: Clipper pinned to the high-accuracy model: every request at the full level.
- `clipper-ht`: Clipper pinned to the high-throughput model: every request at the level with the
  highest per-worker throughput.
- `nirvana`: every worker runs the full model; each request skips the K steps its top-1 cache
  similarity allows under NIRVANA's bands (`config.cache.similarity_bands`), no step reduction,
  no other variant, no planner.

None of them approximates to rescue a late request: a request predicted to miss its deadline at
its level is rejected (the plane's admission, shared by every policy).
"""

from __future__ import annotations

from argus.baselines.common import all_workers_at, fastest_level
from argus.control.policy import Demand, Plan, Policy, PolicyContext, register_policy
from argus.control.predictor import band_threshold
from argus.types import Request


class FixedLevelPolicy(Policy):
    """Every request at `self.level`; the whole cluster stays there."""

    level: int = 0

    def choose_level(self) -> int:
        raise NotImplementedError

    def bind(self, plane: PolicyContext) -> None:
        super().bind(plane)
        self.level = self.choose_level()

    def plan(self, now: float, demand: Demand) -> Plan:
        assert self.plane is not None
        return all_workers_at(self.level, self.plane.table, self.plane.num_workers, now)

    def route(self, request: Request, now: float) -> int | None:
        return self.level

    def on_late(self, request: Request, now: float, level: int) -> int | None:
        return None


@register_policy("clipper-ha")
class ClipperHighAccuracy(FixedLevelPolicy):
    def choose_level(self) -> int:
        assert self.plane is not None
        return self.plane.table.full


@register_policy("clipper-ht")
class ClipperHighThroughput(FixedLevelPolicy):
    def choose_level(self) -> int:
        assert self.plane is not None
        return fastest_level(self.plane.table)


@register_policy("nirvana")
class Nirvana(FixedLevelPolicy):
    """Full level everywhere; per request, the deepest skip K of the full model's step count whose
    similarity band the request's cache hit reaches (a miss runs from noise)."""

    def choose_level(self) -> int:
        plane = self.plane
        assert plane is not None
        table = plane.table
        full = table.full
        bands = plane.config.cache.similarity_bands
        band_steps = plane.config.cache.band_steps
        # (threshold, level) for the full model's cache levels, deepest skip first.
        self.cache_levels = sorted(
            (
                (band_threshold(table.cache_k[i], table.steps[i], bands, band_steps), i)
                for i in table.levels_of_variant(table.variant[full])
                if table.steps[i] == table.steps[full] and table.cache_k[i] > 0
            ),
            key=lambda pair: -table.cache_k[pair[1]],
        )
        return full

    def route(self, request: Request, now: float) -> int | None:
        similarity = request.cache_similarity
        if similarity is not None:
            for threshold, level in self.cache_levels:
                if similarity >= threshold:
                    return level
        return self.level
